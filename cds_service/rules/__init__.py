"""Clinical rules: one module per rule family, pure functions of the patient record, its
parameters and the clock; the registry lists the implemented ones. May import: patient, fhir,
ops, common."""
