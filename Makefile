# Two commands: `make up` (install, start the embedded PostGIS, migrate, sync the sample, serve
# on http://127.0.0.1:8000) and `make test` (install, then the suite on a throwaway database).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test check install system-deps lint format clean notebooks

up: install
	$(BIN)/urbis up

# The suite on TEST_WORKERS processes (pytest-xdist), each with a PostgreSQL cluster of its
# own; a module's tests stay on one worker, with the server and database they share. Most of a
# test's time is waiting (servers starting, browsers, syncs), so two workers fit two cores.
# TEST_WORKERS=0 runs it in this one process, as it must on a server of one's own
# (URBIS_TEST_ADMIN_URL): the workers would share its template databases and roles.
TEST_WORKERS ?= $(if $(URBIS_TEST_ADMIN_URL),0,2)

test: install lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadscope

# The quick loop (well under a minute, no database): lint, format, types and the unit tests.
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q tests/unit

# JupyterLab on notebooks/, against the service `make up` runs (another terminal); set URBIS_API
# for another one. The notebooks keep no outputs in git (nbstripout, .pre-commit-config.yaml).
notebooks: $(STAMP)
	URBIS_API=$${URBIS_API:-http://127.0.0.1:8000} $(BIN)/jupyter lab --notebook-dir=notebooks \
		$$( [ "$$(id -u)" = 0 ] && echo --allow-root )

install: system-deps $(STAMP) node_modules/.installed

system-deps:
	@scripts/install-system-deps.sh

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache
