"""The study's vocabulary: methods, noise kinds, cells, rates, seeds, ids and shared columns.

Every other module (and the Snakemake rules, and the schema checks) takes these names
from here; this module imports nothing of the package, so it sits at the bottom of
the import graph.

- **smooth rate r**: GLS soft target ``(1 - r) * onehot(y) + r / K``; r = 0 is CE,
  0 < r <= 1 is LS, r < 0 is NLS.
- **flip rate eps**: a label is replaced by a uniformly drawn other class with
  probability eps, afresh at every step; in expectation GLS with r = eps K / (K - 1).
- **cell**: one method at one rate inside a group; **group**: the cells that share
  dataset, noise kind and rate, and seed (one job).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# --------------------------------------------------------------------------- methods

# softmax methods: GLS with smooth rate r (ce: r = 0, ls: r > 0, nls: r < 0) and label flipping;
# BCE methods (seed note 001): sigmoid outputs trained with binary cross-entropy on targets
# (1 - r) * y + r / 2 (bce: r = 0, bls: r > 0, bnls: r < 0), one-vs-all for K > 2 classes
SOFTMAX_METHODS = ("ce", "ls", "nls", "flip")
BCE_METHODS = ("bce", "bls", "bnls")
METHODS = SOFTMAX_METHODS + BCE_METHODS
METHOD_LABELS = {"ce": "CE", "ls": "LS", "nls": "NLS", "flip": "flip", "bce": "BCE", "bls": "BCE-LS",
                 "bnls": "BCE-NLS"}
# each smoothing method and its unsmoothed baseline
BASELINE = {"ls": "ce", "nls": "ce", "flip": "ce", "bls": "bce", "bnls": "bce"}
# protocol variants are named by the study (params.yaml protocol.*.variants); names match this
VARIANT_PATTERN = r"^[a-z][a-z0-9]*$"

# --------------------------------------------------------------------------- noise

NOISE_KINDS = ("symmetric", "pairflip", "asymmetric", "instance", "human", "annotations")
# kinds whose "rate" is the name of a label set (CIFAR-N's, or one of a user's annotation files)
NAMED_KINDS = ("human", "annotations")

# CIFAR-N label sets (noise kind "human") and the dataset each belongs to
HUMAN_LABEL_SETS = {
    "aggre": "cifar10",
    "random1": "cifar10",
    "random2": "cifar10",
    "random3": "cifar10",
    "worst": "cifar10",
    "noisy100": "cifar100",
}

# --------------------------------------------------------------------------- cell outcomes

STATUSES = ("ok", "diverged")


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
    """One method at one rate inside a group. ``rate`` is r for ce/ls/nls, ε for flip."""

    method: str
    rate: float

    def __post_init__(self) -> None:
        check_method_rate(self.method, self.rate)

    @property
    def id(self) -> str:
        return f"{self.method}_{fmt_rate(self.rate)}"

    @property
    def smooth_rate(self) -> float:
        """The r of the cell's loss (flip cells train with plain CE on flipped labels)."""
        return 0.0 if self.method == "flip" else float(self.rate)

    @property
    def is_bce(self) -> bool:
        """Whether the cell trains sigmoid outputs with BCE (else softmax GLS)."""
        return self.method in BCE_METHODS

    @property
    def flip_rate(self) -> float:
        return float(self.rate) if self.method == "flip" else 0.0


def check_method_rate(method: str, rate: float) -> None:
    if method not in METHODS:
        raise ValueError(f"method {method!r} is unknown; allowed: {', '.join(METHODS)}")
    r = float(rate)
    if r != r:
        raise ValueError(f"rate of {method} is NaN")
    if method in ("ce", "bce") and r != 0.0:
        raise ValueError(f"{method} takes rate 0, got {rate}")
    if method in ("ls", "bls") and not 0.0 < r <= 1.0:
        raise ValueError(f"{method} rate must lie in (0, 1], got {rate}")
    if method in ("nls", "bnls") and not r < 0.0:
        raise ValueError(f"{method} rate must be < 0, got {rate}")
    if method == "flip" and not 0.0 < r <= 1.0:
        raise ValueError(f"flip rate must lie in (0, 1], got {rate}")


def sort_cells(cells) -> list[Cell]:
    """Cells in METHODS order, then by rate."""
    return sorted(cells, key=lambda c: (METHODS.index(c.method), c.rate))


def parse_cells(spec: str) -> list[Cell]:
    """``'ce:0,ls:0.2,nls:-0.4,flip:0.18'`` -> cells, sorted and without duplicates."""
    cells = set()
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        method, sep, rate = item.partition(":")
        if not sep:
            if method in ("ce", "bce"):
                rate = "0"
            else:
                raise ValueError(f"cell {item!r} needs METHOD:RATE, e.g. ls:0.2")
        try:
            value = float(rate)
        except ValueError:
            raise ValueError(f"cell {item!r}: rate {rate!r} is not a number") from None
        cells.add(Cell(method.strip(), value))
    if not cells:
        raise ValueError("the cells spec is empty; give e.g. 'ce:0,ls:0.2'")
    return sort_cells(cells)


def format_cells(cells: list[Cell]) -> str:
    return ",".join(f"{c.method}:{fmt_rate(c.rate)}" for c in cells)


def group_id(dataset: str, kind: str, rate: float | str, seed: int) -> str:
    return f"{dataset}-{kind}-{fmt_rate(rate)}-s{seed}"


# --------------------------------------------------------------------------- shared columns
#
# The engine writes these (group.json cells, curves.csv) and the collector reads them:
# one list each, so the two cannot disagree.

# per-epoch rows of a cell's curves.csv
CURVE_COLUMNS = ("epoch", "phase", "lr", "train_loss", "noisy_train_acc", "clean_train_acc",
                 "val_acc", "test_acc", "test_nll", "ece")
# the coordinates of a cell in the tidy tables
KEY_COLUMNS = ("dataset", "noise_kind", "noise_rate", "seed", "variant", "method", "rate")
# what the engine reports of each cell (group.json "cells" entries, beside variant, cell_id, method, rate)
CELL_METRIC_COLUMNS = (
    "status", "diverged_epoch", "test_acc_final", "test_acc_best", "test_acc_selected",
    "best_epoch", "selected_epoch", "val_acc_selected", "branch", "branch_epoch", "clean_train_acc",
    "noisy_train_acc", "test_nll", "ece", "train_loss", "smooth_rate", "flip_rate",
)
RESULT_COLUMNS = KEY_COLUMNS + ("cell_id",) + CELL_METRIC_COLUMNS + ("num_classes", "realised_noise_rate")
CURVES_OUT_COLUMNS = KEY_COLUMNS + ("cell_id",) + CURVE_COLUMNS

INT_COLUMNS = frozenset({"seed", "diverged_epoch", "best_epoch", "selected_epoch", "branch_epoch", "num_classes",
                         "epoch"})
FLOAT_COLUMNS = frozenset({
    "rate", "test_acc_final", "test_acc_best", "test_acc_selected", "val_acc_selected",
    "clean_train_acc", "noisy_train_acc", "test_nll", "ece", "train_loss", "smooth_rate",
    "flip_rate", "realised_noise_rate", "lr", "val_acc", "test_acc",
})
