"""The statistics the tables, claims, findings and figures share: cells grouped into
settings, a metric's mean and std over seeds, the best parameters of each method (one
function, ``choose``), and the per-seed values and paired differences built on them.

- A **setting** is one (dataset, noise kind, noise rate) under one protocol variant; its
  cells are grouped by (method, parameter values), one entry per seed. ``settings_of`` keys them by
  (dataset, noise kind, variant); ``better_row`` takes, per method, the better variant
  (the paper reports the better of direct training and warm-up).
- Means are over seeds, std with ddof=1 (the sample standard deviation; with one
  contributing seed only the mean). Diverged cells (``status == "diverged"``) never
  enter a mean; they are counted, and a rate whose seeds all diverged cannot be "best".
- The best parameter set of a method in a setting (LS's r, GCE's q, ...) is the one with
  the highest mean of the selection's figure (ties: the one closer to 0, then the smaller).
  ``choose`` is the one place that choice is made; every report module asks it.
- Per seed: a (method, parameters)'s figure in points (``by_seed``), a method at its best
  parameters (``best_by_seed``), and a method's gain over its baseline (``gain``), paired
  by seed (a seed's cells share noisy labels, initialisation and batches).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from .. import methods as registry
from .collect import rate_key
from ..core.selection import metric as selection_metric

CONFIDENCE = 0.95
# the selections the claims and the figures show side by side: the honest one and the final
# epoch first, the reference code's best-on-test beside
REPORT_SELECTIONS = ("selected", "final", "best")


def t_interval(values: list[float]) -> tuple[float, float, float] | None:
    """(mean, low, high) of the 95% Student-t interval of the mean of ``values``, one value per
    independent seed (None: fewer than two)."""
    if len(values) < 2:
        return None
    from scipy.stats import t

    mean = statistics.fmean(values)
    half = float(t.ppf(0.5 + CONFIDENCE / 2, len(values) - 1)) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


@dataclass
class Stat:
    """A metric of one (setting, method, rate) over seeds; diverged seeds excluded."""

    mean: float | None
    std: float | None
    n_ok: int
    n_seeds: int
    n_diverged: int


def stat_of(cells: list[dict], metric: str) -> Stat:
    values = [c[metric] for c in cells if c["status"] == "ok" and c[metric] is not None
              and math.isfinite(c[metric])]
    n_div = sum(c["status"] == "diverged" for c in cells)
    mean = statistics.fmean(values) if values else None
    std = statistics.stdev(values) if len(values) >= 2 else None
    return Stat(mean, std, len(values), len(cells), n_div)


@dataclass
class Setting:
    """All cells of one (dataset, noise kind, noise rate) and variant, grouped by (method, values)."""

    dataset: str
    kind: str
    noise_rate: str
    variant: str
    cells: dict[tuple[str, tuple], list[dict]] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return next(iter(self.cells.values()))[0]["num_classes"]

    def choices(self, method: str) -> list[tuple]:
        """The parameter sets of ``method`` in this setting, sorted."""
        return sorted(v for m, v in self.cells if m == method)

    def rates(self, method: str) -> list[float]:
        """The first parameter's values of ``method`` (its rate: r of GLS, ε of flip)."""
        return [v[0] for v in self.choices(method) if v]

    def methods(self) -> list[str]:
        """The methods with cells here, in registry order."""
        return [m for m in registry.names() if any(k[0] == m for k in self.cells)]

    def stat(self, method: str, values: tuple | float, metric: str) -> Stat:
        return stat_of(self.cells[(method, _values(values))], metric)

    def seed_values(self, method: str, values: tuple | float | None, metric: str) -> dict[int, float]:
        """seed -> the metric, for the non-diverged cells of a (method, values)."""
        key = (method, _values(values)) if values is not None else None
        if key not in self.cells:
            return {}
        return {c["seed"]: c[metric] for c in self.cells[key]
                if c["status"] == "ok" and c[metric] is not None and math.isfinite(c[metric])}

    @property
    def n_cells(self) -> int:
        return sum(len(v) for v in self.cells.values())

    @property
    def n_diverged(self) -> int:
        return sum(c["status"] == "diverged" for v in self.cells.values() for c in v)

    @property
    def seeds(self) -> list[int]:
        return sorted({c["seed"] for v in self.cells.values() for c in v})


def _values(values: tuple | float) -> tuple:
    return tuple(values) if isinstance(values, tuple) else (float(values),)


