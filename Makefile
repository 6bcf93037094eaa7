# smoothbench — the commands of the README.
#   make setup     create .venv and install smoothbench with its test extras
#   make study     run the default study (params.yaml) with Snakemake on CORES cores: a line per
#                  finished job (ARGS=--verbose: Snakemake's own console), and at the end, also
#                  with nothing to do, the reproduction check against expected/. ARGS go to Snakemake, e.g.
#                  make study ARGS="--configfile config/paper-cifar10.yaml"; `smoothbench run`
#                  checks --configfile and --config first (one line where Snakemake's own
#                  command line would print a traceback)
#   make test      the whole test suite, end-to-end Snakemake/DVC tests included, on
#                  TEST_WORKERS processes (pytest-xdist; a test file stays on one worker)
#   make expected  (maintainers) make reports/ the committed copy expected/ of the default study
#   make pull      dvc pull, then Snakemake's records of the pulled products (smoothbench pull:
#                  snakemake --touch when dvc status says they are what dvc.lock pins), so
#                  that nothing reruns; one line where no DVC remote is configured
#   make wheels    the wheels tools/gpu-check installs offline on a GPU machine, into .whl/
PYTHON ?= python3
VENV   ?= .venv
CORES  ?= 2
TEST_WORKERS ?= logical
ARGS   ?=
BIN    := $(VENV)/bin

.PHONY: setup study test test-fast bench clean-results expected pull wheels

setup:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@$(BIN)/smoothbench --help >/dev/null && echo "smoothbench installed in $(VENV)"

study:
	$(BIN)/smoothbench run --cores $(CORES) $(ARGS)

test:
	$(BIN)/pytest -m "slow or not slow" -n $(TEST_WORKERS) --dist loadfile --durations=15

test-fast:
	$(BIN)/pytest

bench:
	$(BIN)/smoothbench bench loss
	$(BIN)/smoothbench bench train --study

clean-results:
	rm -rf data noisy results checkpoints logs set-aside .snakemake

expected:
	@test "$$(git status --porcelain params.yaml)" = "" || { echo "params.yaml has uncommitted changes: expected/ must describe the committed default study"; exit 1; }
	$(BIN)/smoothbench validate params.yaml
	rm -rf expected && mkdir -p expected && cp -r reports/. expected/ && cp params.yaml expected/params.yaml
	@echo "expected/ now holds reports/ and params.yaml; commit it"

pull:
	@$(BIN)/smoothbench pull

# Wheels for a GPU machine without network (CPython 3.12, manylinux x86-64) that has torch,
# numpy, pandas, seaborn, scikit-learn, pytest, pyyaml and tqdm but not snakemake or
# jsonschema: those two with every dependency they pull in (pip takes only what is missing),
# and setuptools/wheel for the offline editable install. Pure-Python dependencies published
# as source only are built into wheels here first. tools/gpu-check installs them from .whl/;
# what a device run carries (the working tree plus .whl/) must stay under CARRY_MIB.
WHEEL_REQUIREMENTS := "snakemake>=9,<10" "jsonschema>=4.20" setuptools wheel
WHEEL_SOURCE_ONLY  := "connection_pool>=0.0.3"
WHEEL_TARGET       := --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
                      --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64
CARRY_MIB ?= 64

wheels:
	rm -rf .whl && mkdir -p .whl
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir .whl $(WHEEL_SOURCE_ONLY)
	$(BIN)/python -m pip download --quiet --dest .whl --find-links .whl $(WHEEL_TARGET) $(WHEEL_REQUIREMENTS)
	@whl=$$(du -cb .whl/*.whl | tail -1 | cut -f1); \
	tree=$$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1); \
	mib() { awk -v b="$$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }; \
	echo "wheels: $$(ls .whl/*.whl | wc -l) files, $$(mib $$whl) in .whl/; with the working tree ($$(mib $$tree)): $$(mib $$((whl + tree))) of $(CARRY_MIB) MiB"; \
	test $$((whl + tree)) -le $$(($(CARRY_MIB) * 1048576)) || { echo "make wheels: over $(CARRY_MIB) MiB: a device run cannot carry it"; exit 1; }
