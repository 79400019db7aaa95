# Every target sets itself up on a fresh Debian machine (Python 3.11, root).
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@command -v dot >/dev/null 2>&1 || { apt-get update && apt-get install -y graphviz; }
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(PY) -m aiflow_nb.demo

lint: setup
	$(VENV)/bin/ruff check aiflow_nb tests benchmarks
	$(VENV)/bin/ruff format --check aiflow_nb tests benchmarks
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest -q -p no:cacheprovider --durations=15

bench: setup
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
