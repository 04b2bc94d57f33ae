# One command to run, one to test; both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## run: set up and serve on http://127.0.0.1:8080 with the bundled cards/ (development mode: no client JWTs)
run: $(STAMP)
	CDS_AUTH=$${CDS_AUTH:-off} $(BIN)/aih-cds serve --host 127.0.0.1 --port $${PORT:-8080}

## test: set up, then lint, type-check and run every test with coverage
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy cds_service
	$(BIN)/aih-cds rules validate
	$(BIN)/coverage run -m pytest
	$(BIN)/coverage report

## bench: load benchmark under gunicorn + wrk (installs wrk and a local SEKMET FHIR server when
## missing); writes bench/results/latest.json and prints the table. BENCH_ARGS=--quick for a short run.
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
