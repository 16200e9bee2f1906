# social-tone developer entry points. `make test` is what CI runs.
SHELL := /bin/bash
PYTHON ?= python3
# Two venvs, each in a cache keyed by its requirements, so fresh clones on one machine reuse
# them: the tasks venv (.venv links to it) and the Airflow venv (dags/, include/, tests/airflow).
REQ_HASH := $(shell cat requirements.txt pyproject.toml | sha256sum | cut -c1-12)
AF_HASH := $(shell cat requirements-airflow.txt | sha256sum | cut -c1-12)
VENV ?= $(HOME)/.cache/social-tone/venv-$(REQ_HASH)
AF_VENV ?= $(HOME)/.cache/social-tone/airflow-$(AF_HASH)
PY := $(VENV)/bin/python
AF_PY := $(AF_VENV)/bin/python
export PYTHONPATH := $(CURDIR)
# pip warns once per package about this machine's unused extra index ("Location ... is
# ignored"): hundreds of harmless lines, filtered out (pip's own exit status is kept)
QUIET_PIP := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; test $${PIPESTATUS[0]} -eq 0

.PHONY: venv airflow-venv nab engine images demo down clean lint test test-tasks test-airflow bench-train bench-quality bench-seeds bench-memory bench-serving bench-d2s bench-alerts fuzz gpu-smoke team-up team-down team-test clean-venv

# (+ Triton's C++ onnxruntime backend for this venv's ONNX Runtime: a stamp check when built)
venv: $(VENV)/.complete
	@if [ -L .venv ] || [ ! -e .venv ]; then ln -sfn $(VENV) .venv; fi
	@docker/build-ort-backend.sh $(VENV) >/dev/null

# No file prerequisites: the path already carries the requirements' hash, and a fresh clone's
# files are always newer than the cached stamp.
$(VENV)/.complete:
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip $(QUIET_PIP)
	$(PY) -m pip install -q -r requirements.txt $(QUIET_PIP)
	touch $@

airflow-venv: $(AF_VENV)/.complete

$(AF_VENV)/.complete:
	rm -rf $(AF_VENV)
	$(PYTHON) -m venv $(AF_VENV)
	$(AF_PY) -m pip install -q --upgrade pip $(QUIET_PIP)
	$(AF_PY) -m pip install -q -r requirements-airflow.txt $(QUIET_PIP)
	touch $@

# A Docker engine (Debian's docker.io, started by hand when none runs) and the task image.
engine:
	docker/start-dockerd.sh

images: engine
	docker/build-images.sh

# The embedded stack on 127.0.0.1 (Airflow standalone, MLflow, Triton) + a synthetic drop end to end.
# (the engine is started by the demo itself, so that `make down` stops it when the demo started it)
demo: venv airflow-venv
	PY=$(PY) AF_PY=$(AF_PY) scripts/demo.sh

down:
	scripts/down.sh

# Everything `make demo` left: the social-tone images (while the engine still runs), then
# `make down`, then the demo's data (.demo/). Venv caches stay (make clean-venv).
clean:
	@if docker info >/dev/null 2>&1; then docker images --format '{{.Repository}}:{{.Tag}}' | grep '^social-tone/' \
	  | xargs -r docker rmi -f >/dev/null; docker image prune -f >/dev/null; echo "removed the social-tone images"; \
	else echo "no Docker engine running: images kept"; fi
	scripts/down.sh
	rm -rf $${DEMO_DIR:-$(CURDIR)/.demo}
	@echo "removed $${DEMO_DIR:-$(CURDIR)/.demo}"

# images first: the task tests of the GPU image's wheelhouse need the base image (they skip without it)
test: lint images test-tasks test-airflow team-test

lint: venv
	$(PY) -m ruff check .

test-tasks: venv nab
	$(PY) -m pytest -q --ignore=tests/airflow --ignore=tests/team

test-airflow: venv airflow-venv images
	SOCIAL_TONE_TASKS_PYTHON=$(PY) $(AF_PY) -m pytest -q --confcutdir=tests/airflow tests/airflow

bench-train: venv
	$(PY) bench/train_speed.py --repeats 5 --json bench/results/train-speed.json

# real dev sets (bench/devsets.py builds them once into ~/.cache/social-tone/devsets) + synthetic
bench-quality: venv
	PYTHONPATH=. $(PY) bench/quality.py --json bench/results/quality.json

bench-seeds: venv
	PYTHONPATH=. $(PY) bench/seed_spread.py --json bench/results/seed-spread.json

bench-memory: venv
	PYTHONPATH=. $(PY) bench/train_memory.py --drops 1 10 --compare-ref 493dc09 --json bench/results/train-memory.json

bench-serving: venv
	$(PY) bench/serving.py --reloads 100 --clients 4

# NAB at the measured commit (bench/nab_corpus.py), for the spike-alert tests and bench-alerts: from
# SOCIAL_TONE_GIT_MIRRORS or GitHub; where neither answers, those two tests skip and say why
nab: venv
	@$(PY) bench/nab_corpus.py --checkout >/dev/null || echo "warning: no NAB checkout (make nab): its tests skip" >&2

# Spike alerts on NAB's real volumes, side by side with NAB's published detectors (a NAB checkout
# at NAB_DIR, default ~/.cache/social-tone/nab); rewrites the table in docs/benchmarks.md and the
# calibration the daily monitor quotes.
bench-alerts: nab
	$(PY) bench/alerts.py --json bench/results/alerts-$$(date +%F).json --doc docs/benchmarks.md \
	  --calibration tasks/detect_calibration.json

bench-d2s: venv airflow-venv images
	SOCIAL_TONE_TASKS_PYTHON=$(PY) $(AF_PY) bench/drop_to_serving.py --rows 70252

# The team stack (docker-compose.yaml: CeleryExecutor, Postgres, Redis, TEAM_WORKERS workers,
# MLflow, CPU Triton), every image built here: secrets generated into .env (kept on later runs),
# images, the stack, URLs. README "A team server".
team-up: venv engine
	SOCIAL_TONE_VENV=$(VENV) scripts/team.sh up

team-down:
	scripts/team.sh down

# The stack started for real in a temp dir (its own project and ports), a drop to served, two
# days scored, and the faults (TEAM_FAULTS=0 skips them); stopped and removed afterwards.
team-test: venv engine
	$(PY) -m pytest -q -p no:cacheprovider tests/team

# The long fuzz run of validation; its figure is recorded in docs/reliability.md.
fuzz: venv
	$(PY) bench/fuzz_validate.py --examples 5000 --json bench/results/fuzz-validate.json
	$(PY) docs/make_reliability.py

# The GPU serving path (TensorRT FP32/FP16, onnxruntime on KIND_GPU, NGC Triton 24.10) on a host
# with one GPU; exits 5 ("skipped") anywhere else. README: "GPU".
gpu-smoke:
	bash scripts/gpu-smoke.sh

clean-venv:
	rm -rf $(VENV) $(AF_VENV) .venv
