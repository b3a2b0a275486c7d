# LOKA: the two commands a new user needs are `make demo` and `make test`; both install first.
PY      ?= python3
VENV    ?= .venv
TORCH   ?= torch==2.13.0
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.loka-installed

.PHONY: setup demo demo-tiny test test-slow lint notebooks bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/loka demo --preset default --out loka-demo

demo-tiny: $(STAMP)
	$(BIN)/loka demo --preset tiny --out loka-demo-tiny

test: $(STAMP)
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

lint: $(STAMP)
	$(BIN)/ruff check loka attribution tests bench

notebooks: $(STAMP)
	$(BIN)/python scripts/run_notebooks.py

clean:
	rm -rf loka-demo loka-demo-tiny .pytest_cache build *.egg-info
