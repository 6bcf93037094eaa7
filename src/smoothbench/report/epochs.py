"""The protocol shown: where each cell's honest epoch falls in its own phase, what training on
to the final epoch does, and which cells collapsed.

A cell's **own phase** is its training after the branch point (warm-up variants) or all of
it (direct): the curves' rows of phase ``main``. Its honest epoch (``selected_epoch``) falls
on the phase's **first** epoch, its **last**, or in the **middle**. Per (setting, variant,
method, parameters), over the seeds whose cell has an honest epoch:

- the number of seeds at each position; the cells are **flagged** when more than half of
  them sit at the phase's first epoch: then the held-out split says "stop after one epoch of
  this method", and the method's figure is one epoch of it at the phase's learning rate: the
  phase's learning rate or length decides the result, not the method alone;
- final minus honest: the mean over seeds of the final-epoch test accuracy minus the honest
  one, in points;
- **collapsed** cells: final-epoch test accuracy more than ``collapse_points`` below the honest
  one (the best-on-test one without a held-out split): the method, trained on, loses what it
  had (NLS's loss is unbounded below). Collapse is not divergence (a non-finite loss): the
  cell trains on with finite numbers, and is reported beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..core.vocabulary import KEY_COLUMNS

POSITIONS = ("first", "middle", "last")


@dataclass(frozen=True)
class PhaseUse:
    n: int                       # seeds with an honest epoch (non-diverged)
    first: int
    middle: int
    last: int
    final_minus_honest: float | None   # points, mean over seeds
    collapsed: int               # cells (seeds) that collapsed
    diverged: int                # cells (seeds) that diverged
    cells: int                   # cells (seeds) in all

    @property
    def flagged(self) -> bool:
        return self.n > 0 and self.first > self.n / 2


Key = tuple   # (dataset, noise kind, noise rate, variant, method, values)


def position(epoch: int, phase_epochs: list[int]) -> str:
    """Where ``epoch`` falls among ``phase_epochs``: first, last or middle (a one-epoch phase: first)."""
    if epoch == phase_epochs[0]:
        return "first"
    return "last" if epoch == phase_epochs[-1] else "middle"


def phase_use(rows: list[dict], curves: dict[tuple, list[dict]], collapse_points: float) -> dict[Key, PhaseUse]:
    """Per (setting, variant, method, parameters): how its cells used their own phase."""
    acc: dict[Key, dict] = {}
    for r in rows:
        key = (r["dataset"], r["noise_kind"], r["noise_rate"], r["variant"], r["method"], tuple(r["values"]))
        a = acc.setdefault(key, {"first": 0, "middle": 0, "last": 0, "diffs": [], "collapsed": 0, "diverged": 0,
                                 "cells": 0})
        a["cells"] += 1
        if r["status"] != "ok":
            a["diverged"] += 1
            continue
        honest = r["test_acc_selected"] if r["test_acc_selected"] is not None else r["test_acc_best"]
        final = r["test_acc_final"]
        if honest is not None and final is not None and math.isfinite(honest) and math.isfinite(final):
            a["collapsed"] += 100 * (honest - final) > collapse_points
            if r["test_acc_selected"] is not None:
                a["diffs"].append(100 * (final - honest))
        if r["selected_epoch"] is None:
            continue
        own = sorted(c["epoch"] for c in curves.get(tuple(r[k] for k in KEY_COLUMNS), []) if c["phase"] == "main")
        if own:
            a[position(r["selected_epoch"], own)] += 1
    return {k: PhaseUse(a["first"] + a["middle"] + a["last"], a["first"], a["middle"], a["last"],
                        math.fsum(a["diffs"]) / len(a["diffs"]) if a["diffs"] else None, a["collapsed"],
                        a["diverged"], a["cells"]) for k, a in acc.items()}
