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

.PHONY: setup demo test eval docs clean

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
	$(VENV)/bin/nnaudit audit --tracking-uri $(STORE) --experiment $(SAMPLES)
	@echo
	$(PY) -m sample_runs report --tracking-uri $(STORE) --experiment $(SAMPLES)

test: setup
	$(PY) -m pytest -q

# detection quality on the sample runs, with and without the recorder's evidence
eval: setup
	$(PY) benchmarks/detection.py

docs: setup
	$(PY) -m mlflow_nnaudit.auditor.docgen docs/causes.md

clean:
	rm -rf $(VENV) mlflow.db mlruns mlartifacts .pytest_cache *.egg-info
