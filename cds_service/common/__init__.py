"""Building blocks with no knowledge of hooks, FHIR or rules: errors, dates, numbers,
JSON parsing, settings, the loader of optional compiled (mypyc) modules. Imports nothing else
from cds_service."""
