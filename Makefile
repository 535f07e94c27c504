# Every target builds .venv from scratch when it is missing: a fresh machine needs only Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint bench soak clean

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

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/turn_throughput.py
	$(BIN)/python bench/parse_throughput.py
	$(BIN)/python bench/server_load.py

soak: $(STAMP) ; $(BIN)/python bench/crash_soak.py

clean:
	rm -rf $(VENV) build dist *.egg-info demo.db demo.db-wal demo.db-shm
