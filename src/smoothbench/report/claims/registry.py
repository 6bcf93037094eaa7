"""The claim registry: every claim the report tests, each ONE entry, and the verdict rules.

A claim is one ``register(Claim(...))`` call: its id and text, its source (the paper or a
seed note), its kind, what it needs (methods with cells, at least K classes, at least n
noise rates) and its ``quantity``: a function of a (dataset, noise kind, variant)'s settings
(noise rates in order) and a ``panel.View`` that returns one value per independent seed
(``Quantity``, shaped (R, S): R = 1 for the observed study, R = B for the bootstrap's
replicates; the same function serves both). What a claim pools (noise rates, matching rates)
it averages within each seed first (``panel.pool``), so that the seed stays the unit of
replication. A method "at its best" is at the parameters the choices table chose for the
selection (``View.best``): under the honest selection, by held-out NOISY accuracy; in the
replicates they are chosen again from the resampled seeds.

The verdict is not the entry's business: ONE rule per kind (``RULES``) tests every claim of
that kind, and the claims of a selection form ONE family, corrected family-wise by Holm
(``inference.holm``); a verdict is decided on the adjusted p-value at ``alpha``:

- ``sign``: an effect above 0. Two-sided test of mean = 0 (``inference.estimate``: every
  source of variance, Student's t on Welch-Satterthwaite's degrees of freedom; n - 1
  without per-sample correctness): **holds** when the adjusted p < alpha and the
  mean is above 0, **does not hold** when below 0, else **inconclusive**; fewer than two
  seeds: **not tested**.
- ``equivalence``: "behaves like", within +- the margin (``margin_points``: ``equivalence_margin``
  binomial standard errors of one test accuracy at the dataset's test-set size). Two one-sided
  tests: **holds** when the adjusted TOST p < alpha (**equivalent but different** when the 95%
  interval also excludes 0), **does not hold** when the effect lies outside the margin (the
  one-sided test beyond it, adjusted p < alpha), else **inconclusive**. Which of the two is the
  family's test: the one the estimate points to (inside or outside the margin).
- ``direction``: a best parameter moves more negative (the quantity: its chosen value at the
  highest noise rate minus the one at the lowest). The bootstrap probability that it moves
  more negative, P, with the choices made again in each replicate: p = 1 - P where the study's
  own move is negative (then it **holds** when adjusted p < alpha), p = P where it is not
  (then it **does not hold**); else **inconclusive**. The p-value is (replicates against the study's move + 1) / (replicates + 1),
  Holm-adjusted in the family: 95% is the bar of a lone test at alpha = 0.05, higher in the family.

A claim whose needs the study does not meet is **not tested**, with the reason as its
evidence, and is no member of the family.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ... import methods as registry
from .. import inference
from ..collect import rate_key
from ..seedstats import REPORT_SELECTIONS, Setting

HOLDS, FAILS, INCONCLUSIVE, NOT_TESTED = "holds", "does not hold", "inconclusive", "not tested"
EQUIVALENT_BUT_DIFFERENT = "equivalent but different"
VERDICTS = (HOLDS, EQUIVALENT_BUT_DIFFERENT, FAILS, INCONCLUSIVE, NOT_TESTED)


@dataclass(frozen=True)
class Quantity:
    """What a claim measures on one (dataset, noise kind, variant) in one view: (R, S) values
    (points; a direction claim: the parameter's move, the same for each seed of a replicate),
    and a note on what was compared (all NaN: nothing to compare, the note says why)."""

    values: np.ndarray
    detail: str = ""

    def per_seed(self, seeds: list[int]) -> dict[int, float]:
        """seed -> value, of the first replicate (the observed study), seeds with a value."""
        row = self.values[0] if self.values.size else []
        return {s: float(v) for s, v in zip(seeds, row) if not math.isnan(v)}


@dataclass(frozen=True)
class Observed:
    """A claim's quantity as the study has it (with its note) and in the bootstrap's passes."""

    observed: Quantity
    sample: inference.Sample


@dataclass
class Test:
    """A claim's test in one selection, before the family's correction."""

    estimate: inference.Estimate | None
    p: float | None                     # the family member's p-value (None: not tested)
    detail: str = ""
    margin: float | None = None         # equivalence: the margin in points
    support: float | None = None        # direction: bootstrap P(the move is negative)
    move: float | None = None           # direction: the study's own move
    why_not: str = ""                   # not tested: why


@dataclass
class Verdict:
    claim: str
    verdict: str
    test: Test = field(default_factory=lambda: Test(None, None))
    p_adjusted: float | None = None
    family: int = 0                     # the number of tests in the claim's family
    rests_on: list[str] = field(default_factory=list)   # flagged (setting, method)s it reads

    @property
    def estimate(self) -> inference.Estimate | None:
        return self.test.estimate

    @property
    def mean(self) -> float | None:
        return None if self.test.estimate is None or self.test.estimate.n < 2 else self.test.estimate.mean

    @property
    def low(self) -> float | None:
        return None if self.mean is None else self.test.estimate.low

    @property
    def high(self) -> float | None:
        return None if self.mean is None else self.test.estimate.high

    @property
    def n(self) -> int:
        return 0 if self.mean is None else self.test.estimate.n

    @property
    def evidence(self) -> str:
        t = self.test
        if self.verdict == NOT_TESTED:
            return t.why_not or t.detail
        if t.support is not None:
            text = f"{t.detail}; P(more negative) = {t.support:.2f} (bootstrap)"
        else:
            e = t.estimate
            text = f"{e.mean:+.2f} [{e.low:+.2f}, {e.high:+.2f}] (n={e.n})"
            if t.margin is not None:
                text += f", margin ±{t.margin:.2f}"
            if t.detail:
                text += f"; {t.detail}"
        if self.p_adjusted is not None:
            text += f"; p_adj = {inference.p_text(self.p_adjusted)}"
        return text


Quantify = Callable[[list[Setting], "object"], Quantity]


@dataclass(frozen=True)
class Claim:
    """One claim. ``pools``: its quantity averages several differences within each seed (noise
    rates, matching rates); ``compares`` says, in the findings' reading of the rules, what the
    claim compares where its kind's rule alone does not say it; ``note`` is a sentence the
    findings add to that reading; ``few_classes`` is the evidence shown for a study with fewer
    than ``min_classes`` classes (default: that it needs them)."""

    id: str
    text: str
    source: str
    kind: str
    quantity: Quantify
    methods: tuple[str, ...] = ()
    min_classes: int = 2
    noise_rates: int = 1
    pools: bool = False
    compares: str = ""
    note: str = ""
    few_classes: str = ""

    def unmet(self, sets: list[Setting]) -> str | None:
        """Why the claim cannot be tested on these settings (None: it can)."""
        k = sets[0].num_classes
        if k < self.min_classes:
            return self.few_classes or f"K = {k}: needs K ≥ {self.min_classes} classes"
        if len(sets) < self.noise_rates:
            return "one noise rate" if len(sets) == 1 else f"{len(sets)} noise rates; needs {self.noise_rates}"
        present = {m for s in sets for m in s.methods()}
        missing = [registry.get(m).label for m in self.methods if m not in present]
        return f"no cells of {', '.join(missing)}" if missing else None


# --------------------------------------------------------------------------- the rules, one per kind


def sign_test(q: "Observed", margin: float | None, test_samples: int | None) -> Test:
    obs = q.observed
    est = inference.estimate(q.sample, test_samples)
    if est is None or est.n < 2:
        return Test(est, None, obs.detail, why_not=f"{_unpaired(est)}; {obs.detail}" if obs.detail else _unpaired(est))
    return Test(est, est.p, obs.detail)


def _unpaired(est) -> str:
    return "no seed with both cells (diverged or missing)" if est is None else "one seed with both cells: no interval"


def sign_decide(t: Test, p_adj: float, alpha: float) -> str:
    return (HOLDS if t.estimate.mean > 0 else FAILS) if p_adj < alpha else INCONCLUSIVE


def equivalence_test(q: "Observed", margin: float | None, test_samples: int | None) -> Test:
    obs = q.observed
    est = inference.estimate(q.sample, test_samples)
    if est is None or est.n < 2:
        return Test(est, None, obs.detail, why_not=_unpaired(est))
    if margin is None:
        return Test(est, None, obs.detail, why_not="no margin: the test set's size is unknown")
    p_eq, p_out = inference.equivalence_p(est, margin)
    return Test(est, p_eq if abs(est.mean) < margin else p_out, obs.detail, margin=margin)


def equivalence_decide(t: Test, p_adj: float, alpha: float) -> str:
    if p_adj >= alpha:
        return INCONCLUSIVE
    if abs(t.estimate.mean) >= t.margin:
        return FAILS
    return EQUIVALENT_BUT_DIFFERENT if t.estimate.low > 0 or t.estimate.high < 0 else HOLDS


def direction_test(q: "Observed", margin: float | None, test_samples: int | None) -> Test:
    obs = q.observed
    observed = obs.values[0][~np.isnan(obs.values[0])]
    if not observed.size:
        return Test(None, None, obs.detail, why_not=obs.detail or "nothing to compare")
    move = float(observed[0])
    rep = q.sample.both
    defined = ~np.isnan(rep).all(axis=1)
    moves = np.nanmean(rep[defined], axis=1) if defined.any() else np.zeros(0)
    negative = int(np.sum(moves < 0))
    total = int(defined.sum())
    support = negative / total if total else 0.0
    against = total - negative if move < 0 else negative       # replicates that contradict the study's move
    p = (against + 1) / (total + 1)
    return Test(None, p, obs.detail, support=support, move=move)


def direction_decide(t: Test, p_adj: float, alpha: float) -> str:
    return (HOLDS if t.move < 0 else FAILS) if p_adj < alpha else INCONCLUSIVE


@dataclass(frozen=True)
class Rule:
    """How the claims of one kind are tested and decided, and how the findings say it."""

    # (the quantity observed and in the bootstrap's passes, the margin in points, the test set's size)
    test: Callable[["Observed", float | None, int | None], Test]
    decide: Callable[[Test, float, float], str]
    text: str


RULES: dict[str, Rule] = {
    "sign": Rule(sign_test, sign_decide, "holds when the effect is above 0 (two-sided test, Holm-adjusted p below "
                                         "alpha), does not hold when below 0, else inconclusive"),
    "direction": Rule(direction_test, direction_decide,
                      "holds when the bootstrap says it moves more negative (Holm-adjusted p = 1 − P below alpha), does "
                      "not hold when it says it does not, else inconclusive"),
    "equivalence": Rule(equivalence_test, equivalence_decide,
                        "holds when two one-sided tests put the effect within ± the margin (Holm-adjusted), "
                        "\"equivalent but different\" when its 95% interval also excludes 0, does not hold when the "
                        "effect lies outside the margin, else inconclusive"),
}

# --------------------------------------------------------------------------- the registry

CLAIMS: dict[str, Claim] = {}


def register(claim: Claim) -> Claim:
    """Add a claim (ValueError naming it when its id is taken or a field is not allowed)."""
    where = f"claim {claim.id!r}"
    if not claim.id or claim.id in CLAIMS:
        raise ValueError(f"{where}: the id is empty or taken; taken: {', '.join(CLAIMS)}")
    if claim.kind not in RULES:
        raise ValueError(f"{where}: kind {claim.kind!r}; allowed: {', '.join(RULES)}")
    unknown = [m for m in claim.methods if m not in registry.names()]
    if unknown:
        raise ValueError(f"{where}: method(s) {', '.join(unknown)} are not registered")
    if claim.min_classes < 2 or claim.noise_rates < 1:
        raise ValueError(f"{where}: min_classes must be >= 2 and noise_rates >= 1")
    CLAIMS[claim.id] = claim
    return claim


def test(claim: Claim, sets: list[Setting], analysis, selection: str) -> tuple[Test, list[tuple]]:
    """One claim on one (dataset, noise kind, variant)'s settings (noise rates in order) under
    a selection, before the family's correction; with the cells its observed quantity read."""
    unmet = claim.unmet(sets) or analysis.unavailable(sets[0].dataset, selection)
    if unmet is not None:
        return Test(None, None, why_not=unmet), []
    observed = analysis.view(selection)
    obs = claim.quantity(sets, observed)
    sample = analysis.sample(selection, lambda view: obs.values if view.observed else claim.quantity(sets, view).values)
    ds = sets[0].dataset
    return RULES[claim.kind].test(Observed(obs, sample), analysis.margin_points(ds),
                                  analysis.panel.test_samples.get(ds)), observed.terms


def family(tests: list[tuple[Claim, Test]], alpha: float) -> list[tuple[str, float | None]]:
    """(verdict, adjusted p) of each claim of one family (one selection's), Holm-corrected over
    the claims that were tested."""
    members = [i for i, (_, t) in enumerate(tests) if t.p is not None]
    adjusted = dict(zip(members, inference.holm([tests[i][1].p for i in members], alpha)))
    out = []
    for i, (claim, t) in enumerate(tests):
        if i not in adjusted:
            out.append((NOT_TESTED, None))
        else:
            out.append((RULES[claim.kind].decide(t, adjusted[i], alpha), adjusted[i]))
    return out


def check(analysis, selection: str, flagged: Callable[[list[tuple]], list[str]] | None = None
          ) -> dict[tuple[str, str, str], list[Verdict]]:
    """Every claim, in registry order, on every (dataset, noise kind, variant) under a
    selection: one family, Holm-corrected. ``flagged`` names the flagged cells a claim reads."""
    keyed, tests, terms = [], [], []
    for key, sets in analysis.settings.items():
        sets = sorted(sets, key=lambda s: rate_key(s.noise_rate))
        for claim in CLAIMS.values():
            t, read = test(claim, sets, analysis, selection)
            keyed.append(key)
            tests.append((claim, t))
            terms.append(read)
    decided = family(tests, analysis.alpha)
    size = sum(t.p is not None for _, t in tests)
    out: dict[tuple[str, str, str], list[Verdict]] = {}
    for key, (claim, t), read, (verdict, p_adj) in zip(keyed, tests, terms, decided):
        out.setdefault(key, []).append(Verdict(claim.id, verdict, t, p_adj, size,
                                               flagged(read) if flagged and verdict != NOT_TESTED else []))
    return out


def claims_table(analysis, flagged: Callable[[list[tuple]], list[str]] | None = None) -> list[dict]:
    """One row per (dataset, noise kind, variant, claim): each selection's verdict, estimate,
    intervals, p-values (raw and Holm-adjusted within the selection's family) and evidence."""
    verdicts = {sel: check(analysis, sel, flagged) for sel in REPORT_SELECTIONS}
    rows = []
    for key in analysis.settings:
        ds, kind, variant = key
        for i, claim in enumerate(CLAIMS.values()):
            row = {"dataset": ds, "noise_kind": kind, "variant": variant, "claim": claim.id, "text": claim.text,
                   "kind": claim.kind}
            for sel in REPORT_SELECTIONS:
                v = verdicts[sel][key][i]
                e = v.estimate if v.verdict != NOT_TESTED else None
                row.update({
                    sel: v.verdict, f"{sel}_mean": v.mean if e is not None else v.test.move,
                    f"{sel}_low": v.low, f"{sel}_high": v.high, f"{sel}_n": v.n,
                    f"{sel}_seed_low": e.seed_low if e is not None else None,
                    f"{sel}_seed_high": e.seed_high if e is not None else None,
                    f"{sel}_p_sign_flip": e.p_sign_flip if e is not None else None,
                    f"{sel}_p": v.test.p if v.verdict != NOT_TESTED else None, f"{sel}_p_adj": v.p_adjusted,
                    f"{sel}_support": v.test.support, f"{sel}_family": v.family,
                    f"{sel}_evidence": v.evidence, f"{sel}_rests_on": "; ".join(v.rests_on),
                })
            row["margin"] = verdicts["selected"][key][i].test.margin
            rows.append(row)
    return rows


def rules_reading() -> str:
    """How the findings read the verdicts: the claims grouped by kind (in registry order; a
    claim that says what it compares stands alone), each group with its rule, then the claims'
    notes."""
    groups: list[list[Claim]] = []
    for claim in CLAIMS.values():
        if groups and not claim.compares and not groups[-1][0].compares and groups[-1][0].kind == claim.kind:
            groups[-1].append(claim)
        else:
            groups.append([claim])
    parts = []
    for group in groups:
        ids = [f"({c.id})" for c in group]
        label = f"{ids[0]}-{ids[-1]}" if len(ids) > 2 else ", ".join(ids)
        compares = f"{group[0].compares}: " if group[0].compares else ""
        parts.append(f"{label}: {compares}{RULES[group[0].kind].text}")
    notes = " ".join(c.note for c in CLAIMS.values() if c.note)
    return "; ".join(parts) + "." + (f" {notes}" if notes else "")
