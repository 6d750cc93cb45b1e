# Every target creates .venv and installs what it needs from the lock first (quick when nothing
# changed): `make demo` the run-time set, `make test` and `make lint` the tools as well.
# Nothing is written outside this folder but uv's download cache: the venv, AIRFLOW_HOME
# (.airflow/) and the demo warehouse all live here and are git-ignored.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# uv installs the locked set in seconds where pip takes minutes. Pinned; pip fetches it from the
# package index into .venv/uv, so a machine needs nothing but Python 3.11 (and pip or ensurepip).
UV_VERSION := 0.13.9
UV_HOME := $(VENV)/uv
UV := $(UV_HOME)/bin/uv
# index-args: the index pip is configured with, for uv (scripts/uv_index_args.py).
UV_PIP = $(UV) pip install --quiet --python $(BIN)/python $$(cat $(UV_HOME)/index-args) \
	-c constraints.txt --build-constraints constraints.txt
# Bytecode for the whole venv, for the tests: uv installs none, and with PYTHONDONTWRITEBYTECODE
# set (as on the test machines) every Airflow process the tests start would compile its modules
# at each start. The demo, one process, writes what it imports instead (its PYTHONDONTWRITEBYTECODE
# is cleared): compiling all of the run-time set first would cost it more than it saves.
COMPILE_VENV = $(BIN)/python -c "import compileall, sysconfig; \
	compileall.compile_dir(sysconfig.get_paths()['purelib'], quiet=2, workers=0)"
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev

export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__TEST_CONNECTION := Enabled
export AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES := feed_url
export USDIRECT_CONFIG ?= $(CURDIR)/include/usdirect.yaml

comma := ,

.PHONY: install demo test lint bench airflow airflow-reset lock clean browser-deps

install: $(DEV_STAMP)

# The venv without pip (uv installs into it), then uv: with the system Python's pip when it has
# one, else with the venv's own from ensurepip (slower).
$(UV):
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv --without-pip $(VENV)
	if $(PYTHON) -m pip --version >/dev/null 2>&1; then py=$(PYTHON); \
	else $(BIN)/python -m ensurepip --default-pip >/dev/null && py=$(BIN)/python; fi; \
	$$py -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
		--upgrade --target $(UV_HOME) uv==$(UV_VERSION) \
	&& $$py scripts/uv_index_args.py > $(UV_HOME)/index-args

# Run-time set and the package (editable; its build backend pinned by the lock too).
$(RUNTIME_STAMP): requirements.txt constraints.txt pyproject.toml plugins/usdirect/get_provider_info.py | $(UV)
	$(UV_PIP) -r requirements.txt -e .
	touch $@

# Plus the tools (`make test`, `make lint`).
$(DEV_STAMP): $(RUNTIME_STAMP) requirements-dev.txt
	$(UV_PIP) -r requirements.txt -r requirements-dev.txt
	$(COMPILE_VENV)
	touch $@

demo: $(RUNTIME_STAMP)
	PYTHONDONTWRITEBYTECODE= $(BIN)/python scripts/demo.py

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
	$(UV_PIP) -r requirements-bench.txt
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
