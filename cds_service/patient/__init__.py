"""The typed patient record built from FHIR resources: readings, doses, terminology.
May import: fhir, ops, common."""
