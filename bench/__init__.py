"""Every benchmark and measurement of the service; each prints figures and asserts nothing.

- ``python -m bench``: the load benchmark (gunicorn + wrk), ``make bench``; results in
  ``bench/results/``.
- ``python -m bench.fetch_path``: hook latency without prefetch against each local FHIR server.
- ``python -m bench.drug_safety``: one order-sign call that triggers the drug-safety rules.
- ``python -m bench.hook_latency``: latency and memory of one order-sign call under gunicorn.
- ``python -m bench.json_limits``: strict parsing and the JSON limit walk on a large request.

Run from the repository root with ``.venv/bin/python``; see docs/performance.md.
"""
