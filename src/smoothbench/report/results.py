"""The results a report is made from, read once and passed to every table and figure.

``load`` reads results.csv, curves.csv and the published reference numbers; ``Results``
holds them with the cells grouped into settings (``seedstats.settings_of``), and computes
what several report files share once: the claim verdicts (the claims table, findings and
summary.json read them) and the leaderboard (its CSV and tables.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

from . import claims, leaderboard
from .collect import read_curves, read_references, read_results
from .seedstats import Setting, settings_of

Key = tuple[str, str, str]  # (dataset, noise kind, protocol variant)


@dataclass
class Results:
    settings: dict[Key, list[Setting]]   # per (dataset, noise kind, variant), noise rates in order
    curves: dict[tuple, list[dict]]     # cell coordinates -> its rows of curves.csv, epochs in order
    references: list[dict]              # published numbers (collect.read_references)

    @cached_property
    def claim_rows(self) -> list[dict]:
        return claims.claims_table(self.settings)

    @cached_property
    def leaderboard(self) -> list[dict]:
        return leaderboard.rows(self.settings)

    def methods(self) -> dict[Key, set[str]]:
        """(dataset, noise kind, variant) -> the methods with cells there (what ``report_files`` and
        the registries' needs take)."""
        return {key: {m for s in sets for m in s.methods()} for key, sets in self.settings.items()}


def load(results_csv: str | os.PathLike, curves_csv: str | os.PathLike,
         reference_dir: str | os.PathLike | None = None) -> Results:
    """The results of a study (ValueError, one line naming the file, when they are unusable or empty)."""
    rows = read_results(results_csv)
    if not rows:
        raise ValueError(f"{results_csv}: no cells")
    return Results(settings_of(rows), read_curves(curves_csv), read_references(reference_dir))
