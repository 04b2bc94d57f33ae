"""Building blocks with no knowledge of hooks, FHIR or rules: errors, dates, numbers,
JSON parsing, settings. Imports nothing else from cds_service."""
