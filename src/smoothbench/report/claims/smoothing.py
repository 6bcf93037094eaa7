"""The paper's claims and the seed notes', one entry each.

Per (dataset, noise kind, protocol variant), noise rates in order (``low`` = the lowest,
``high`` = the highest); a method "at its best" is at its best parameters (``choose``),
and every difference is paired by seed, in accuracy points:

- (a) **LS helps at low noise**: LS at its best rate minus CE, at the lowest noise rate.
- (b) **LS's advantage shrinks as noise grows**: (LS* - CE) at the lowest noise rate minus
  (LS* - CE) at the highest.
- (c) **NLS helps at high noise**: NLS at its best rate minus CE, at the highest noise rate.
- (c') **NLS's best r moves more negative as noise grows**: the best NLS rate at the highest
  noise rate minus the one at the lowest.
- (d) **flipping at eps behaves like LS at r = eps K/(K-1)** (seed note 000): flip(eps) minus
  LS(r) wherever the study has both, averaged within each seed over noise rates and rates.
- (e) **BCE smoothing behaves like its softmax counterpart** (seed note 001): the gain of
  BCE-LS* (BCE-NLS*) over BCE minus the gain of LS* (NLS*) over CE, averaged within each seed
  over noise rates; tested for K > 2 only: for K = 2 the BCE family is ONE binary logit
  z_1 - z_0, which is softmax GLS exactly, so the claim holds by identity.

A method's best rate is the one with the best mean, chosen on the same runs ("best" is
optimistic). The verdicts come from the rules of ``registry``, one per kind.
"""

from __future__ import annotations

import math
import statistics

from ...core.vocabulary import flip_to_smooth
from ..seedstats import Setting, by_seed, choose, gain, paired
from .registry import Claim, Quantity, register

PAPER = "Wei et al., ICML 2022 (arXiv 2106.04149)"


def seed_means(per_seed: dict[int, list[float]]) -> dict[int, float]:
    """Each seed's mean of what a claim pools for it: one value per independent seed."""
    return {seed: statistics.fmean(v) for seed, v in sorted(per_seed.items()) if v}


def _pool(into: dict[int, list[float]], diffs: dict[int, float]) -> None:
    for seed, d in diffs.items():
        into.setdefault(seed, []).append(d)


def ls_gain_low(sets: list[Setting], selection: str) -> Quantity:
    low = sets[0]
    return Quantity(gain(low, "ls", "ce", selection), f"noise {low.noise_rate}")


def ls_gain_shrinks(sets: list[Setting], selection: str) -> Quantity:
    low, high = sets[0], sets[-1]
    return Quantity(paired(gain(low, "ls", "ce", selection), gain(high, "ls", "ce", selection)),
                    f"noise {low.noise_rate} vs {high.noise_rate}")


def nls_gain_high(sets: list[Setting], selection: str) -> Quantity:
    high = sets[-1]
    return Quantity(gain(high, "nls", "ce", selection), f"noise {high.noise_rate}")


def nls_best_rate_move(sets: list[Setting], selection: str) -> Quantity:
    """Per seed, the best NLS r at the highest noise rate minus the one at the lowest (chosen by
    the mean over seeds: the same value for every seed with NLS cells there)."""
    low, high = sets[0], sets[-1]
    r_low, r_high = choose(low, "nls", selection), choose(high, "nls", selection)
    if r_low is None or r_high is None or r_low.rate is None or r_high.rate is None:
        return Quantity({}, "needs NLS cells at two noise rates")
    a, b = r_low.rate, r_high.rate
    seeds = sorted(set(by_seed(low, "nls", a, selection)) | set(by_seed(high, "nls", b, selection)))
    return Quantity({s: b - a for s in seeds},
                    f"best r {a:g} at noise {low.noise_rate}, {b:g} at {high.noise_rate}")


def flip_minus_ls(sets: list[Setting], selection: str) -> Quantity:
    flips: dict[int, list[float]] = {}
    for s in sets:
        for eps in s.rates("flip"):
            r_eq = flip_to_smooth(eps, s.num_classes)
            match = [r for r in s.rates("ls") if math.isclose(r, r_eq, rel_tol=1e-6, abs_tol=1e-9)]
            if match:
                _pool(flips, paired(by_seed(s, "flip", eps, selection), by_seed(s, "ls", match[0], selection)))
    return Quantity(seed_means(flips), "per seed, the mean over noise rates and matching rates")


def bce_minus_softmax_gain(sets: list[Setting], selection: str) -> Quantity:
    pooled: dict[int, list[float]] = {}
    for s in sets:
        for soft, sig in (("ls", "bls"), ("nls", "bnls")):
            _pool(pooled, paired(gain(s, sig, "bce", selection), gain(s, soft, "ce", selection)))
    return Quantity(seed_means(pooled), "per seed, the mean of the BCE-LS vs LS and BCE-NLS vs NLS gain "
                                        "differences over noise rates")


register(Claim("a", "LS helps at low noise", PAPER, "sign", ls_gain_low, methods=("ls", "ce")))
register(Claim("b", "LS's advantage shrinks as noise grows", PAPER, "sign", ls_gain_shrinks,
               methods=("ls", "ce"), noise_rates=2))
register(Claim("c", "NLS helps at high noise", PAPER, "sign", nls_gain_high, methods=("nls", "ce")))
register(Claim("c'", "NLS's best r moves more negative as noise grows", PAPER, "direction", nls_best_rate_move,
               methods=("nls",), noise_rates=2,
               compares="the best NLS rate (by mean) at the highest noise rate against the lowest"))
register(Claim("d", "flipping at ε behaves like LS at r = εK/(K−1)", "seed note 000", "equivalence", flip_minus_ls,
               methods=("flip", "ls"), pools=True))
register(Claim("e", "BCE smoothing behaves like its softmax counterpart", "seed note 001", "equivalence",
               bce_minus_softmax_gain, methods=("bce", "ce"), min_classes=3, pools=True,
               few_classes="K = 2: the BCE family is one binary logit z1 - z0, which is softmax GLS exactly "
                           "(BCE = CE, BCE-LS = LS, BCE-NLS = NLS by identity)",
               note="(e) is tested for K > 2 only: for K = 2 the BCE family is one binary logit z1 − z0, which is "
                    "softmax GLS exactly (BCE = CE, BCE-LS = LS, BCE-NLS = NLS by identity)."))
