# One command to run, one to test; both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the modules compiled with mypyc when possible (see `compiled` below)
COMPILED_SOURCES := cds_service/fhir/fastcheck.py
COMPILED := build/mypyc/manifest.json

.PHONY: run test lint typecheck unit venv clean fhir-servers browser-deps postgres bench-deps mutation
.PHONY: compiled compiler-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) $(COMPILED)

## compiled: mypyc builds of pure-Python hot spots into build/mypyc/ (docs/performance.md), made by
## venv, test, run and bench. Optional: with AIH_CDS_COMPILE=0, or without a C compiler or the Python
## headers, the script says so and the pure-Python modules run. Rebuilt when a source is newer than
## the build; a build whose source has changed is never loaded (cds_service/common/compiled.py).
$(COMPILED): $(STAMP) $(COMPILED_SOURCES) scripts/build_compiled.py
	@$(BIN)/python scripts/build_compiled.py $(COMPILED_SOURCES)

compiled: $(COMPILED)

## compiler-deps: gcc (and Debian's Python headers for Debian's python3) so make test runs the
## compiled modules (skipped when present)
compiler-deps:
	sh scripts/install-compiler.sh $(PYTHON)

## fhir-servers: install the local FHIR test servers (Medplum via npm ci, SEKMET in its own venv)
fhir-servers:
	scripts/install-fhir-servers.sh

## run: serve on http://127.0.0.1:$(PORT) with the bundled cards/ (development mode: no client JWTs;
## / opens the demo page) beside a demo FHIR server on http://127.0.0.1:$(FHIR_PORT)/fhir loaded with
## the demo patients. Checks both ports first; installs only the runtime dependencies and Medplum.
## Other ports: make run PORT=8081 FHIR_PORT=8091
PORT ?= 8080
FHIR_PORT ?= 8090
RUN_STAMP := $(VENV)/.installed-run

# Runtime dependencies only (no dev tools); a .venv made by `make venv` already has them.
$(RUN_STAMP): pyproject.toml
	@if [ -f $(STAMP) ] && [ $(STAMP) -nt pyproject.toml ]; then touch $@; else \
	    $(PYTHON) -m venv $(VENV) && $(BIN)/pip install --quiet --upgrade pip && \
	    $(BIN)/pip install --quiet -e . && touch $@; fi

run:
	@PORT=$(PORT) FHIR_PORT=$(FHIR_PORT) scripts/check-ports.sh
	@$(MAKE) --no-print-directory $(RUN_STAMP)
	@if [ -f $(STAMP) ] && [ $(STAMP) -nt pyproject.toml ]; then \
	    $(MAKE) --no-print-directory $(COMPILED); fi
	@scripts/install-fhir-servers.sh medplum
	PORT=$(PORT) FHIR_PORT=$(FHIR_PORT) scripts/run-demo.sh

## browser-deps: Debian chromium + chromium-driver and npm playwright-core for tests/browser
browser-deps:
	bash scripts/install-browser-deps.sh

## bench-deps: wrk and valgrind from Debian for the load benchmark, its quick run in the tests and
## bench.instructions (skipped when present)
bench-deps:
	sh scripts/install-bench-deps.sh

## Tests run in a shuffled order (pytest-randomly; the seed is in pytest's header). The default seed
## comes from the commit, so reruns of one commit are identical; TEST_SEED=N replays any order.
TEST_SEED ?= $(shell printf '%d' 0x$$(git rev-parse HEAD 2>/dev/null | cut -c1-7 | grep . || echo 1))

## test: set up (every install happens here, none inside a test), then lint, type-check and run
## every test with coverage
test: $(STAMP) compiler-deps $(COMPILED) fhir-servers browser-deps postgres bench-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy cds_service
	$(BIN)/lint-imports
	$(BIN)/aih-cds rules validate
	$(BIN)/coverage run -m pytest -p randomly --randomly-seed=$(TEST_SEED)
	$(BIN)/coverage report

## mutation: on demand, not part of make test (slow): mutmut on the security module, the rules and the
## protocol layer ([tool.mutmut] in pyproject.toml); each mutant runs only the tests that execute
## its function. MUTANTS='cds_service.security.*' narrows the run (a module, or one function:
## 'cds_service.rules.series.*'); MUTATION_JOBS sets parallel children (1 on a shared machine).
## Prints the score per module and every mutant not killed (docs/testing.md).
MUTANTS ?=
MUTATION_JOBS ?= 1
mutation: $(STAMP)
	$(BIN)/mutmut run --max-children $(MUTATION_JOBS) $(MUTANTS)
	$(BIN)/python scripts/mutation_report.py

## postgres: install PostgreSQL from Debian for the integration tests (skipped when present)
postgres:
	sh scripts/install-postgres.sh

## bench: load benchmark under gunicorn + wrk (bench-deps installs wrk; the fetch path runs
## against the local Medplum FHIR server); writes bench/results/latest.json and prints the table.
## BENCH_ARGS=--quick for a short run.
.PHONY: bench
bench: $(STAMP) $(COMPILED) fhir-servers bench-deps
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build/mypyc .pytest_cache .mypy_cache .ruff_cache .coverage
