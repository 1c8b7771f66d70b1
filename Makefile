# Thin wrappers over scripts/: each target does its own set-up on a fresh
# Debian machine (root and apt-get), so `make demo` and `make test` are the
# only commands a new user needs.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench docs lint venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	bash scripts/ensure-python.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: venv
	$(PY) -m labdock demo

test: venv
	bash scripts/test.sh

bench: venv
	bash bench/run.sh

docs: venv
	bash scripts/build-docs.sh

lint: venv
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy src

clean:
	rm -rf $(VENV) build site
