# hybridlib — every command a user needs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= cpu
SEEDS ?= 0 1 2
# the venv's own `python3` kernel, even if the user has another one registered
export JUPYTER_PREFER_ENV_PATH := 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: help venv test reproduce lab bench seeds tradeoff data notebooks clean

help:
	@echo "make reproduce [PROFILE=cpu|gpu|smoke]  run every notebook headless, write results/PROFILE/summary.{json,md}"
	@echo "make test                              unit tests + every notebook through nbval (smoke profile, offline)"
	@echo "make lab                               JupyterLab on the notebooks"
	@echo "make bench                             training-step benchmark -> results/bench.json"
	@echo "make seeds [SEEDS='0 1 2']             the cpu-profile comparison over several seeds -> results/cpu/seeds.*"
	@echo "make tradeoff                          the lambda sweep notebook (cpu profile)"
	@echo "make data                              fetch the cpu profile's data (Fashion-MNIST) if it is missing"

# The virtual environment is (re)built when missing or older than pyproject.toml: a stamp, not a reinstall per call.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (hybridlib)" >/dev/null
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	HYBRIDLIB_PROFILE=smoke $(BIN)/python -m pytest --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg \
		-p no:cacheprovider tests notebooks

data: $(STAMP)
	@if [ "$(PROFILE)" = "cpu" ]; then $(BIN)/python -m hybridlib fetch-data fashion-mnist; fi
	@if [ "$(PROFILE)" = "gpu" ]; then $(BIN)/python -m hybridlib fetch-data cifar10; fi

reproduce: $(STAMP) data
	$(BIN)/python -m hybridlib reproduce --profile $(PROFILE)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)
	$(BIN)/python -m hybridlib bench

seeds: $(STAMP) data
	$(BIN)/python -m hybridlib seeds --profile $(PROFILE) --seeds $(SEEDS)

tradeoff: $(STAMP) data
	$(BIN)/python -m hybridlib reproduce --profile $(PROFILE) --notebooks 06_tradeoff.ipynb

# Regenerate the notebooks from tools/build_notebooks.py (drops their outputs; `make reproduce` restores them).
notebooks: $(STAMP)
	$(BIN)/python tools/build_notebooks.py

clean:
	rm -rf runs results/smoke .pytest_cache
