# op-proxy: `make run` serves the dev config at http://127.0.0.1:8080; `make test` runs the suite;
# `make bench` measures it beside oidc-provider and a Quart hello-world (needs wrk: apt-get install wrk).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed
TESTING := $(VENV)/.installed-test

.PHONY: run test lint install peers bench clean

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

# The suite's modules on TEST_PROCESSES processes (pytest-xdist): most of its time is spent waiting
# for servers, browsers and peers. A module stays in one process, with its shared server.
TEST_PROCESSES ?= 2

test: $(TESTING) peers
	$(BIN)/pytest -q -n $(TEST_PROCESSES) --dist loadfile

# Not part of `make test`. BENCH_ARGS="--quick" for a fast try, "--rounds 5" for more rounds.
BENCHING := $(VENV)/.installed-bench

$(BENCHING): $(RUNTIME)
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $(BENCHING)

bench: $(RUNTIME) $(BENCHING) peers
	@command -v wrk >/dev/null || { echo "make bench needs wrk (Debian/Ubuntu: apt-get install wrk)" >&2; exit 1; }
	@command -v taskset >/dev/null && command -v chrt >/dev/null || { echo "make bench needs taskset and chrt (Debian/Ubuntu: util-linux)" >&2; exit 1; }
	$(BIN)/python bench/bench.py $(BENCH_ARGS)

lint: $(TESTING)
	$(BIN)/ruff check op_proxy admin tests examples bench

clean:
	rm -rf $(VENV) var tests/peers/node_modules test-artifacts