def settings_of(rows: list[dict]) -> dict[tuple[str, str, str], list[Setting]]:
    """(dataset, kind, variant) -> its settings, noise rates in order."""
    by: dict[tuple[str, str, str, str], Setting] = {}
    for row in rows:
        key = (row["dataset"], row["noise_kind"], row["noise_rate"], row["variant"])
        s = by.setdefault(key, Setting(*key))
        s.cells.setdefault((row["method"], tuple(row["values"])), []).append(row)
    out: dict[tuple[str, str, str], list[Setting]] = {}
    for key in sorted(by, key=lambda k: (k[0], k[1], k[3], rate_key(k[2]))):
        out.setdefault((key[0], key[1], key[3]), []).append(by[key])
    return out


def by_pair(settings: dict[tuple[str, str, str], list[Setting]]) -> dict[tuple[str, str], dict[str, list[Setting]]]:
    """(dataset, kind) -> variant -> settings: the variants of each (dataset, noise kind) together."""
    out: dict[tuple[str, str], dict[str, list[Setting]]] = {}
    for (ds, kind, variant), sets in settings.items():
        out.setdefault((ds, kind), {})[variant] = sets
    return out


@dataclass
class Entry:
    """One table cell: a method at its chosen parameters (``stat`` None: no usable seed)."""

    method: str
    values: tuple | None
    stat: Stat | None
    n_seeds: int
    n_diverged: int
    best: bool = False
    variant: str | None = None

    @property
    def rate(self) -> float | None:
        return self.values[0] if self.values else None


def choose(setting: Setting, method: str, selection: str) -> Entry | None:
    """The method's best parameter set in this setting under a selection: the one with the
    best mean of the selection's test accuracy (None: no cells)."""
    metric = selection_metric(selection)
    choices = setting.choices(method)
    if not choices:
        return None
    stats = {v: setting.stat(method, v, metric) for v in choices}
    usable = [v for v in choices if stats[v].mean is not None]
    if not usable:
        cells = [c for v in choices for c in setting.cells[(method, v)]]
        return Entry(method, None, None, len(cells), sum(c["status"] == "diverged" for c in cells),
                     variant=setting.variant)
    v = min(usable, key=lambda x: (-stats[x].mean, sum(abs(a) for a in x), x))
    return Entry(method, v, stats[v], stats[v].n_seeds, stats[v].n_diverged, variant=setting.variant)


def by_seed(setting: Setting, method: str, values: tuple | float | None, selection: str) -> dict[int, float]:
    """seed -> the selection's test accuracy in points, for the non-diverged cells of a (method, values)."""
    return {s: 100 * v for s, v in setting.seed_values(method, values, selection_metric(selection)).items()}


def best_by_seed(setting: Setting, method: str, selection: str) -> dict[int, float]:
    """seed -> the selection's test accuracy in points of ``method`` at its best parameters."""
    e = choose(setting, method, selection)
    return by_seed(setting, method, None if e is None else e.values, selection)


def paired(a: dict[int, float], b: dict[int, float]) -> dict[int, float]:
    """seed -> a - b, for the seeds in both."""
    return {s: a[s] - b[s] for s in sorted(set(a) & set(b))}


def gain(setting: Setting, method: str, baseline: str, selection: str) -> dict[int, float]:
    """seed -> points of ``method`` at its best parameters over ``baseline`` at its best (a
    baseline without a parameter to choose has one cell)."""
    return paired(best_by_seed(setting, method, selection), best_by_seed(setting, baseline, selection))


def mark_best(entries: dict[str, Entry | None]) -> dict[str, Entry | None]:
    means = [e.stat.mean for e in entries.values() if e is not None and e.stat is not None]
    if means:
        top = max(means)
        for e in entries.values():
            if e is not None and e.stat is not None and e.stat.mean == top:
                e.best = True
    return entries


def table_row(setting: Setting, selection: str) -> dict[str, Entry | None]:
    """Every method at its best parameters in one setting, the best one(s) marked."""
    return mark_best({m: choose(setting, m, selection) for m in registry.names()})


def better_row(variant_settings: list[Setting], selection: str) -> dict[str, Entry | None]:
    """Like ``table_row`` for one noise rate, each method at the better of its variants'
    best parameters (the higher mean; ties: the first variant), the entry naming the variant."""
    entries: dict[str, Entry | None] = {}
    for m in registry.names():
        cands = [e for e in (choose(s, m, selection) for s in variant_settings) if e is not None]
        usable = [e for e in cands if e.stat is not None]
        entries[m] = max(usable, key=lambda e: e.stat.mean) if usable else (cands[0] if cands else None)
    return mark_best(entries)
