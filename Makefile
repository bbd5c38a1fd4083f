# Every target builds .venv itself when missing, so each is one command on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-test
STAMP_RUN := $(VENV)/.installed
# Runtime dependencies, pinned with hashes (make lock); every venv and deploy/install.sh install these.
LOCK   := requirements.lock
PIP_TOOLS := pip-tools>=7.5,<8
# Private copies of promtool / systemd-analyze (deploy/fetch-tools.sh) come first on PATH.
TOOLS  := .ci/tools
export PATH := $(CURDIR)/$(TOOLS)/commands:$(PATH)

.PHONY: demo test lint types pytest deploy-check tools lock bench soak clean

# The locked runtime dependencies exactly (hash-checked), then the package without its dependencies.
$(STAMP_RUN): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

# The same locked runtime dependencies, then the test extras constrained by the lock: a test tool
# that wants another version of a runtime dependency fails the install instead of changing it.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --require-hashes -r $(LOCK)
	sed -nE 's/^([A-Za-z0-9][A-Za-z0-9._-]*==[^ ]+).*/\1/p' $(LOCK) >$(VENV)/lock-constraints.txt
	$(BIN)/python -m pip install -q -c $(VENV)/lock-constraints.txt -e '.[test]'
	touch $@ $(STAMP_RUN)

# Regenerate the lock from pyproject.toml's dependencies, keeping existing pins that still fit;
# `make lock LOCK_ARGS=--upgrade` moves every pin to the newest allowed release.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q '$(PIP_TOOLS)'
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes --strip-extras \
	    --allow-unsafe --no-emit-index-url --no-emit-find-links $(LOCK_ARGS) --output-file $(LOCK) pyproject.toml

demo: $(STAMP_RUN)
	$(BIN)/ibkr-watchdog demo

lint: $(STAMP)
	$(BIN)/ruff check watchdog tests
	$(BIN)/ruff format --check watchdog tests
	$(BIN)/lint-imports

types: $(STAMP)
	$(BIN)/mypy

# promtool and systemd-analyze: apt-get download + dpkg -x into $(TOOLS) when the host lacks them.
tools:
	bash deploy/fetch-tools.sh

# REQUIRE_DEPLOY_TOOLS: a test that needs promtool fails instead of skipping when it is missing.
pytest: $(STAMP) tools
	REQUIRE_DEPLOY_TOOLS=1 $(BIN)/python -m pytest -q -p no:cacheprovider

deploy-check: $(STAMP) tools
	bash deploy/check.sh

test: lint types pytest deploy-check

bench: $(STAMP)
	$(BIN)/python -m tests.bench.run

soak: $(STAMP)
	$(BIN)/python -m tests.bench.soak

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
