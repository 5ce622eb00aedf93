# The two commands: `make demo` and `make test`. Each sets itself up on a fresh machine.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
STORE := sqlite:///mlflow.db
SAMPLES := nnaudit-samples
# this machine's pip config names local indexes that may be absent: hide only those warnings
PIP_QUIET := grep -v "is ignored: it is neither a file nor a directory" || true

.PHONY: setup demo test test-fast lint compat eval docs services screenshots clean

setup: $(STAMP)

# torch is pinned to the CPU build first: a bare `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "torch==2.13.0" 2>&1 | { $(PIP_QUIET); }
	$(PY) -m pip install -q -e ".[test]" 2>&1 | { $(PIP_QUIET); }
	$(PY) -c "import torch, mlflow, mlflow_nnaudit"
	touch $(STAMP)

demo: setup
	$(PY) -m sample_runs train --tracking-uri $(STORE) --experiment $(SAMPLES)
	mkdir -p reports
	$(VENV)/bin/nnaudit audit --tracking-uri $(STORE) --experiment $(SAMPLES) --report reports/summary.html
	@echo
	$(PY) -m sample_runs report --tracking-uri $(STORE) --experiment $(SAMPLES)

# The suite runs in TEST_WORKERS processes (pytest-xdist; `make test TEST_WORKERS=0` runs it in one): most of
# its time is single-threaded tiny-model training and waiting on servers, so two workers on two cores.
TEST_WORKERS ?= 2
test: setup lint
	$(PY) -m pytest -q -n $(TEST_WORKERS) --durations=15

# The dependency floors of pyproject.toml (tests/compat-floors.txt) and the newest versions the registry
# serves, each in a throwaway venv under $(COMPAT_DIR): train two sample runs with the recorder, audit
# them with the command, read the tags back (tests/compat_smoke.py). Minutes (two installs); not part of `make test`.
COMPAT_DIR ?= /tmp/nnaudit-compat
compat:
	@for which in floors newest; do \
		venv=$(COMPAT_DIR)/$$which; rm -rf $$venv; $(PYTHON) -m venv $$venv || exit 1; \
		$$venv/bin/python -m pip install -q "torch==2.13.0" 2>&1 | { $(PIP_QUIET); } || exit 1; \
		if [ $$which = floors ]; then pins="-c tests/compat-floors.txt"; else pins="--upgrade --upgrade-strategy eager"; fi; \
		$$venv/bin/python -m pip install -q $$pins . 2>&1 | { $(PIP_QUIET); } || exit 1; \
		echo "== $$which"; \
		(cd $(COMPAT_DIR) && $$venv/bin/python $(CURDIR)/tests/compat_smoke.py 2>&1 | grep -v "alembic.runtime") || exit 1; \
	done

# the quick loop while working: no PostgreSQL, browser, server, framework or sample-run tests
test-fast: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) -m "not slow and not postgres and not browser"

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# System packages the server and UI tests use (PostgreSQL, Chromium); root and apt-get needed.
# `make test` runs without them: those tests skip with a message.
services:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "PostgreSQL and Chromium present"; fi

# the screenshots in docs/img, taken by the UI test from a real MLflow server
screenshots: setup
	NNAUDIT_UPDATE_SCREENSHOTS=1 $(PY) -m pytest -q tests/test_server.py -k ui

# detection quality on the sample runs, with and without the recorder's evidence
eval: setup
	$(PY) benchmarks/detection.py

docs: setup
	$(PY) -m mlflow_nnaudit.auditor.docgen docs/causes.md

clean:
	rm -rf $(VENV) mlflow.db mlruns mlartifacts .pytest_cache *.egg-info
