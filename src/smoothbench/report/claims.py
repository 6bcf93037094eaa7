"""The paper's claims and the seed notes', checked on the results, each with a verdict.

Per (dataset, noise kind, protocol variant), noise rates in order (``low`` = the lowest,
``high`` = the highest):

- (a) **LS helps at low noise**: LS at its best rate minus CE, at the lowest noise rate.
- (b) **LS's advantage shrinks as noise grows**: (LS* - CE) at the lowest noise rate minus
  (LS* - CE) at the highest.
- (c) **NLS helps at high noise**: NLS at its best rate minus CE, at the highest noise rate.
- (c') **NLS's best r moves more negative as noise grows**: the best NLS rate at the highest
  noise rate against the one at the lowest (point estimates, the rate with the best mean):
  holds when it is more negative, does not hold when it is the same or less negative.
- (d) **flipping at eps behaves like LS at r = eps K/(K-1)** (seed note 000): flip(eps) minus
  LS(r) wherever the study has both, averaged within each seed over noise rates and rates.
- (e) **BCE smoothing behaves like its softmax counterpart** (seed note 001): the gain of
  BCE-LS* (BCE-NLS*) over BCE minus the gain of LS* (NLS*) over CE, averaged within each seed
  over noise rates; tested for K > 2 only: for K = 2 the BCE family is ONE binary logit
  z_1 - z_0, which is softmax GLS exactly, so the claim holds by identity.

The rule. The seed is the unit of replication: differences are paired by seed (the cells of
a seed share a group: the same noisy labels, initialisation and batches), in accuracy points
under one selection, and whatever a claim pools (noise rates, matching rates) is first
averaged within each seed, so that n is the number of independent seeds. A method's best
rate is the one with the best mean (chosen on the same runs, so "best" is optimistic). The
interval is the 95% Student-t interval of the mean over seeds (n - 1 degrees of freedom).
(a), (b), (c): **holds** when the interval lies above 0, **does not hold** when it lies
below 0, else **inconclusive**. (d), (e) are claims of equivalence: **holds** when the
interval lies inside +-EQUIVALENCE_MARGIN points, **does not hold** when it lies outside
it, else **inconclusive**. Fewer than two seeds, or a missing method: **not tested**.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from ..core.vocabulary import flip_to_smooth
from .collect import rate_key
from ..core.selection import metric as selection_metric
from .seedstats import CONFIDENCE, Setting, choose, t_interval  # noqa: F401 (t_interval: claims' public name)

EQUIVALENCE_MARGIN = 1.0  # points: "behaves like" = the paired difference lies within this
HOLDS, FAILS, INCONCLUSIVE, NOT_TESTED = "holds", "does not hold", "inconclusive", "not tested"
CLAIMS = {
    "a": "LS helps at low noise",
    "b": "LS's advantage shrinks as noise grows",
    "c": "NLS helps at high noise",
    "c'": "NLS's best r moves more negative as noise grows",
    "d": "flipping at ε behaves like LS at r = εK/(K−1)",
    "e": "BCE smoothing behaves like its softmax counterpart",
}


@dataclass
class Verdict:
    claim: str
    verdict: str
    mean: float | None = None          # points (c': the two rates)
    low: float | None = None
    high: float | None = None
    n: int = 0
    detail: str = ""

    @property
    def evidence(self) -> str:
        if self.verdict == NOT_TESTED:
            return self.detail
        if self.mean is None:
            return self.detail
        return f"{self.mean:+.2f} [{self.low:+.2f}, {self.high:+.2f}] (n={self.n}){'; ' + self.detail if self.detail else ''}"


def _by_seed(setting: Setting, method: str, values: tuple | float | None, metric: str) -> dict[int, float]:
    """seed -> the metric in points, for the non-diverged cells of a (method, values)."""
    return {s: 100 * v for s, v in setting.seed_values(method, values, metric).items()}


def best_by_seed(setting: Setting, method: str, metric: str) -> dict[int, float]:
    """seed -> the metric in points of ``method`` at its best parameters (by mean)."""
    e = choose(setting, method, metric)
    return _by_seed(setting, method, None if e is None else e.values, metric)


def _paired(a: dict[int, float], b: dict[int, float]) -> dict[int, float]:
    return {s: a[s] - b[s] for s in sorted(set(a) & set(b))}


def gain(setting: Setting, method: str, baseline: str, metric: str) -> dict[int, float]:
    """seed -> points of ``method`` at its best parameters over ``baseline`` at its best (a
    baseline without a parameter to choose has one cell)."""
    return _paired(best_by_seed(setting, method, metric), best_by_seed(setting, baseline, metric))


def seed_means(per_seed: dict[int, list[float]]) -> list[float]:
    """Each seed's mean of what a claim pools for it: one value per independent seed."""
    return [statistics.fmean(v) for _, v in sorted(per_seed.items()) if v]


