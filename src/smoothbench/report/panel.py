"""The study as arrays, and views of it: the observed study, or the replicates of the
two-level bootstrap, through ONE interface that claims, the leaderboard and the findings use.

A **panel** holds, per cell (dataset, noise kind, noise rate, variant, method, parameters),
its results row for each of the study's seeds (the seed is the unit of replication), each
row's accuracies and choosing scores (NaN where the cell diverged or has no figure), the
choices (``choices``), and each row's per-test-sample correctness (``collect``'s
test_correct.npz) when it has them.

A **view** is one selection's accuracies of every cell, in points, shaped (R, S): R = 1 for
the study as observed (its choices those of the choices table), R = B for the bootstrap's
replicates (``Draws``; with ``test`` False the seeds alone are drawn and the test set kept,
with ``seeds`` False the test samples alone: the passes that split the variance into its
seeds' and its test sample's parts, ``inference.standard_error``). In replicate b the seeds are drawn with replacement (one draw for the
whole study: a quantity stays paired by seed) and the test samples of each dataset are drawn
with replacement (one draw per dataset, shared by every seed, setting and method: the test set
is the same for all of them, so its sampling error does not average out over seeds). Every
choice a quantity rests on (a method's parameters, its protocol variant) is made again in each
replicate from the resampled seeds' scores (``choices.choose_index``), so the choice's own
variability is part of the spread. What a replicate does not redo: a cell's epoch choice
(that needs every epoch's correctness) and the held-out split of a seed (drawn once per seed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from . import choices as choosing
from ..core.selection import metric as selection_metric
from ..core.vocabulary import derive_seed

SELECTION_INDEX = {"best": 0, "selected": 1, "final": 2}   # the order of test_correct.npz's selections

CellKey = tuple  # (dataset, noise kind, noise rate, variant, method, values)


@dataclass
class Draws:
    """The bootstrap's draws, fixed by the study's shape alone (same study, same draws): per
    replicate, the study's seeds drawn with replacement (positions, (B, S)) and per dataset the
    test samples' multiplicities (counts, (B, n); the replicate's accuracy of a cell is its
    correct samples weighted by them, over n)."""

    seed_index: np.ndarray
    test_counts: dict[str, np.ndarray]     # uint8: a sample drawn more than 255 times in n draws is beyond belief

    @property
    def replicates(self) -> int:
        return self.seed_index.shape[0]


def make_draws(replicates: int, n_seeds: int, test_samples: dict[str, int]) -> Draws:
    rng = np.random.default_rng(derive_seed("bootstrap", "seeds", replicates, n_seeds) % 2**63)
    seed_index = rng.integers(0, n_seeds, size=(replicates, n_seeds))
    counts = {}
    for ds in sorted(test_samples):
        n = test_samples[ds]
        r = np.random.default_rng(derive_seed("bootstrap", "test", ds, replicates, n) % 2**63)
        out = np.empty((replicates, n), dtype=np.uint8)
        for start in range(0, replicates, CHUNK):                    # a chunk at a time: bounded memory
            b = min(CHUNK, replicates - start)
            picks = r.integers(0, n, size=(b, n), dtype=np.int64) + n * np.arange(b)[:, None]
            out[start:start + b] = np.bincount(picks.ravel(), minlength=b * n).reshape(b, n)
        counts[ds] = out
    return Draws(seed_index, counts)


CHUNK = 250   # replicates drawn and multiplied at a time


@dataclass
class Panel:
    """A study's results as arrays (rows of ``collect.read_results``, in their order)."""

    rows: list[dict]
    choices: list[choosing.Choice]
    correct: dict | None = None          # collect.read_test_correct's arrays, or None
    test_sizes: dict[str, int] | None = None   # without them: dataset -> its test set's size, if known
    seeds: list[int] = field(init=False)

    def __post_init__(self):
        self.seeds = sorted({r["seed"] for r in self.rows})
        pos = {s: i for i, s in enumerate(self.seeds)}
        self.index: dict[CellKey, np.ndarray] = {}
        for i, r in enumerate(self.rows):
            key = (r["dataset"], r["noise_kind"], r["noise_rate"], r["variant"], r["method"], tuple(r["values"]))
            self.index.setdefault(key, np.full(len(self.seeds), -1, dtype=np.int64))[pos[r["seed"]]] = i
        self.chosen = {(c.dataset, c.noise_kind, c.noise_rate, c.variant, c.method, c.selection): c
                       for c in self.choices}
        self.candidates: dict[tuple, list[tuple]] = {}
        for key in self.index:
            self.candidates.setdefault(key[:5], []).append(key[5])
        for k in self.candidates:
            self.candidates[k].sort(key=choosing.preference)

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    def column(self, name: str) -> np.ndarray:
        """A results column per row as floats (NaN: diverged cell or no figure)."""
        return self._columns[name]

    @cached_property
    def _columns(self) -> dict[str, np.ndarray]:
        names = {selection_metric(s) for s in SELECTION_INDEX} | set(choosing.CHOOSE_BY.values())
        out = {}
        for name in names:
            out[name] = np.array([float(r[name]) if r["status"] == "ok" and r[name] is not None
                                  and math.isfinite(r[name]) else np.nan for r in self.rows])
        return out

    @cached_property
    def test_samples(self) -> dict[str, int]:
        """dataset -> its test set's size (from the per-sample correctness, or as given)."""
        if self.correct is None:
            return dict(self.test_sizes or {})
        out: dict[str, int] = {}
        for r, n in zip(self.rows, self.correct["test_samples"]):
            out.setdefault(r["dataset"], int(n))
        return out

    def values_at(self, idx: np.ndarray, column: str) -> np.ndarray:
        """(S,) the column at the rows ``idx`` (-1: NaN)."""
        col = self.column(column)
        return np.where(idx >= 0, col[np.maximum(idx, 0)], np.nan)

    # -- the replicates' accuracies
    def replicate_accuracy(self, selection: str, draws: Draws) -> np.ndarray:
        """(rows, B) each row's test accuracy under the selection in each replicate (fraction;
        NaN where the row has none): its correct test samples weighted by the replicate's draw.
        Without per-sample correctness: the observed accuracy in every replicate (the seeds are
        the only source of variance then)."""
        cache = self.__dict__.setdefault("_replicates", {})
        if selection in cache and cache[selection][0] is draws:
            return cache[selection][1]
        observed = self.column(selection_metric(selection))
        out = np.repeat(observed[:, None], draws.replicates, axis=1).astype(np.float64)
        if self.correct is not None:
            j = SELECTION_INDEX[selection]
            datasets = np.array([r["dataset"] for r in self.rows])
            for ds, counts in draws.test_counts.items():
                rows = np.flatnonzero((datasets == ds) & ~np.isnan(observed) & self.correct["has"][:, j])
                if not rows.size:
                    continue
                n = counts.shape[1]
                bits = np.unpackbits(self.correct["bits"][rows, j], axis=-1, bitorder="little")[:, :n]
                bits = bits.astype(np.float32)
                for start in range(0, draws.replicates, CHUNK):
                    out[rows, start:start + CHUNK] = (bits @ counts[start:start + CHUNK].T.astype(np.float32)) / n
        cache[selection] = (draws, out)
        return out


