"""The analysis of a study: its panel, its choices, its bootstrap and its parameters, in one
object that the claims, the leaderboard and the findings ask.

The parameters are params.yaml's ``analysis`` keys (schema: ``core/params.schema.yaml``;
``docs/analysis.md`` says why the defaults are what they are):

- ``alpha``: the family-wise error rate of each family (Holm);
- ``equivalence_margin``: the margin of the equivalence claims, in binomial standard errors of
  one test accuracy at the dataset's test-set size (``margin_points``);
- ``bootstrap``: the replicates of the two-level bootstrap (seeds x test samples);
- ``collapse_points``: a cell whose final-epoch test accuracy lies this many points below its
  honest one has collapsed (``epochs``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from . import inference
from .panel import Draws, Panel, View, make_draws


def analysis_params(given: dict | None = None, source: str = "--analysis") -> dict:
    """The analysis parameters: ``given`` checked against the schema's ``analysis`` key (one
    line naming the key when a value is not allowed), the defaults filled in."""
    from ..core import schema

    root = schema.load_schema()
    node = root["properties"]["analysis"]
    params = dict(given or {})
    schema.check(params, source, node=node, base=("analysis",), root=root)
    schema.fill_defaults(node, params, root)
    return params


@dataclass
class Analysis:
    panel: Panel
    settings: dict                 # (dataset, noise kind, variant) -> its Settings, noise rates in order
    params: dict

    @property
    def alpha(self) -> float:
        return float(self.params["alpha"])

    @property
    def replicates(self) -> int:
        return int(self.params["bootstrap"])

    @cached_property
    def draws(self) -> Draws:
        return make_draws(self.replicates, self.panel.n_seeds, self.panel.test_samples)

    @cached_property
    def _cache(self) -> dict:
        return {}

    def view(self, selection: str, replicates: bool = False, seeds: bool = True, test: bool = True) -> View:
        """The observed study under a selection, or (``replicates``) the bootstrap's replicates:
        the seeds and the test samples drawn, or only one of them (views share what they
        compute alike)."""
        return View(self.panel, selection, self.draws if replicates else None, self._cache, seeds, test)

    def sample(self, selection: str, quantity) -> inference.Sample:
        """``quantity`` (a function of a view returning (R, S) per-seed values) observed and in
        the bootstrap's passes: seeds and test samples drawn, the seeds alone, the test samples
        alone (the last two None without per-sample correctness)."""
        obs = quantity(self.view(selection))[0]
        both = quantity(self.view(selection, replicates=True))
        if self.panel.correct is None:
            return inference.Sample(obs, both)
        seeds = quantity(self.view(selection, replicates=True, test=False))
        test = quantity(self.view(selection, replicates=True, seeds=False))
        return inference.Sample(obs, both, seeds, test)

    def estimate(self, selection: str, quantity, dataset: str, sign_flip: bool = False) -> inference.Estimate | None:
        """The estimate of ``quantity`` on a dataset under a selection: every source of variance
        (and the exact sign-flip test over seeds with ``sign_flip``)."""
        return inference.estimate(self.sample(selection, quantity), self.panel.test_samples.get(dataset), sign_flip)

    @cached_property
    def _held_out(self) -> set[str]:
        return {r["dataset"] for r in self.panel.rows if r["val_acc_selected"] is not None}

    def has_held_out(self, dataset: str) -> bool:
        return dataset in self._held_out

    def unavailable(self, dataset: str, selection: str) -> str | None:
        """Why a selection has nothing on a dataset (None: it has)."""
        if selection == "selected" and not self.has_held_out(dataset):
            return "no held-out split (val_fraction 0): no honest selection"
        return None

    def ranked_by(self, dataset: str) -> str:
        """The selection a dataset's leaderboard ranks under: the honest one, or best-on-test
        without a held-out split (the paper presets: val_fraction 0)."""
        return "selected" if self.has_held_out(dataset) else "best"

    @cached_property
    def _accuracy_level(self) -> dict[str, float]:
        out: dict[str, list[float]] = {}
        for r in self.panel.rows:
            v = r["test_acc_final"]
            if r["status"] == "ok" and v is not None and math.isfinite(v):
                out.setdefault(r["dataset"], []).append(v)
        return {ds: float(np.mean(v)) for ds, v in out.items()}

    def margin_points(self, dataset: str) -> float | None:
        """The equivalence margin of a dataset in points: ``equivalence_margin`` x the binomial
        standard error of one test accuracy, 100 sqrt(a (1 - a) / n), at the dataset's test-set
        size n and accuracy level a (the mean final-epoch test accuracy of its cells; a (1 - a) at
        least 1/n, so that a perfect accuracy keeps a margin). None: the test set's size is
        unknown (no per-sample correctness)."""
        n = self.panel.test_samples.get(dataset)
        a = self._accuracy_level.get(dataset)
        if n is None or a is None:
            return None
        return float(self.params["equivalence_margin"]) * 100.0 * math.sqrt(max(a * (1 - a), 1.0 / n) / n)

    @property
    def sources(self) -> str:
        """What the intervals' variance includes, in words."""
        if self.panel.correct is None:
            return ("the seeds (noise draw, initialisation, batch order) and the choices; the test sample is not "
                    "resampled (no per-sample correctness)")
        return ("the seeds (noise draw, initialisation, batch order), the test sample and the choices")
