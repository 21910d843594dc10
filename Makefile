# op-proxy: `make run` serves the dev config at http://127.0.0.1:8080; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed
TESTING := $(VENV)/.installed-test

.PHONY: run test lint install peers clean

$(RUNTIME): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(RUNTIME)

$(TESTING): $(RUNTIME)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(TESTING)

install: $(RUNTIME)

run: $(RUNTIME)
	$(BIN)/op-proxy --config conf/dev.toml serve

tests/peers/node_modules: tests/peers/package-lock.json
	cd tests/peers && npm ci --no-audit --no-fund --loglevel=error
	touch tests/peers/node_modules

peers: tests/peers/node_modules

test: $(TESTING) peers
	$(BIN)/pytest -q

lint: $(TESTING)
	$(BIN)/ruff check op_proxy admin tests examples

clean:
	rm -rf $(VENV) var tests/peers/node_modules test-artifacts
