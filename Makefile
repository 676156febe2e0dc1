# MNIST < 8k params in three literate blocks.  `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
# PY: the Python every target runs. Default: the project's .venv, built from requirements.txt on
# first use. `make reports PY=python` runs in an environment you already have (the conda one
# sets PY itself) and builds no .venv.
PY ?= $(VENV)/bin/python
ENV := $(if $(filter $(VENV)/bin/python,$(PY)),$(STAMP))

REPORTS_DIR ?= reports
SMOKE_DIR := build/smoke
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.py))
STEMS := $(notdir $(NOTEBOOKS:.py=))

# make reports EPOCHS=3 SEED=2 DEVICE=cuda PARAMS='-p lr 0.05'
COMMON := $(if $(EPOCHS),-c epochs $(EPOCHS)) $(if $(SEED),-c seed $(SEED)) $(if $(DEVICE),-c device $(DEVICE))

export PYTHONUNBUFFERED := 1

.PHONY: help venv data reports index lab notebooks test unit nbval reference bench study postgres clean gpu-bundle gpu-check test-gpu-bundle $(STEMS:%=report-%)

help:  ## list the targets
	@grep -hE '^[a-z%-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 18
	@echo "report-<stem>     run one notebook, e.g. make report-03_final"

venv: $(STAMP)  ## create .venv from requirements.txt (rebuilt only when it changes)
$(STAMP): requirements.txt pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --disable-pip-version-check -q -r requirements.txt
	$(VENV)/bin/python -m pip install --disable-pip-version-check -q --no-deps -e .
	@touch $@

data: $(ENV)  ## fetch MNIST into MNIST_DATA_DIR (default data/) and verify its md5 sums
	$(PY) -m lib.data

reports: $(ENV)  ## execute every notebook into REPORTS_DIR (default reports/) (EPOCHS= SEED= DEVICE= PARAMS=)
	@start=$$(date +%s); $(MAKE) --no-print-directory index; status=$$?; \
	echo "make reports: finished in $$(( $$(date +%s) - start )) s"; exit $$status

index: $(STEMS:%=report-%)  ## run what is out of date, then write REPORTS_DIR/README.md, index.html and the figure
	$(PY) -m lib.pipeline index --out $(REPORTS_DIR)

# report-%: run one notebook, e.g. make report-03_final  (listed by `make help`)
$(STEMS:%=report-%): report-%: $(ENV) data
	$(PY) -m lib.pipeline run notebooks/$*.py --out $(REPORTS_DIR) $(COMMON) $(PARAMS)

notebooks: $(ENV)  ## write the .ipynb twin of every notebooks/*.py (jupytext pairing)
	$(PY) -m jupytext --sync $(NOTEBOOKS)

lab: notebooks data  ## JupyterLab on notebooks/, settings from .jupyter/ (a .py opens as a notebook)
	$(PY) -m lib.lab

test: unit nbval  ## the whole test suite: lib tests, then nbval over every notebook

# TEST_JOBS: pytest processes (pytest-xdist), each taking whole test files (their module
# fixtures, e.g. a study run once, are shared within a file)
TEST_JOBS ?= 2
unit: $(ENV) data postgres  ## pytest on tests/ (lib, data, pipeline, studies), TEST_JOBS files at a time (default 2)
	$(PY) -m pytest -q -n $(TEST_JOBS) --dist loadfile --durations=10 tests

nbval: $(ENV) data  ## re-execute tests/reference/*.ipynb, compare outputs, then metrics within tolerance
	TQDM_DISABLE=1 $(PY) -m pytest -q -p no:cacheprovider --nbval tests/reference tests/check_smoke_metrics.py \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-kernel-name python3

reference: $(ENV) data  ## regenerate tests/reference/ and the smoke study's record (smoke runs); do it on purpose, then review the diff
	$(PY) -m lib.study run tests/studies/smoke.toml --rerun-stale
	@for nb in $(NOTEBOOKS); do \
	  TQDM_DISABLE=1 $(PY) -m lib.pipeline run $$nb --out $(SMOKE_DIR) --force --smoke || exit 1; done
	mkdir -p tests/reference && cp $(SMOKE_DIR)/*.ipynb $(SMOKE_DIR)/*.metrics.json tests/reference/

# make study STUDY=recipe [JOBS=2] [STORAGE=postgresql://user@host/db] [ARGS=--retry-failed]
# STORAGE reaches lib.study as STUDY_STORAGE, in its environment: on no command line (ps)
study: export STUDY_STORAGE := $(or $(STORAGE),$(STUDY_STORAGE))
study: $(ENV) data  ## run what is missing of a study: STUDY=recipe (studies/recipe.toml) [JOBS= STORAGE= ARGS=]
	@test -n "$(STUDY)" || { echo "error: STUDY is required, e.g. make study STUDY=recipe; studies: $(notdir $(basename $(wildcard studies/*.toml)))" >&2; exit 2; }
	$(PY) -m lib.study run $(STUDY) $(if $(JOBS),--jobs $(JOBS)) $(ARGS)

# the studies' tests start their own PostgreSQL server (tests/conftest.py): it has to be installed
postgres:  ## install PostgreSQL's server if it is missing (Debian, as root), for the studies' tests
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; \
	  else echo "error: PostgreSQL's server is missing: install it (Debian: apt-get install postgresql)" >&2; exit 1; fi

bench: $(ENV) data  ## images/s: standard torchvision pipeline vs ours, ends with `ratio: X.XX` (ARGS=--study-workers: the studies runner's runs/hour with 1 vs 2 workers)
	$(PY) -m lib.bench $(ARGS)

# A GPU machine with its own torch and no registry (docs/gpu.md): make the bundle here, carry
# BUNDLE there, run `make gpu-check PY=python3` (or `python3 -m lib.gpu check`) there.
BUNDLE ?= build/gpu-bundle
GPU_PYTHON ?= 3.12
# gpu-check runs in the Python that has the machine's torch: PY where given, else python3
GPU_PY := $(if $(filter $(VENV)/bin/python,$(PY)),$(if $(wildcard $(PY)),$(PY),python3),$(PY))

gpu-bundle: $(ENV) data  ## wheels the GPU image lacks + MNIST gzipped, into BUNDLE (default build/gpu-bundle; GPU_PYTHON=3.12)
	$(PY) -m lib.gpu bundle --out $(BUNDLE) --python-version $(GPU_PYTHON)

gpu-check:  ## on a GPU machine: install BUNDLE offline, smoke, bench, every notebook into reports/gpu, record (DEVICE=cuda; SMOKE_ONLY=1 DEVICE=cpu: a dry run)
	$(GPU_PY) -m lib.gpu check --bundle $(BUNDLE) --device $(or $(DEVICE),cuda) $(if $(SMOKE_ONLY),--smoke-only) $(ARGS)

test-gpu-bundle: $(ENV) data  ## slow, needs PyPI: this machine's bundle installs offline beside a torch-only Python and gpu-check runs in it (cpu, smoke)
	RUN_GPU_BUNDLE_TEST=1 $(PY) -m pytest -q -p no:cacheprovider tests/test_gpu_bundle.py

clean:  ## remove build/ (smoke runs, the compile cache); keeps .venv, data/ and reports/
	rm -rf build
