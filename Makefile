# Two commands matter: `make reproduce` (main job) and `make test` (test suite).
# Both create/reuse .venv, install the pinned requirements and the package, then run.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ffn-installed
PARAMS ?= params/cpu.yaml

.PHONY: setup reproduce test smoke lint clean strip-notebooks

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

reproduce: setup
	$(PY) -m ffn_core suite --params $(PARAMS)

smoke: setup
	$(PY) -m ffn_core suite --params params/smoke.yaml

EXPORT_STAMP := $(VENV)/.ffn-export-installed

$(EXPORT_STAMP): $(STAMP) requirements-export.txt
	$(PY) -m pip install -q -r requirements-export.txt
	@touch $(EXPORT_STAMP)

test: setup lint $(EXPORT_STAMP)
	$(PY) -m pytest

lint: setup
	$(PY) -m ruff check ffn_core tests tools benchmarks

strip-notebooks: setup
	$(PY) -m ffn_core.analysis.nbstrip notebooks/*.ipynb

clean:
	rm -rf runs .pytest_cache
