# Every target sets itself up on a fresh Debian machine (Python 3.11, root).
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
LABEXT := labextension
# `pip install -e` also builds the lab extension (hatch-jupyter-builder: npm install + npm run build in
# labextension/) and copies it where JupyterLab finds it, so the stamp depends on the extension's sources.
LABEXT_SOURCES := $(wildcard $(LABEXT)/src/*.ts) $(LABEXT)/style/index.css $(LABEXT)/package.json $(LABEXT)/package-lock.json

# libfaketime for the clock-step test (tests/faults/test_clock_steps.py), which steps the service process's wall
# clock. Debian 12's libfaketime (0.9.10) makes Python 3.11's time.sleep fail when monotonic time is not faked;
# Debian 13 (trixie) carries the fixed source. Its upstream tarball comes from the Debian archive this machine's
# apt already uses, through a private source list (the machine's own apt sources stay as they are), and is built
# under the venv.
# Built without its pthread wrappers (-UFAKE_PTHREAD): monotonic time is not faked, and those wrappers made
# Python's GIL wait abort now and then ("take_gil: PyCOND_WAIT failed").
FAKETIME_SUITE := trixie
FAKETIME_DIR := $(VENV)/faketime
FAKETIME_LIB := $(FAKETIME_DIR)/libfaketimeMT.so.1

.PHONY: setup demo test test-ts lint bench clean faketime

$(STAMP): pyproject.toml tests/operators/example_pkg/pyproject.toml $(LABEXT_SOURCES)
	@missing=""; \
	command -v dot >/dev/null 2>&1 || missing="$$missing graphviz"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
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

$(FAKETIME_LIB):
	@missing=""; \
	command -v cc >/dev/null 2>&1 || missing="$$missing gcc libc6-dev"; \
	command -v xz >/dev/null 2>&1 || missing="$$missing xz-utils"; \
	if [ -n "$$missing" ]; then apt-get update && apt-get install -y $$missing; fi
	rm -rf $(FAKETIME_DIR)/build
	mkdir -p $(FAKETIME_DIR)/build/lists/partial $(FAKETIME_DIR)/build/cache/archives/partial $(FAKETIME_DIR)/build/src
	archive() { apt-get indextargets --format '$$(REPO_URI)' 'Identifier: Packages' 'Label: Debian' 'Component: main' | head -n1; }; \
	uri=$$(archive); test -n "$$uri" || { apt-get update -q && uri=$$(archive); }; \
	test -n "$$uri" || { echo "no Debian archive in this machine's apt sources" >&2; exit 1; }; \
	echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $$uri $(FAKETIME_SUITE) main" > $(FAKETIME_DIR)/build/sources.list
	cd $(FAKETIME_DIR)/build/src && \
	apt="-o Dir::Etc::SourceList=$(abspath $(FAKETIME_DIR))/build/sources.list -o Dir::Etc::SourceParts=/nonexistent \
	     -o Dir::State::Lists=$(abspath $(FAKETIME_DIR))/build/lists -o Dir::Cache=$(abspath $(FAKETIME_DIR))/build/cache" && \
	apt-get -q $$apt update && apt-get -q $$apt source --tar-only faketime && \
	tar -xf faketime_*.orig.tar.* && make -C faketime-*/src libfaketimeMT.so.1 FAKETIME_COMPILE_CFLAGS=-UFAKE_PTHREAD
	cp $(FAKETIME_DIR)/build/src/faketime-*/src/libfaketimeMT.so.1 $(FAKETIME_DIR)/libfaketimeMT.so.1.new
	mv $(FAKETIME_DIR)/libfaketimeMT.so.1.new $(FAKETIME_LIB)
	rm -rf $(FAKETIME_DIR)/build

faketime: $(FAKETIME_LIB)

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

# AIFLOW_NB_LIBFAKETIME: the clock-step test fails, rather than skips, if this libfaketime does not work.
test: lint test-ts $(FAKETIME_LIB)
	AIFLOW_NB_LIBFAKETIME=$(abspath $(FAKETIME_LIB)) $(VENV)/bin/pytest -q -p no:cacheprovider --durations=15

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
	rm -rf $(LABEXT)/node_modules $(LABEXT)/lib $(LABEXT)/tsconfig.tsbuildinfo aiflow_nb/jupyter/labextension
