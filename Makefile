# The two commands of the quick start: `make run` brings the whole system up, `make test` runs every check.
# Another interpreter gets its own environment: `make run PYTHON=python3.12 VENV=.venv312`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test e2e lint contracts bench clean

# The environment is (re)built when the dependencies change; `pip install` is pinned by constraints.txt.
$(BIN)/stratum: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	# netsuite-async (the NetSuite fidelity test's public client) declares Python >= 3.12 but runs on 3.11,
	# which its test proves; its dependencies (httpx, authlib) are already ours, so none are pulled in.
	$(BIN)/python -m pip install --quiet --no-deps --ignore-requires-python netsuite-async==0.2.4
	# dynite (the Business Central fidelity test's public OData client) likewise declares Python >= 3.13;
	# its one dependency, requests, is already installed.
	$(BIN)/python -m pip install --quiet --no-deps --ignore-requires-python dynite==0.2.0
	touch $@

run: $(BIN)/stratum
	$(BIN)/stratum serve

lint: $(BIN)/stratum
	$(BIN)/ruff check .
	$(BIN)/mypy

contracts: $(BIN)/stratum
	$(BIN)/stratum contracts check

test: lint contracts
	scripts/ensure-redis
	scripts/ensure-postgres
	scripts/ensure-chromium
	$(BIN)/pytest

# The tests that run real `stratum serve` processes: what CI runs again on the other supported Python.
e2e: $(BIN)/stratum
	scripts/ensure-redis
	scripts/ensure-postgres
	scripts/ensure-chromium
	$(BIN)/pytest tests/e2e tests/process/test_engine_start.py tests/gateway/test_server.py

bench: $(BIN)/stratum
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .venv312 .stratum .pytest_cache .mypy_cache .ruff_cache
