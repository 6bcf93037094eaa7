"""Selection: which checkpoint (epoch) a cell's test accuracy is read from.

One implementation, used by the engine (``train.GroupTrainer`` writes each selection's
epoch and accuracy into group.json) and by the tables, figures and findings (which read
the selection's column of results.csv). Every selection looks only at the epochs of a
cell's own phase: after its branch point for a warm-up variant (the reference's GLS run
keeps its own best, restarting at 0), all epochs for direct training.

- ``best``     the epoch with the best CLEAN-TEST accuracy (the reference code's choice;
               it looks at test labels, so it is optimistic);
- ``selected`` the epoch with the best accuracy on a held-out split of the NOISY
               training labels (honest: no clean label chooses the epoch);
- ``final``    the last epoch.

Ties go to the earliest epoch.
"""

from __future__ import annotations

import math
from typing import Sequence

# selection -> (column of results.csv, what it means)
SELECTIONS: dict[str, tuple[str, str]] = {
    "best": ("test_acc_best",
             "checkpoint with the best CLEAN-TEST accuracy among the epochs of the cell's own phase "
             "(the reference code's choice; it looks at test labels, so it is optimistic)"),
    "selected": ("test_acc_selected",
                 "checkpoint with the best accuracy on a held-out split of the NOISY training labels, among "
                 "the epochs of the cell's own phase (honest: no clean label is used to choose the epoch)"),
    "final": ("test_acc_final", "last epoch (no checkpoint selection)"),
}
SELECTION_TITLES = {"best": "best-on-test", "selected": "honest (noisy held-out)", "final": "final epoch"}
# the column of results.csv holding the epoch each selection chose (final: the last one)
EPOCH_COLUMNS = {"best": "best_epoch", "selected": "selected_epoch"}


def metric(selection: str) -> str:
    """The results.csv column of a selection's test accuracy."""
    try:
        return SELECTIONS[selection][0]
    except KeyError:
        raise ValueError(f"selection {selection!r} is unknown; allowed: {', '.join(SELECTIONS)}") from None


def first_best(history: Sequence[dict], key: str) -> int | None:
    """Index of the first row of ``history`` with the highest finite ``key`` (None: no finite value)."""
    finite = [i for i, row in enumerate(history) if row[key] is not None and math.isfinite(row[key])]
    if not finite:
        return None
    return max(finite, key=lambda i: (history[i][key], -i))


def select(history: Sequence[dict]) -> dict:
    """A cell's figures under every selection, from its per-epoch history (rows with
    ``epoch``, ``test_acc`` and ``val_acc``): the results.csv columns
    ``test_acc_final``, ``test_acc_best``/``best_epoch`` and
    ``test_acc_selected``/``selected_epoch``/``val_acc_selected`` (None without a
    held-out split)."""
    best = first_best(history, "test_acc")
    sel = first_best(history, "val_acc")
    return {
        "test_acc_final": history[-1]["test_acc"],
        "test_acc_best": None if best is None else history[best]["test_acc"],
        "best_epoch": None if best is None else history[best]["epoch"],
        "test_acc_selected": None if sel is None else history[sel]["test_acc"],
        "selected_epoch": None if sel is None else history[sel]["epoch"],
        "val_acc_selected": None if sel is None else history[sel]["val_acc"],
    }
