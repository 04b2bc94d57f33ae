"""Hook handling: the CDS Hooks request model, prefetch resolution and the engine that
turns a request into cards. May import: config, rules, patient, fhir, ops, common."""
