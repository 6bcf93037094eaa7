"""Every choice the report makes, in one place: the choices table (``choices.csv``, beside
results.csv, written by ``smoothbench choose``) that the tables, the leaderboard, the claims,
the findings and the figures read.

Per (dataset, noise kind, noise rate, protocol variant, method) and selection, the chosen
parameter set: the one with the highest mean over seeds of the selection's **choosing
score** (``CHOOSE_BY``), ties to the set closer to 0 (the smaller sum of absolute values),
then the smaller. The scores:

- ``selected`` (honest): the held-out accuracy on the NOISY labels at each cell's honest
  epoch (``val_acc_selected``). No test label enters: replace every test accuracy by noise
  and every honest choice stays (a test checks it).
- ``final``: the held-out accuracy at the last epoch (``val_acc_final``); without a held-out
  split (val_fraction 0) the final-epoch TEST accuracy (``test_acc_final``), and the table's
  ``chosen_by`` says so.
- ``best`` (the reference code's): the clean-TEST accuracy at the best-on-test epoch
  (``test_acc_best``); named for what it is.

Without a held-out split there is no honest choice (``why``: no held-out split).

Then per (setting, method) the chosen **variant** (the one whose chosen parameters score
highest; ties: the first), and the **ranks**: per (setting, variant) and per setting over
the methods at their chosen variants, by the same score (ties: registry order). The
leaderboard's order and leader, the best robust baseline NLS is paired with, (c')'s best r:
all read here. A chosen value at the lowest or highest of the values its parameter takes in
the setting's grid is on the grid's **edge** (the best may lie beyond it).

Diverged cells (status ``diverged``) never enter a mean; a parameter set whose seeds all
diverged (or that has no score: no held-out split) cannot be chosen.

``choose_index`` is the rule itself, vectorised over replicates: the bootstrap
(``inference``) re-makes every choice inside each replicate with it, from the resampled
seeds' scores, so that the choice's own variability enters the intervals.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from .. import methods as registry
from ..core.files import write_text
from .collect import csv_text, rate_key, read_csv

CHOOSE_BY = {"selected": "val_acc_selected", "final": "val_acc_final", "best": "test_acc_best"}
# what a selection chooses by where the study has no held-out split (None: it cannot choose)
WITHOUT_HELD_OUT = {"selected": None, "final": "test_acc_final", "best": "test_acc_best"}
TEST_COLUMNS = frozenset({"test_acc_best", "test_acc_final", "test_acc_selected"})
CHOICE_SELECTIONS = ("selected", "final", "best")
COLUMNS = ["dataset", "noise_kind", "noise_rate", "variant", "method", "selection", "chosen_by", "params", "rate",
           "score_mean_pct", "n_seeds", "grid", "edge", "variant_chosen", "rank_in_variant", "rank", "why"]


def preference(values: tuple) -> tuple:
    """Tie-break order of parameter sets: closer to 0 first (sum of absolute values), then the smaller."""
    return (sum(abs(v) for v in values), values)


def choose_index(scores: np.ndarray) -> np.ndarray:
    """THE choice rule. ``scores``: (P, R, S), P candidates in ``preference`` order, R
    replicates, S seeds (NaN: no score). Per replicate, the index of the candidate with the
    highest mean over its seeds (ties: the earlier, i.e. the preferred), -1 where none has a score."""
    with np.errstate(invalid="ignore", divide="ignore"):
        counts = np.sum(~np.isnan(scores), axis=-1)
        sums = np.nansum(scores, axis=-1)
        means = np.where(counts > 0, sums / np.maximum(counts, 1), -np.inf)       # (P, R)
    best = np.argmax(means, axis=0)
    return np.where(np.isfinite(means.max(axis=0)), best, -1)


@dataclass(frozen=True)
class Choice:
    """One row of the choices table (``values`` None: nothing could be chosen, ``why`` says why)."""

    dataset: str
    noise_kind: str
    noise_rate: str
    variant: str
    method: str
    selection: str
    chosen_by: str                # the results column the choice was made by
    values: tuple | None
    score_mean: float | None      # fraction
    n_seeds: int
    grid: int
    edge: str                     # "" or "name:low" / "name:high" items joined by ";"
    variant_chosen: bool
    rank_in_variant: int | None
    rank: int | None
    why: str = ""

    @property
    def rate(self) -> float | None:
        return self.values[0] if self.values else None

    @property
    def setting(self) -> tuple[str, str, str]:
        return (self.dataset, self.noise_kind, self.noise_rate)


def _score(row: dict, column: str) -> float:
    v = row[column]
    return float(v) if row["status"] == "ok" and v is not None and math.isfinite(v) else math.nan


def edge_of(method: str, chosen: tuple, candidates: list[tuple]) -> str:
    """Which parameters of ``chosen`` sit at the lowest or highest value their parameter takes
    among ``candidates`` (those with at least two values)."""
    names = [p.name for p in registry.get(method).params]
    out = []
    for j, name in enumerate(names[:len(chosen)]):
        values = sorted({c[j] for c in candidates})
        if len(values) >= 2 and chosen[j] in (values[0], values[-1]):
            out.append(f"{name}:{'low' if chosen[j] == values[0] else 'high'}")
    return ";".join(out)


def make_choices(rows: list[dict]) -> list[Choice]:
    """Every choice of a study from its results rows (``collect.read_results``)."""
    cells: dict[tuple, dict[tuple, list[dict]]] = {}
    for row in rows:
        key = (row["dataset"], row["noise_kind"], row["noise_rate"], row["variant"], row["method"])
        cells.setdefault(key, {}).setdefault(tuple(row["values"]), []).append(row)
    seeds = sorted({r["seed"] for r in rows})
    pos = {s: i for i, s in enumerate(seeds)}
    made: dict[tuple, Choice] = {}
    for key, by_values in cells.items():
        candidates = sorted(by_values, key=preference)
        held_out = any(r["val_acc_selected"] is not None for v in candidates for r in by_values[v])
        for sel in CHOICE_SELECTIONS:
            column = CHOOSE_BY[sel] if held_out else WITHOUT_HELD_OUT[sel]
            if column is None:
                made[key + (sel,)] = Choice(*key, sel, CHOOSE_BY[sel], None, None, 0, len(candidates), "", False,
                                            None, None, "no held-out split")
                continue
            scores = np.full((len(candidates), 1, len(seeds)), np.nan)
            for p, v in enumerate(candidates):
                for r in by_values[v]:
                    scores[p, 0, pos[r["seed"]]] = _score(r, column)
            i = int(choose_index(scores)[0])
            if i < 0:
                usable = any(r["status"] == "ok" for v in candidates for r in by_values[v])
                made[key + (sel,)] = Choice(*key, sel, column, None, None, 0, len(candidates), "", False, None, None,
                                            "every seed diverged" if not usable else "no score")
                continue
            chosen = candidates[i]
            vals = scores[i, 0][~np.isnan(scores[i, 0])]
            made[key + (sel,)] = Choice(*key, sel, column, chosen, float(math.fsum(vals.tolist()) / vals.size),
                                        int(vals.size), len(candidates), edge_of(key[4], chosen, candidates), False,
                                        None, None)
    return _ranked(made)


def _ranked(made: dict[tuple, Choice]) -> list[Choice]:
    """The choices with their variant chosen and their ranks filled in, in table order."""
    from dataclasses import replace

    def order(c: Choice) -> tuple:
        return (-(c.score_mean if c.score_mean is not None else -math.inf), registry.order(c.method))

    out = dict(made)
    groups: dict[tuple, list[Choice]] = {}
    for c in made.values():
        groups.setdefault((c.dataset, c.noise_kind, c.noise_rate, c.selection), []).append(c)
    for members in groups.values():
        variants = list(dict.fromkeys(c.variant for c in sorted(members, key=_table_key)))
        by_method: dict[str, list[Choice]] = {}
        for c in members:
            by_method.setdefault(c.method, []).append(c)
        chosen = []
        for method, cs in by_method.items():
            cs = sorted(cs, key=lambda c: variants.index(c.variant))
            usable = [c for c in cs if c.score_mean is not None]
            win = max(usable, key=lambda c: c.score_mean) if usable else None   # max keeps the first of ties
            for c in cs:
                k = _key(c)
                out[k] = replace(out[k], variant_chosen=c is win)
            if win is not None:
                chosen.append(win)
        for rank, c in enumerate(sorted(chosen, key=order), start=1):
            out[_key(c)] = replace(out[_key(c)], rank=rank)
        for v in variants:
            usable = [c for c in members if c.variant == v and c.score_mean is not None]
            for rank, c in enumerate(sorted(usable, key=order), start=1):
                out[_key(c)] = replace(out[_key(c)], rank_in_variant=rank)
    return sorted(out.values(), key=_table_key)


def _key(c: Choice) -> tuple:
    return (c.dataset, c.noise_kind, c.noise_rate, c.variant, c.method, c.selection)


def _table_key(c: Choice) -> tuple:
    return (c.dataset, c.noise_kind, rate_key(c.noise_rate), c.variant, registry.order(c.method),
            CHOICE_SELECTIONS.index(c.selection))


# --------------------------------------------------------------------------- the file


def choices_csv(choices: list[Choice]) -> str:
    def row(c: Choice) -> list:
        m = registry.get(c.method)
        return [c.dataset, c.noise_kind, c.noise_rate, c.variant, c.method, c.selection, c.chosen_by,
                None if c.values is None else m.params_text(c.values), c.rate,
                None if c.score_mean is None else round(100 * c.score_mean, 4), c.n_seeds, c.grid, c.edge,
                int(c.variant_chosen), c.rank_in_variant, c.rank, c.why]
    return csv_text(COLUMNS, (row(c) for c in choices))


def write_choices(results_csv: str | os.PathLike, out: str | os.PathLike) -> list[Choice]:
    """``smoothbench choose``: results.csv -> choices.csv."""
    from .collect import read_results

    rows = read_results(results_csv)
    if not rows:
        raise ValueError(f"{results_csv}: no cells")
    choices = make_choices(rows)
    write_text(out, choices_csv(choices))
    return choices


def read_choices(path: str | os.PathLike, rows: list[dict]) -> list[Choice]:
    """choices.csv, checked to be the choices of ``rows`` (ValueError naming the file): a table
    made from other results would put other parameters into every report file."""
    text = open(path, encoding="utf-8").read() if os.path.isfile(path) else None
    if text is None:
        raise ValueError(f"{path}: choices file is missing (smoothbench choose writes it from results.csv)")
    read_csv(path, COLUMNS, "choices")       # its columns, one clear line when one is missing
    made = make_choices(rows)
    if text != choices_csv(made):
        raise ValueError(f"{path}: not the choices of the results table beside it; make it again with "
                         "smoothbench choose")
    return made
