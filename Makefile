# social-tone developer entry points. `make test` is what CI runs.
SHELL := /bin/bash
PYTHON ?= python3
REQ_HASH := $(shell cat requirements.txt pyproject.toml | sha256sum | cut -c1-12)
# The venv lives in a cache keyed by the requirements, so fresh clones on the same machine
# reuse it; .venv in the repo is a symlink to it.
VENV ?= $(HOME)/.cache/social-tone/venv-$(REQ_HASH)
PY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)

.PHONY: venv test bench-train clean-venv

venv: $(VENV)/.complete
	@if [ -L .venv ] || [ ! -e .venv ]; then ln -sfn $(VENV) .venv; fi

# No file prerequisites: the path already carries the requirements' hash, and a fresh clone's
# files are always newer than the cached stamp.
$(VENV)/.complete:
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

test: venv
	$(PY) -m pytest -q

bench-train: venv
	$(PY) bench/train_speed.py --repeats 2

clean-venv:
	rm -rf $(VENV) .venv
