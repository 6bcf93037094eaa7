# smoothbench — the commands of the README.
#   make setup     create .venv and install smoothbench with its test extras
#   make study     run the default study (params.yaml) with Snakemake on CORES cores; it ends
#                  with the reproduction check against expected/. ARGS go to Snakemake, e.g.
#                  make study ARGS="--configfile config/paper-cifar10.yaml"; `smoothbench run`
#                  checks --configfile and --config first (one line where Snakemake's own
#                  command line would print a traceback)
#   make test      the whole test suite, end-to-end Snakemake/DVC tests included
#   make expected  (maintainers) make reports/ the committed copy expected/ of the default study
#   make pull      dvc pull, or one line saying that no DVC remote is configured
PYTHON ?= python3
VENV   ?= .venv
CORES  ?= 2
ARGS   ?=
BIN    := $(VENV)/bin

.PHONY: setup study test test-fast bench clean-results expected pull

setup:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@$(BIN)/smoothbench --help >/dev/null && echo "smoothbench installed in $(VENV)"

study:
	$(BIN)/smoothbench run --cores $(CORES) $(ARGS)

test:
	$(BIN)/pytest -m "slow or not slow"

test-fast:
	$(BIN)/pytest

bench:
	$(BIN)/smoothbench bench loss
	$(BIN)/smoothbench bench train

clean-results:
	rm -rf data noisy results checkpoints logs .snakemake

expected:
	@test "$$(git status --porcelain params.yaml)" = "" || { echo "params.yaml has uncommitted changes: expected/ must describe the committed default study"; exit 1; }
	$(BIN)/smoothbench validate params.yaml
	rm -rf expected && mkdir -p expected && cp -r reports/. expected/ && cp params.yaml expected/params.yaml
	@echo "expected/ now holds reports/ and params.yaml; commit it"

pull:
	@if $(BIN)/dvc remote default >/dev/null 2>&1; then $(BIN)/dvc pull; \
	else echo "no DVC remote is configured: add yours once (dvc remote add --local -d store PATH) or train with make study"; exit 1; fi