class View:
    """One selection's view of a panel: the study as observed (``draws`` None, R = 1) or the
    bootstrap's replicates (R = B). Every accessor returns (R, S) accuracies in points (or
    (R,) parameter values), paired by seed; ``terms`` records which (setting, method) a
    quantity read, at which parameters (what a claim rests on)."""

    def __init__(self, panel: Panel, selection: str, draws: Draws | None = None, cache: dict | None = None,
                 seeds: bool = True, test: bool = True):
        self.panel, self.selection, self.draws = panel, selection, draws
        self.seeds = seeds                               # draw the seeds (else keep them)
        self.test = test and panel.correct is not None   # draw the test samples (else keep them)
        self.replicates = 1 if draws is None else draws.replicates
        self.terms: list[tuple] = []
        # what views of the same selection and draws compute alike, shared (their arrays are read only)
        self.cache = {} if cache is None else cache

    def _memo(self, key: tuple, make):
        key = (self.selection, self.draws is None, self.seeds, self.test) + key
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]

    @property
    def observed(self) -> bool:
        return self.draws is None

    def _resampled(self, per_seed: np.ndarray) -> np.ndarray:
        """(S,) or (S, B) per-seed values -> (R, S) in the view's seed draw."""
        if self.draws is None:
            return per_seed[None, :] if per_seed.ndim == 1 else per_seed.T
        if not self.seeds:
            return np.broadcast_to(per_seed, (self.replicates, per_seed.size)) if per_seed.ndim == 1 else per_seed.T
        idx = self.draws.seed_index
        if per_seed.ndim == 1:
            return per_seed[idx]
        return per_seed[idx, np.arange(idx.shape[0])[:, None]]

    def _test(self, idx: np.ndarray) -> np.ndarray:
        """(R, S) the view's test accuracy (fraction) at rows ``idx``."""
        if self.draws is None or not self.test:
            return self._resampled(self.panel.values_at(idx, selection_metric(self.selection)))
        rep = self.panel.replicate_accuracy(self.selection, self.draws)
        per_seed = np.where((idx >= 0)[:, None], rep[np.maximum(idx, 0)], np.nan)        # (S, B)
        return self._resampled(per_seed)

    def _scores(self, idx: np.ndarray, column: str) -> np.ndarray:
        """(R, S) the choosing score ``column`` at rows ``idx`` (a test column: the view's test
        accuracy, resampled test samples and all)."""
        if column in choosing.TEST_COLUMNS:
            return self._test(idx)
        return self._resampled(self.panel.values_at(idx, column))

    # -- what quantities read
    def acc(self, s, method: str, values: tuple | float) -> np.ndarray:
        """(R, S) a (method, parameters)'s test accuracy in points (NaN: no such cell, diverged)."""
        values = tuple(values) if isinstance(values, tuple) else (float(values),)
        key = (s.dataset, s.kind, s.noise_rate, s.variant, method, values)
        self.terms.append(key)
        idx = self.panel.index.get(key)
        if idx is None:
            return np.full((self.replicates, self.panel.n_seeds), np.nan)
        return self._memo(("acc",) + key, lambda: 100.0 * self._test(idx))

    def _choice(self, s, method: str) -> tuple[list[tuple], np.ndarray, np.ndarray]:
        """(candidates, chosen index per replicate (R,), chosen mean score (R,)) of a method in
        a setting (index -1: none)."""
        return self._memo(("choice", s.dataset, s.kind, s.noise_rate, s.variant, method),
                          lambda: self._make_choice(s, method))

    def _make_choice(self, s, method: str) -> tuple[list[tuple], np.ndarray, np.ndarray]:
        cands = self.panel.candidates.get((s.dataset, s.kind, s.noise_rate, s.variant, method), [])
        if not cands:
            return cands, np.full(self.replicates, -1), np.full(self.replicates, -np.inf)
        c = self.panel.chosen[(s.dataset, s.kind, s.noise_rate, s.variant, method, self.selection)]
        if self.draws is None:
            i = -1 if c.values is None else cands.index(c.values)
            score = -np.inf if c.score_mean is None else c.score_mean
            return cands, np.array([i]), np.array([score])
        if c.values is None and c.why == "no held-out split":
            return cands, np.full(self.replicates, -1), np.full(self.replicates, -np.inf)
        keys = [self.panel.index[(s.dataset, s.kind, s.noise_rate, s.variant, method, v)] for v in cands]
        scores = np.stack([self._scores(idx, c.chosen_by) for idx in keys])         # (P, R, S)
        chosen = choosing.choose_index(scores)
        with np.errstate(invalid="ignore"):
            counts = np.sum(~np.isnan(scores), axis=-1)
            means = np.where(counts > 0, np.nansum(scores, axis=-1) / np.maximum(counts, 1), -np.inf)
        best = np.where(chosen >= 0, means[np.maximum(chosen, 0), np.arange(self.replicates)], -np.inf)
        return cands, chosen, best

    def best(self, s, method: str) -> np.ndarray:
        """(R, S) ``method`` at its chosen parameters (chosen again in each replicate), in points."""
        cands, chosen, _ = self._choice(s, method)
        return self._at(s, method, cands, chosen)

    def _at(self, s, method: str, cands: list[tuple], chosen: np.ndarray) -> np.ndarray:
        if self.draws is None:          # one replicate: the chosen cell itself (a term of the quantity)
            return self.acc(s, method, cands[chosen[0]]) if chosen[0] >= 0 else \
                np.full((1, self.panel.n_seeds), np.nan)
        return self._memo(("at", s.dataset, s.kind, s.noise_rate, s.variant, method),
                          lambda: self._pick(s, method, cands, chosen))

    def _pick(self, s, method: str, cands: list[tuple], chosen: np.ndarray) -> np.ndarray:
        out = np.full((self.replicates, self.panel.n_seeds), np.nan)
        for p, v in enumerate(cands):
            mask = chosen == p
            if mask.any():
                out[mask] = self.acc(s, method, v)[mask]
        return out

    def edge(self, s, method: str) -> str:
        """The study's choice of ``method``'s parameters at the edge of its grid ("" if not)."""
        c = self.panel.chosen.get((s.dataset, s.kind, s.noise_rate, s.variant, method, self.selection))
        return "" if c is None else c.edge

    def chosen_rate(self, s, method: str) -> np.ndarray:
        """(R,) the first parameter of ``method``'s chosen set (its rate), NaN where none."""
        cands, chosen, _ = self._choice(s, method)
        rates = np.array([v[0] if v else np.nan for v in cands] + [np.nan])
        return rates[np.where(chosen >= 0, chosen, len(cands))]

    def best_variant(self, sets: list, method: str) -> np.ndarray:
        """(R, S) ``method`` at its chosen variant (of ``sets``: one setting's variants, in
        order) and parameters, both chosen again in each replicate, in points."""
        per = [self._choice(s, method) for s in sets]
        if self.draws is None:
            win = [i for i, s in enumerate(sets) if self.panel.chosen[
                (s.dataset, s.kind, s.noise_rate, s.variant, method, self.selection)].variant_chosen]
            if not win:
                return np.full((1, self.panel.n_seeds), np.nan)
            cands, chosen, _ = per[win[0]]
            return self._at(sets[win[0]], method, cands, chosen)
        scores = np.stack([p[2] for p in per])                                    # (V, R)
        which = np.argmax(scores, axis=0)
        out = np.full((self.replicates, self.panel.n_seeds), np.nan)
        for v, s in enumerate(sets):
            mask = (which == v) & np.isfinite(scores[v])
            if mask.any():
                out[mask] = self._at(s, method, per[v][0], per[v][1])[mask]
        return out


def pool(parts: list[np.ndarray]) -> np.ndarray:
    """Per seed (and replicate), the mean of what a quantity pools (NaN parts left out; NaN
    where a seed has none): one value per independent seed."""
    if not parts:
        return np.full((1, 0), np.nan)
    stack = np.stack(parts)
    counts = np.sum(~np.isnan(stack), axis=0)
    with np.errstate(invalid="ignore"):
        return np.where(counts > 0, np.nansum(stack, axis=0) / np.maximum(counts, 1), np.nan)
