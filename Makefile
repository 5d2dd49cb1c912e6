# joblog: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint fmt bench reliability screenshot browser-deps service-deps clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[server,postgresql,mysql,bench,dev]'
	touch $(STAMP)

# Debian's Chromium for the browser tests (Playwright's own browser download is not used).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not found: browser tests will be skipped (install Debian's chromium)"; fi; }

# Debian's PgBouncer for the tests that run the API through it (the harness starts it on a
# free port; the package's own service is not used).
service-deps:
	@command -v pgbouncer >/dev/null 2>&1 || test -x /usr/sbin/pgbouncer || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null; \
	  else echo "pgbouncer not found: the PgBouncer tests will be skipped (install Debian's pgbouncer)"; fi; }

demo: install
	$(BIN)/joblog demo

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

fmt: install
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

test: install browser-deps service-deps lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/joblog bench all

# Injects the faults of tests/reliability and writes what they measured to docs/RELIABILITY.md.
reliability: install
	JOBLOG_RELIABILITY_REPORT=docs/RELIABILITY.md $(BIN)/python -m pytest tests/reliability -q

# Refreshes the README's picture of the dashboard (make test writes it to a temporary file).
screenshot: install browser-deps
	JOBLOG_SCREENSHOT=docs/dashboard.png $(BIN)/python -m pytest tests/browser -q -k screenshot

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
