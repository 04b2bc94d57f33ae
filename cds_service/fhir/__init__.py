"""Reading FHIR JSON (bundles, per-element checks) and fetching it from a FHIR server.
May import: ops, common."""

from cds_service.common import compiled

# before any submodule is imported: fastcheck runs compiled when a current build exists
compiled.install()
