"""The paper's claims and the seed notes', one entry each.

Per (dataset, noise kind, protocol variant), noise rates in order (``low`` = the lowest,
``high`` = the highest); a method "at its best" is at the parameters the choices table chose
for the selection (``View.best``: under the honest selection by held-out NOISY accuracy), and
every difference is paired by seed, in accuracy points:

- (a) **LS helps at low noise**: LS at its best rate minus CE, at the lowest noise rate.
- (b) **LS's advantage shrinks as noise grows**: (LS* - CE) at the lowest noise rate minus
  (LS* - CE) at the highest.
- (c) **NLS helps at high noise**: NLS at its best rate minus CE, at the highest noise rate.
- (c') **NLS's best r moves more negative as noise grows**: the best NLS rate at the highest
  noise rate minus the one at the lowest (the study's choice, and the bootstrap's choices).
- (d) **flipping at eps behaves like LS at r = eps K/(K-1)** (seed note 000): flip(eps) minus
  LS(r) wherever the study has both, averaged within each seed over noise rates and rates.
- (e) **BCE smoothing behaves like its softmax counterpart** (seed note 001): the gain of
  BCE-LS* (BCE-NLS*) over BCE minus the gain of LS* (NLS*) over CE, averaged within each seed
  over noise rates; tested for K > 2 only: for K = 2 the BCE family is ONE binary logit
  z_1 - z_0, which is softmax GLS exactly, so the claim holds by identity.

The verdicts come from the rules of ``registry``, one per kind.
"""

from __future__ import annotations

import math

import numpy as np

from ...core.vocabulary import flip_to_smooth
from ..panel import pool
from ..seedstats import Setting
from .registry import Claim, Quantity, register

PAPER = "Wei et al., ICML 2022 (arXiv 2106.04149)"


def gain(view, s: Setting, method: str, baseline: str) -> np.ndarray:
    """(R, S) ``method`` at its best parameters minus ``baseline`` at its best (a baseline
    without a parameter to choose has one cell), per seed, in points."""
    return view.best(s, method) - view.best(s, baseline)


def ls_gain_low(sets: list[Setting], view) -> Quantity:
    low = sets[0]
    return Quantity(gain(view, low, "ls", "ce"), f"noise {low.noise_rate}")


def ls_gain_shrinks(sets: list[Setting], view) -> Quantity:
    low, high = sets[0], sets[-1]
    return Quantity(gain(view, low, "ls", "ce") - gain(view, high, "ls", "ce"),
                    f"noise {low.noise_rate} vs {high.noise_rate}")


def nls_gain_high(sets: list[Setting], view) -> Quantity:
    high = sets[-1]
    return Quantity(gain(view, high, "nls", "ce"), f"noise {high.noise_rate}")


def nls_best_rate_move(sets: list[Setting], view) -> Quantity:
    """Per replicate, the best NLS r at the highest noise rate minus the one at the lowest (the
    same value for every seed with NLS cells at both)."""
    low, high = sets[0], sets[-1]
    move = view.chosen_rate(high, "nls") - view.chosen_rate(low, "nls")           # (R,)
    present = ~np.isnan(view.best(low, "nls")) | ~np.isnan(view.best(high, "nls"))
    values = np.where(present, move[:, None], np.nan)
    if not view.observed:
        return Quantity(values)
    a, b = float(view.chosen_rate(low, "nls")[0]), float(view.chosen_rate(high, "nls")[0])
    if math.isnan(a) or math.isnan(b):
        return Quantity(np.full_like(values, np.nan), "no NLS rate could be chosen at both noise rates (every seed "
                                                      "diverged, or no score)")
    edges = [f"noise {s.noise_rate}" for s in (low, high) if view.edge(s, "nls")]
    edge = f"; on the grid's edge at {' and '.join(edges)}" if edges else ""
    return Quantity(values, f"best r {a:g} at noise {low.noise_rate}, {b:g} at {high.noise_rate}{edge}")


def flip_minus_ls(sets: list[Setting], view) -> Quantity:
    parts = []
    for s in sets:
        for eps in s.rates("flip"):
            r_eq = flip_to_smooth(eps, s.num_classes)
            match = [r for r in s.rates("ls") if math.isclose(r, r_eq, rel_tol=1e-6, abs_tol=1e-9)]
            if match:
                parts.append(view.acc(s, "flip", eps) - view.acc(s, "ls", match[0]))
    return Quantity(pool(parts), "per seed, the mean over noise rates and matching rates")


def bce_minus_softmax_gain(sets: list[Setting], view) -> Quantity:
    parts = []
    for s in sets:
        for soft, sig in (("ls", "bls"), ("nls", "bnls")):
            parts.append(gain(view, s, sig, "bce") - gain(view, s, soft, "ce"))
    return Quantity(pool(parts), "per seed, the mean of the BCE-LS vs LS and BCE-NLS vs NLS gain differences "
                                 "over noise rates")


register(Claim("a", "LS helps at low noise", PAPER, "sign", ls_gain_low, methods=("ls", "ce")))
register(Claim("b", "LS's advantage shrinks as noise grows", PAPER, "sign", ls_gain_shrinks,
               methods=("ls", "ce"), noise_rates=2))
register(Claim("c", "NLS helps at high noise", PAPER, "sign", nls_gain_high, methods=("nls", "ce")))
register(Claim("c'", "NLS's best r moves more negative as noise grows", PAPER, "direction", nls_best_rate_move,
               methods=("nls",), noise_rates=2,
               compares="the best NLS rate at the highest noise rate against the lowest"))
register(Claim("d", "flipping at ε behaves like LS at r = εK/(K−1)", "seed note 000", "equivalence", flip_minus_ls,
               methods=("flip", "ls"), pools=True))
register(Claim("e", "BCE smoothing behaves like its softmax counterpart", "seed note 001", "equivalence",
               bce_minus_softmax_gain, methods=("bce", "ce"), min_classes=3, pools=True,
               few_classes="K = 2: the BCE family is one binary logit z1 - z0, which is softmax GLS exactly "
                           "(BCE = CE, BCE-LS = LS, BCE-NLS = NLS by identity)",
               note="(e) is tested for K > 2 only: for K = 2 the BCE family is one binary logit z1 − z0, which is "
                    "softmax GLS exactly (BCE = CE, BCE-LS = LS, BCE-NLS = NLS by identity)."))
