"""The study's vocabulary: cells, rates, seeds, ids and shared columns.

Every other module (and the Snakemake rules, and the schema checks) takes these names
from here; this module imports nothing of the package, so it sits at the bottom of
the import graph.

- **smooth rate r**: GLS soft target ``(1 - r) * onehot(y) + r / K``; r = 0 is CE,
  0 < r <= 1 is LS, r < 0 is NLS.
- **flip rate eps**: a label is replaced by a uniformly drawn other class with
  probability eps, afresh at every step; in expectation GLS with r = eps K / (K - 1).
- **cell**: one method at one rate inside a group; **group**: the cells that share
  dataset, noise kind and rate, and seed (one folder of outputs; a job trains every seed
  of a setting, dataset x noise kind x rate, as one stack).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# --------------------------------------------------------------------------- methods
#
# The methods themselves (names, labels, parameters, losses) are the registry in
# ``smoothbench.methods``; a cell names its method and its parameter values. Datasets and
# noise kinds are the registries in ``smoothbench.data`` and ``smoothbench.noise``.

# protocol variants are named by the study (params.yaml protocol.*.variants); names match this
VARIANT_PATTERN = r"^[a-z][a-z0-9]*$"

# --------------------------------------------------------------------------- cell outcomes

# ok: trained; diverged: its loss or weights became non-finite (frozen at its last finite
# epoch); failed: not trained, its method refused its inputs (the reason is in its metrics.json
# and the train log), while the other cells of its group trained
STATUSES = ("ok", "diverged", "failed")


def derive_seed(*parts: object) -> int:
    """A seed in [0, 2**63) determined by ``parts`` (joined with '/' after ``str``)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def fmt_rate(rate: float | str) -> str:
    """Canonical text of a rate: ``0.2 -> '0.2'``, ``-1.0 -> '-1'``, names stay names."""
    if isinstance(rate, str):
        try:
            rate = float(rate)
        except ValueError:
            return rate
    return f"{float(rate):g}"


def flip_to_smooth(flip_rate: float, num_classes: int) -> float:
    """Flip rate eps -> the smooth rate r = eps*K/(K-1) with the same expected target."""
    check_num_classes(num_classes)
    return flip_rate * num_classes / (num_classes - 1)


def smooth_to_flip(smooth_rate: float, num_classes: int) -> float:
    """Smooth rate r -> the flip rate eps = r*(K-1)/K with the same expected target."""
    check_num_classes(num_classes)
    return smooth_rate * (num_classes - 1) / num_classes


def check_num_classes(num_classes: object) -> int:
    """``num_classes`` as an int, or ValueError unless it is an integer >= 2 (bools refused)."""
    if isinstance(num_classes, bool) or not hasattr(num_classes, "__index__") or int(num_classes) < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    return int(num_classes)


@dataclass(frozen=True, order=True)
class Cell:
    """One method at one parameter set inside a group: ``values`` in the order of the
    method's parameters (``smoothbench.methods``); r for ce/ls/nls, ε for flip, q for gce, ...
    Built and checked through the registry (``methods.cell``)."""

    method: str
    values: tuple[float, ...] = ()

    @property
    def id(self) -> str:
        """``ls_0.2``, ``sce_0.1_1``, ``forward`` (a method without parameters): the cell's folder name."""
        return "_".join([self.method, *(fmt_rate(v) for v in self.values)])

    @property
    def rate(self) -> float | None:
        """The first parameter's value (the smooth rate r of GLS, ε of flip), None without one."""
        return float(self.values[0]) if self.values else None


def group_id(dataset: str, kind: str, rate: float | str, seed: int) -> str:
    return f"{dataset}-{kind}-{fmt_rate(rate)}-s{seed}"


# A group's per-test-sample correctness, in its folder beside group.json (the engine writes
# it, the collector gathers every group's into one file beside results.csv): per cell and
# selection, whether the cell's prediction of each test sample is right at the epoch the
# selection chose, 8 samples a byte. The test set is the same for every seed of a dataset, so
# its sampling error does not average out over seeds; the report resamples it from these bits.
TEST_CORRECT_FILE = "test_correct.npz"


# --------------------------------------------------------------------------- shared columns
#
# The engine writes these (group.json cells, curves.csv) and the collector reads them:
# one list each, so the two cannot disagree.

# per-epoch rows of a cell's curves.csv
CURVE_COLUMNS = ("epoch", "phase", "lr", "train_loss", "noisy_train_acc", "clean_train_acc",
                 "val_acc", "test_acc", "test_nll", "ece")
# the coordinates of a cell in the tidy tables; ``params`` is the method's parameter set as
# text (``alpha=0.1;beta=1``, empty for a method without parameters)
KEY_COLUMNS = ("dataset", "noise_kind", "noise_rate", "seed", "variant", "method", "params")
# what the engine reports of each cell (group.json "cells" entries, beside variant, cell_id, method, rate);
# a cell of several models reports its first model; ``transition_mae`` (the mean absolute error of
# the T a cell estimated against the seed's true T) and ``noise_rate_hat`` (the noise rate that
# estimate implies) are empty but for the methods that estimate the noise
CELL_METRIC_COLUMNS = (
    "status", "diverged_epoch", "test_acc_final", "test_acc_best", "test_acc_selected",
    "best_epoch", "selected_epoch", "val_acc_selected", "branch", "branch_epoch", "clean_train_acc",
    "noisy_train_acc", "test_nll", "ece", "train_loss", "transition_mae", "noise_rate_hat",
)
# what the collector reads off a cell's curves: the held-out accuracy of its last epoch (what
# the final-epoch selection chooses parameters by)
CURVE_DERIVED_COLUMNS = ("val_acc_final",)
# ``rate``: the first parameter's value (numeric; empty for a method without parameters)
RESULT_COLUMNS = KEY_COLUMNS + ("rate", "cell_id") + CELL_METRIC_COLUMNS + CURVE_DERIVED_COLUMNS + (
    "num_classes", "realised_noise_rate")
CURVES_OUT_COLUMNS = KEY_COLUMNS + ("cell_id",) + CURVE_COLUMNS

INT_COLUMNS = frozenset({"seed", "diverged_epoch", "best_epoch", "selected_epoch", "branch_epoch", "num_classes",
                         "epoch"})
FLOAT_COLUMNS = frozenset({
    "rate", "test_acc_final", "test_acc_best", "test_acc_selected", "val_acc_selected", "val_acc_final",
    "clean_train_acc", "noisy_train_acc", "test_nll", "ece", "train_loss",
    "realised_noise_rate", "lr", "val_acc", "test_acc", "transition_mae", "noise_rate_hat",
})
