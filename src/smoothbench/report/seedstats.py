"""The descriptive statistics the tables and figures share: cells grouped into settings, a
metric's mean and std over seeds, and each method at the parameters the choices table chose.

- A **setting** is one (dataset, noise kind, noise rate) under one protocol variant; its
  cells are grouped by (method, parameter values), one entry per seed. ``settings_of`` keys them by
  (dataset, noise kind, variant) and attaches to each the choices (``choices``) made for it.
- Means are over seeds, std with ddof=1 (the sample standard deviation; with one
  contributing seed only the mean). Diverged cells (``status == "diverged"``) never
  enter a mean; they are counted.
- ``choose`` reads a method's chosen parameters from the choices table (under the honest
  selection: by held-out NOISY accuracy); ``table_row`` / ``better_row`` put every method of
  a setting at its chosen parameters (and, across variants, at its chosen variant), the one
  the selection ranks first marked (honest: by held-out accuracy, not by test accuracy).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from .. import methods as registry
from . import choices as choosing
from .collect import rate_key
from ..core.selection import metric as selection_metric

# the selections the claims and the figures show side by side: the honest one and the final
# epoch first, the reference code's best-on-test beside
REPORT_SELECTIONS = ("selected", "final", "best")


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
    chosen: dict[tuple[str, str], choosing.Choice] = field(default_factory=dict)   # (method, selection) ->

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


def settings_of(rows: list[dict], choices: list[choosing.Choice] | None = None
                ) -> dict[tuple[str, str, str], list[Setting]]:
    """(dataset, kind, variant) -> its settings, noise rates in order, each with its choices
    (``choices``: the choices table's; None: made here, by the same rule)."""
    by: dict[tuple[str, str, str, str], Setting] = {}
    for row in rows:
        key = (row["dataset"], row["noise_kind"], row["noise_rate"], row["variant"])
        s = by.setdefault(key, Setting(*key))
        s.cells.setdefault((row["method"], tuple(row["values"])), []).append(row)
    for c in choosing.make_choices(rows) if choices is None else choices:
        by[(c.dataset, c.noise_kind, c.noise_rate, c.variant)].chosen[(c.method, c.selection)] = c
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
    choice: choosing.Choice | None = None     # the choices table's row it comes from

    @property
    def rate(self) -> float | None:
        return self.values[0] if self.values else None

    @property
    def edge(self) -> str:
        return self.choice.edge if self.choice is not None else ""


def choose(setting: Setting, method: str, selection: str) -> Entry | None:
    """The method at its chosen parameters in this setting under a selection (the choices
    table's), with the selection's test accuracy there (None: no cells)."""
    if not setting.choices(method):
        return None
    c = setting.chosen[(method, selection)]
    if c.values is None:
        cells = [x for v in setting.choices(method) for x in setting.cells[(method, v)]]
        return Entry(method, None, None, len(cells), sum(x["status"] == "diverged" for x in cells),
                     variant=setting.variant, choice=c)
    st = setting.stat(method, c.values, selection_metric(selection))
    return Entry(method, c.values, st if st.mean is not None else None, st.n_seeds, st.n_diverged,
                 variant=setting.variant, choice=c)


def by_seed(setting: Setting, method: str, values: tuple | float | None, selection: str) -> dict[int, float]:
    """seed -> the selection's test accuracy in points, for the non-diverged cells of a (method, values)."""
    return {s: 100 * v for s, v in setting.seed_values(method, values, selection_metric(selection)).items()}


def mark_best(entries: dict[str, Entry | None], overall: bool = False) -> dict[str, Entry | None]:
    """Mark the entry the selection ranks first among ``entries`` (by its choosing score: the
    choices table's ranks; ``overall``: the rank across variants, else within its variant)."""
    def rank(e: Entry) -> int | None:
        return None if e.choice is None else (e.choice.rank if overall else e.choice.rank_in_variant)

    ranked = [e for e in entries.values() if e is not None and e.stat is not None and rank(e) is not None]
    if ranked:
        min(ranked, key=rank).best = True
    return entries


def table_row(setting: Setting, selection: str) -> dict[str, Entry | None]:
    """Every method at its chosen parameters in one setting, the one ranked first marked."""
    return mark_best({m: choose(setting, m, selection) for m in registry.names()})


def better_row(variant_settings: list[Setting], selection: str) -> dict[str, Entry | None]:
    """Like ``table_row`` for one noise rate, each method at its chosen variant (the one whose
    chosen parameters score best; the choices table's), the entry naming the variant."""
    entries: dict[str, Entry | None] = {}
    for m in registry.names():
        cands = [e for e in (choose(s, m, selection) for s in variant_settings) if e is not None]
        chosen = [e for e in cands if e.choice is not None and e.choice.variant_chosen]
        entries[m] = chosen[0] if chosen else (cands[0] if cands else None)
    return mark_best(entries, overall=True)
