# Two commands on a fresh clone:  make run  (the whole pipeline)  and  make test  (the test suite).
VENV := .venv
PYTHON := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1
export GX_ANALYTICS_ENABLED := false

.PHONY: setup data run test test-profiles lint ui reunlearn

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed data

data: $(VENV)/.installed
	bash scripts/get_data.sh

run: setup
	$(VENV)/bin/remi run

reunlearn: setup
	$(VENV)/bin/remi cycle

test: setup
	bash scripts/get_chromium.sh
	bash scripts/get_postgres.sh
	$(PYTHON) -m pytest -n auto --dist loadfile --no-loadscope-reorder

test-profiles: setup
	$(PYTHON) -m pytest -m profiles tests/test_profiles.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

ui: $(VENV)/.installed
	$(VENV)/bin/remi ui
