"""The results a report is made from, read once and passed to every table and figure.

``load`` reads results.csv, curves.csv, the choices table (choices.csv), the per-test-sample
correctness (test_correct.npz) and the published reference numbers; ``Results`` holds them
with the cells grouped into settings (``seedstats.settings_of``, each with its choices) and
the study's ``Analysis``, and computes what several report files share once: the claim
verdicts (the claims table, findings and summary.json read them), the leaderboard (its CSV,
tables.md, a figure and the findings) and how each cell used its phase (``epochs``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from . import claims, epochs, leaderboard
from .analysis import Analysis, analysis_params
from .choices import read_choices
from .collect import read_curves, read_references, read_results, read_test_correct
from .panel import Panel
from .seedstats import Setting, settings_of
from ..core.vocabulary import TEST_CORRECT_FILE

Key = tuple[str, str, str]  # (dataset, noise kind, protocol variant)
CHOICES_FILE = "choices.csv"


@dataclass
class Results:
    settings: dict[Key, list[Setting]]   # per (dataset, noise kind, variant), noise rates in order
    curves: dict[tuple, list[dict]]     # cell coordinates -> its rows of curves.csv, epochs in order
    references: list[dict]              # published numbers (collect.read_references)
    analysis: Analysis

    @cached_property
    def phase_use(self) -> dict[tuple, epochs.PhaseUse]:
        return epochs.phase_use(self.analysis.panel.rows, self.curves, float(self.analysis.params["collapse_points"]))

    def flagged(self, terms: list[tuple]) -> list[str]:
        """The flagged cells among ``terms`` (a quantity's reads), as the findings name them."""
        from .. import methods as registry

        out = []
        for t in dict.fromkeys(terms):
            use = self.phase_use.get(t)
            if use is not None and use.flagged:
                m = registry.get(t[4])
                label = m.label_params(t[5], "plain") if m.params else ""
                out.append(f"{m.label}{' ' + label if label else ''} at {t[1]} {t[2]}")
        return out

    @cached_property
    def claim_rows(self) -> list[dict]:
        return claims.claims_table(self.analysis, self.flagged)

    @cached_property
    def leaderboard(self) -> list[dict]:
        return leaderboard.rows(self.analysis)

    def methods(self) -> dict[Key, set[str]]:
        """(dataset, noise kind, variant) -> the methods with cells there."""
        return {key: {m for s in sets for m in s.methods()} for key, sets in self.settings.items()}

    def shapes(self) -> dict[Key, "Shape"]:
        """(dataset, noise kind, variant) -> what it holds (what ``report_files`` and the registries' needs take)."""
        from .shape import Shape

        return {key: Shape(frozenset(m for s in sets for m in s.methods()), len(sets),
                           len({c["seed"] for s in sets for cells in s.cells.values() for c in cells}),
                           self.analysis.has_held_out(key[0]))
                for key, sets in self.settings.items()}


def from_rows(rows: list[dict], curves: dict | None = None, references: list[dict] | None = None,
              choices: list | None = None, correct: dict | None = None, params: dict | None = None,
              test_samples: dict[str, int] | None = None) -> Results:
    """A study's Results from its rows (what ``load`` and in-memory callers share); without
    per-sample correctness the seeds are the only source of variance, and ``test_samples``
    (dataset -> its test set's size) gives the equivalence margins."""
    from .choices import make_choices

    made = make_choices(rows) if choices is None else choices
    settings = settings_of(rows, made)
    analysis = Analysis(Panel(rows, made, correct, test_samples), settings, analysis_params(params))
    return Results(settings, curves or {}, references or [], analysis)


def load(results_csv: str | os.PathLike, curves_csv: str | os.PathLike,
         reference_dir: str | os.PathLike | None = None, choices_csv: str | os.PathLike | None = None,
         correct: str | os.PathLike | None = None, params: dict | None = None) -> Results:
    """The results of a study (ValueError, one line naming the file, when they are unusable or
    empty); the choices table and the correctness file default to their places beside results.csv."""
    rows = read_results(results_csv)
    if not rows:
        raise ValueError(f"{results_csv}: no cells")
    base = Path(results_csv).parent
    made = read_choices(base / CHOICES_FILE if choices_csv is None else choices_csv, rows)
    bits = read_test_correct(base / TEST_CORRECT_FILE if correct is None else correct, rows)
    return from_rows(rows, read_curves(curves_csv), read_references(reference_dir), made, bits, params)
