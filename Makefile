# The two commands that do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
VENV_BIN := $(VENV)/bin

.PHONY: setup lint format test demo clean

setup:
	$(PYTHON) tools/setup_env.py

lint: setup
	$(VENV_BIN)/ruff check .
	$(VENV_BIN)/ruff format --check .

format: setup
	$(VENV_BIN)/ruff check --fix .
	$(VENV_BIN)/ruff format .

test: setup lint
	$(VENV_BIN)/python -m pytest -q --timeout=900 --durations=15

demo: setup
	$(VENV_BIN)/togethernet demo --output demo_out

clean:
	rm -rf build install log demo_out .pytest_cache .ruff_cache
