# Every target sets itself up on a fresh Debian machine (Python 3.11, root).
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
LABEXT := labextension
# `pip install -e` also builds the lab extension (hatch-jupyter-builder: npm install + npm run build in
# labextension/) and copies it where JupyterLab finds it, so the stamp depends on the extension's sources.
LABEXT_SOURCES := $(wildcard $(LABEXT)/src/*.ts) $(LABEXT)/style/index.css $(LABEXT)/package.json $(LABEXT)/package-lock.json

.PHONY: setup demo test test-ts lint bench clean

$(STAMP): pyproject.toml tests/operators/example_pkg/pyproject.toml $(LABEXT_SOURCES)
	@missing=""; \
	command -v dot >/dev/null 2>&1 || missing="$$missing graphviz"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	command -v faketime >/dev/null 2>&1 || missing="$$missing faketime"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	command -v java >/dev/null 2>&1 || missing="$$missing openjdk-17-jre-headless"; \
	if [ -n "$$missing" ]; then apt-get update && apt-get install -y $$missing; fi
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	rm -rf aiflow_nb/jupyter/labextension  # the hook only compares src/ times; a style change must rebuild too
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps -e tests/operators/example_pkg  # the operator of tests/operators
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(PY) -m aiflow_nb.demo

lint: setup
	$(VENV)/bin/ruff check aiflow_nb tests benchmarks
	$(VENV)/bin/ruff format --check aiflow_nb tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# The panel's state logic (vitest).
test-ts: setup
	cd $(LABEXT) && npm test

test: lint test-ts
	$(VENV)/bin/pytest -q -p no:cacheprovider --durations=15

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
	rm -rf $(LABEXT)/node_modules $(LABEXT)/lib $(LABEXT)/tsconfig.tsbuildinfo aiflow_nb/jupyter/labextension
