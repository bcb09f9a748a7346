# astra_ros: `make demo` and `make test` are the two entry points (README.md).
# Both create or reuse .venv via scripts/bootstrap.py (a no-op in about a second when nothing changed).

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
DEMO_SECONDS ?=
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup test demo lint clean

setup:
	$(PYTHON) scripts/bootstrap.py

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q test $(PYTEST_ARGS)

demo: setup
	$(PY) -m astra_ros.demo $(if $(DEMO_SECONDS),--seconds $(DEMO_SECONDS)) $(DEMO_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build install log .pytest_cache .ruff_cache
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
