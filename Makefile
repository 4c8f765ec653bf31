# The two newcomer commands: `make demo` and `make test`. Both create .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python

# Bytecode is cached: with PYTHONDONTWRITEBYTECODE set (as on CI's machines) every
# `tenang` a test starts compiled its ~190 modules anew (0.3 s a start on a slow core),
# and pytest rewrote every test module on every run.
unexport PYTHONDONTWRITEBYTECODE

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

.PHONY: demo test lint bench screenshots
demo: $(VENV)/.installed
	$(VENV)/bin/tenang demo

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy --strict proxy admin_ui tests

test: lint
	$(VENV)/bin/pytest -q

bench: $(VENV)/.installed
	$(PY) bench/intake_bench.py

screenshots: $(VENV)/.installed
	TENANG_SCREENSHOTS=docs/screenshots $(VENV)/bin/pytest -q tests/e2e
