# Every target builds .venv itself when missing, so each is one command on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-test
STAMP_RUN := $(VENV)/.installed

.PHONY: demo test lint types pytest deploy-check bench soak clean

$(STAMP_RUN): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $@

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@ $(STAMP_RUN)

demo: $(STAMP_RUN)
	$(BIN)/ibkr-watchdog demo

lint: $(STAMP)
	$(BIN)/ruff check watchdog tests
	$(BIN)/ruff format --check watchdog tests
	$(BIN)/lint-imports

types: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

deploy-check: $(STAMP)
	bash deploy/check.sh

test: lint types pytest deploy-check

bench: $(STAMP)
	$(BIN)/python -m tests.bench.run

soak: $(STAMP)
	$(BIN)/python -m tests.bench.soak

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
