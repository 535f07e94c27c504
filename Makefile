# Every target builds .venv from scratch when it is missing: a fresh machine needs only Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint bench soak clean browsers screenshots

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	rm -f demo.db demo.db-wal demo.db-shm
	$(BIN)/turnlog demo --db demo.db

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Three pytest processes on a 2-core machine: most tests wait on servers, subprocesses and
# PostgreSQL, so the suite runs in less than half the time. --dist loadfile keeps each test file
# on one process: a module's fixtures (the browser, the servers) start once, and a module's tests
# that share state (tests/properties/test_fold_model.py) see each other.
test: lint browsers
	$(BIN)/pytest -n 3 --dist loadfile

# The web console's tests (tests/browser) drive Debian's chromium through chromedriver: installed
# here when missing (as root with apt-get). Without them those tests are skipped, and fail under CI=true.
browsers:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver; \
	else echo "chromium or chromedriver missing and not root with apt-get: the browser tests will be skipped" >&2; fi

# Retake the console's pictures in docs/ (README, "Web console").
screenshots: $(STAMP) browsers
	TURNLOG_SCREENSHOTS=docs $(BIN)/pytest tests/browser -q -k "audit_page or phone_width"

bench: $(STAMP)
	$(BIN)/python bench/turn_throughput.py
	$(BIN)/python bench/parse_throughput.py
	$(BIN)/python bench/server_load.py

soak: $(STAMP) ; $(BIN)/python bench/crash_soak.py

clean:
	rm -rf $(VENV) build dist *.egg-info demo.db demo.db-wal demo.db-shm