def _pool(into: dict[int, list[float]], diffs: dict[int, float]) -> None:
    for seed, d in diffs.items():
        into.setdefault(seed, []).append(d)


def _sign_verdict(claim: str, diffs: list[float], detail: str = "") -> Verdict:
    ci = t_interval(diffs)
    if ci is None:
        return Verdict(claim, NOT_TESTED, n=len(diffs), detail=detail or "fewer than two paired seeds")
    mean, low, high = ci
    verdict = HOLDS if low > 0 else FAILS if high < 0 else INCONCLUSIVE
    return Verdict(claim, verdict, mean, low, high, len(diffs), detail)


def _equivalence_verdict(claim: str, diffs: list[float], detail: str = "") -> Verdict:
    ci = t_interval(diffs)
    if ci is None:
        return Verdict(claim, NOT_TESTED, n=len(diffs), detail=detail or "no matching pairs")
    mean, low, high = ci
    m = EQUIVALENCE_MARGIN
    verdict = HOLDS if -m < low and high < m else FAILS if high <= -m or low >= m else INCONCLUSIVE
    return Verdict(claim, verdict, mean, low, high, len(diffs), detail)


def check(sets: list[Setting], selection: str) -> list[Verdict]:
    """Every claim on one (dataset, noise kind, variant)'s settings under a selection."""
    metric = selection_metric(selection)
    sets = sorted(sets, key=lambda s: rate_key(s.noise_rate))
    low, high = sets[0], sets[-1]
    spans = f"noise {low.noise_rate} vs {high.noise_rate}"
    out = [_sign_verdict("a", list(gain(low, "ls", "ce", metric).values()), f"noise {low.noise_rate}")]
    if len(sets) < 2:
        out.append(Verdict("b", NOT_TESTED, detail="one noise rate"))
    else:
        g_low, g_high = gain(low, "ls", "ce", metric), gain(high, "ls", "ce", metric)
        out.append(_sign_verdict("b", list(_paired(g_low, g_high).values()), spans))
    out.append(_sign_verdict("c", list(gain(high, "nls", "ce", metric).values()), f"noise {high.noise_rate}"))
    r_low, r_high = choose(low, "nls", metric), choose(high, "nls", metric)
    if len(sets) < 2 or r_low is None or r_high is None or r_low.rate is None or r_high.rate is None:
        out.append(Verdict("c'", NOT_TESTED, detail="needs NLS cells at two noise rates"))
    else:
        a, b = r_low.rate, r_high.rate
        out.append(Verdict("c'", HOLDS if b < a else FAILS,
                           detail=f"best r {a:g} at noise {low.noise_rate}, {b:g} at {high.noise_rate}"))
    flips: dict[int, list[float]] = {}
    for s in sets:
        for eps in s.rates("flip"):
            r_eq = flip_to_smooth(eps, s.num_classes)
            match = [r for r in s.rates("ls") if math.isclose(r, r_eq, rel_tol=1e-6, abs_tol=1e-9)]
            if match:
                _pool(flips, _paired(_by_seed(s, "flip", eps, metric), _by_seed(s, "ls", match[0], metric)))
    out.append(_equivalence_verdict("d", seed_means(flips),
                                    "per seed, the mean over noise rates and matching rates"))
    if sets[0].num_classes == 2:
        out.append(Verdict("e", NOT_TESTED, detail="K = 2: the BCE family is one binary logit z1 - z0, which "
                           "is softmax GLS exactly (BCE = CE, BCE-LS = LS, BCE-NLS = NLS by identity)"))
    else:
        bce: dict[int, list[float]] = {}
        for s in sets:
            for soft, sig in (("ls", "bls"), ("nls", "bnls")):
                _pool(bce, _paired(gain(s, sig, "bce", metric), gain(s, soft, "ce", metric)))
        out.append(_equivalence_verdict("e", seed_means(bce), "per seed, the mean of the BCE-LS vs LS and "
                                        "BCE-NLS vs NLS gain differences over noise rates"))
    return out


CLAIM_SELECTIONS = ("selected", "final", "best")  # honest and final epoch first, the paper's beside


def claims_table(settings: dict[tuple[str, str, str], list[Setting]]) -> list[dict]:
    """One row per (dataset, noise kind, variant, claim): each selection's verdict and evidence."""
    rows = []
    for (ds, kind, variant), sets in settings.items():
        verdicts = {sel: check(sets, sel) for sel in CLAIM_SELECTIONS}
        for i, claim in enumerate(CLAIMS):
            row = {"dataset": ds, "noise_kind": kind, "variant": variant, "claim": claim, "text": CLAIMS[claim]}
            for sel in CLAIM_SELECTIONS:
                v = verdicts[sel][i]
                row[sel] = v.verdict
                row[f"{sel}_evidence"] = v.evidence
                row[f"{sel}_mean"] = v.mean
                row[f"{sel}_low"] = v.low
                row[f"{sel}_high"] = v.high
                row[f"{sel}_n"] = v.n
            rows.append(row)
    return rows
