"""Reading FHIR JSON (bundles, per-element checks) and fetching it from a FHIR server.
May import: ops, common."""
