# The two commands a newcomer types: `make run` (set up + main job on SQLite) and `make test`.
# Each first creates or updates .venv from the project's own files (pyproject.toml + constraints.txt).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LS_VENV  := .venv-labelstudio
LS_STAMP := $(LS_VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup run test test-fast lint labelstudio clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (found " + sys.version.split()[0] + ")")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip==25.3"
	$(BIN)/pip install -c constraints.txt -e '.[test]'
	@touch $@

$(LS_STAMP): requirements/labelstudio.txt
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install -q -r requirements/labelstudio.txt
	@touch $@

setup: $(STAMP)

labelstudio: $(LS_STAMP)

## Main job on the embedded default (SQLite file ./interop.db), then the explorer on http://localhost:8501.
run: setup
	$(BIN)/interop db upgrade
	$(BIN)/interop info
	$(BIN)/interop experiment run --preset quick
	$(BIN)/interop app --port 8501

## Lint (ruff, and mypy over db/ miners/ labeling/ experiments/) and the whole test suite (slow ML tests and real
## services included).
test: setup labelstudio
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Everything but the tests marked slow.
test-fast: setup
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m mypy

clean:
	rm -rf $(VENV) $(LS_VENV) .pytest_cache .ruff_cache
