# smoothbench — the three commands of the README.
#   make setup   create .venv and install smoothbench with its test extras
#   make study   run the default study (params.yaml) with Snakemake on CORES cores
#   make test    the whole test suite, end-to-end Snakemake/DVC tests included
PYTHON ?= python3
VENV   ?= .venv
CORES  ?= 2
BIN    := $(VENV)/bin

.PHONY: setup study test test-fast bench clean-results

setup:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@$(BIN)/smoothbench --help >/dev/null && echo "smoothbench installed in $(VENV)"

study:
	$(BIN)/snakemake --cores $(CORES)

test:
	$(BIN)/pytest -m "slow or not slow"

test-fast:
	$(BIN)/pytest

bench:
	$(BIN)/smoothbench bench loss
	$(BIN)/smoothbench bench train

clean-results:
	rm -rf data noisy results checkpoints logs .snakemake
