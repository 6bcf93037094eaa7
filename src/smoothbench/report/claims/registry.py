"""The claim registry: every claim the report tests, each ONE entry, and the verdict rules.

A claim is one ``register(Claim(...))`` call: its id and text, its source (the paper or a
seed note), its kind, what it needs (methods with cells, at least K classes, at least n
noise rates) and its ``quantity``: a function that computes, from a (dataset, noise kind,
variant)'s settings (noise rates in order) under a selection, one value per independent
seed (``Quantity``). What a claim pools (noise rates, matching rates) it averages within
each seed first, so that the seed stays the unit of replication.

The verdict is not the entry's business: ONE rule per kind (``RULES``) decides every claim
of that kind from its quantity, so that a better rule replaces one function, not each entry.

- ``sign``: an effect above 0. The 95% Student-t interval of the mean over seeds (n - 1
  degrees of freedom): **holds** when it lies above 0, **does not hold** when below 0, else
  **inconclusive**; fewer than two seeds: **not tested**.
- ``equivalence``: "behaves like", within +-``EQUIVALENCE_MARGIN`` points: **holds** when the
  interval lies inside the margin, **does not hold** when outside it, else **inconclusive**.
- ``direction``: a best parameter moves more negative (the quantity: its value at the highest
  noise rate minus the one at the lowest). Decided on the point estimate (the best parameter
  is chosen by the mean over seeds, so every seed carries the same value): **holds** when it
  is below 0, else **does not hold**; reported without an interval (n = 0).

A claim whose needs the study does not meet is **not tested**, with the reason as its evidence.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Callable

from ... import methods as registry
from ..collect import rate_key
from ..seedstats import REPORT_SELECTIONS, Setting, t_interval

EQUIVALENCE_MARGIN = 1.0  # points: "behaves like" = the paired difference lies within this
HOLDS, FAILS, INCONCLUSIVE, NOT_TESTED = "holds", "does not hold", "inconclusive", "not tested"


@dataclass(frozen=True)
class Quantity:
    """What a claim measures on one (dataset, noise kind, variant) under one selection: seed ->
    its value (points; a direction claim: the parameter's move), and a note on what was compared
    (empty ``per_seed``: nothing to compare, the note says why)."""

    per_seed: dict[int, float]
    detail: str = ""


@dataclass
class Verdict:
    claim: str
    verdict: str
    mean: float | None = None          # points; None where the rule gives no interval
    low: float | None = None
    high: float | None = None
    n: int = 0                         # the seeds behind the interval (0: no interval)
    detail: str = ""

    @property
    def evidence(self) -> str:
        if self.verdict == NOT_TESTED or self.mean is None:
            return self.detail
        return f"{self.mean:+.2f} [{self.low:+.2f}, {self.high:+.2f}] (n={self.n}){'; ' + self.detail if self.detail else ''}"


Quantify = Callable[[list[Setting], str], Quantity]


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


def sign_verdict(claim: str, q: Quantity) -> Verdict:
    values = list(q.per_seed.values())
    ci = t_interval(values)
    if ci is None:
        return Verdict(claim, NOT_TESTED, n=len(values), detail=q.detail or "fewer than two paired seeds")
    mean, low, high = ci
    verdict = HOLDS if low > 0 else FAILS if high < 0 else INCONCLUSIVE
    return Verdict(claim, verdict, mean, low, high, len(values), q.detail)


def equivalence_verdict(claim: str, q: Quantity) -> Verdict:
    values = list(q.per_seed.values())
    ci = t_interval(values)
    if ci is None:
        return Verdict(claim, NOT_TESTED, n=len(values), detail=q.detail or "no matching pairs")
    mean, low, high = ci
    m = EQUIVALENCE_MARGIN
    verdict = HOLDS if -m < low and high < m else FAILS if high <= -m or low >= m else INCONCLUSIVE
    return Verdict(claim, verdict, mean, low, high, len(values), q.detail)


def direction_verdict(claim: str, q: Quantity) -> Verdict:
    if not q.per_seed:
        return Verdict(claim, NOT_TESTED, detail=q.detail)
    moved = statistics.fmean(q.per_seed.values())
    return Verdict(claim, HOLDS if moved < 0 else FAILS, detail=q.detail)


@dataclass(frozen=True)
class Rule:
    """How the claims of one kind are decided, and how the findings say it."""

    decide: Callable[[str, Quantity], Verdict]
    text: str


RULES: dict[str, Rule] = {
    "sign": Rule(sign_verdict, "holds when the interval lies above 0, does not hold when below 0, else inconclusive"),
    "direction": Rule(direction_verdict, "holds when more negative, else does not hold"),
    "equivalence": Rule(equivalence_verdict, f"holds when the interval lies within ±{EQUIVALENCE_MARGIN:g} points, "
                                             "does not hold when outside"),
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


def verdict(claim: Claim, sets: list[Setting], selection: str) -> Verdict:
    """One claim on one (dataset, noise kind, variant)'s settings (noise rates in order)."""
    unmet = claim.unmet(sets)
    if unmet is not None:
        return Verdict(claim.id, NOT_TESTED, detail=unmet)
    return RULES[claim.kind].decide(claim.id, claim.quantity(sets, selection))


def check(sets: list[Setting], selection: str) -> list[Verdict]:
    """Every claim, in registry order, on one (dataset, noise kind, variant)'s settings under a selection."""
    sets = sorted(sets, key=lambda s: rate_key(s.noise_rate))
    return [verdict(claim, sets, selection) for claim in CLAIMS.values()]


def claims_table(settings: dict[tuple[str, str, str], list[Setting]]) -> list[dict]:
    """One row per (dataset, noise kind, variant, claim): each selection's verdict and evidence."""
    rows = []
    for (ds, kind, variant), sets in settings.items():
        verdicts = {sel: {v.claim: v for v in check(sets, sel)} for sel in REPORT_SELECTIONS}
        for claim in CLAIMS.values():
            row = {"dataset": ds, "noise_kind": kind, "variant": variant, "claim": claim.id, "text": claim.text}
            for sel in REPORT_SELECTIONS:
                v = verdicts[sel][claim.id]
                row[sel] = v.verdict
                row[f"{sel}_evidence"] = v.evidence
                row[f"{sel}_mean"] = v.mean
                row[f"{sel}_low"] = v.low
                row[f"{sel}_high"] = v.high
                row[f"{sel}_n"] = v.n
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
