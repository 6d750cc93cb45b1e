# Every target creates .venv and installs the locked set first (quick when nothing changed).
# Nothing is written outside this folder: the venv, AIRFLOW_HOME (.airflow/) and the demo
# warehouse all live here and are git-ignored.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__TEST_CONNECTION := Enabled
export AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES := feed_url
export USDIRECT_CONFIG ?= $(CURDIR)/include/usdirect.yaml

comma := ,

.PHONY: install demo test lint bench airflow airflow-reset lock clean browser-deps

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check \
		-c constraints.txt -r requirements.txt -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: install
	$(BIN)/python scripts/demo.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

test: install browser-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m pytest

# Debian's Chromium for the browser test of the connection form (playwright drives it; it
# downloads no browser of its own). Skipped at once when Chromium is there; needs root otherwise.
browser-deps:
	@test -x /usr/bin/chromium || { \
		command -v apt-get >/dev/null || { echo "browser-deps: no apt-get; install Chromium at /usr/bin/chromium"; exit 1; }; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }

bench: install
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -r requirements-bench.txt
	$(BIN)/python -m benchmarks $(if $(SIZES),--sizes $(subst $(comma), ,$(SIZES)))

airflow: install
	$(BIN)/python scripts/local_airflow.py

# Start the local Airflow over: sandbox state, warehouse and metadata DB (`make airflow` stopped first).
airflow-reset: install
	$(BIN)/python scripts/local_airflow.py --reset

# Re-resolve the lock from requirements*.txt in a throw-away venv (needs the package index).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -r requirements.txt -r requirements-dev.txt -r requirements-bench.txt
	{ echo "# Full lock from a clean resolve of requirements.txt + requirements-dev.txt on Python 3.11."; \
	  echo "# Regenerate with: make lock"; .lock-venv/bin/pip freeze --exclude-editable; } > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .airflow .pytest_cache .ruff_cache .mypy_cache
