"""The cards/ configuration (rules, parameters, value sets, card text), its schema and
card rendering. May import: rules, patient, fhir, ops, common."""
