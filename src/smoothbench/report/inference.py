"""The statistics of a seed-paired quantity: its intervals, its tests, and the family-wise
correction, from maintained libraries (scipy.stats, statsmodels) where they have them.

A quantity comes as its per-seed values in the observed study (S,) and in each bootstrap
replicate (B, S) (``panel.View``); NaN: a seed without a value (a diverged cell).

- **Over seeds** (beside): the 95% Student-t interval of the mean over the n seeds with a
  value, and the exact sign-flip permutation test of the per-seed values
  (``scipy.stats.permutation_test``, every one of the 2^n sign patterns for n <= 13).
  These hold the test set fixed.
- **Every source** (primary): the variance of the mean over seeds from the bootstrap, every
  choice made again in each replicate, in three passes over the same draws: seeds and test
  samples drawn together (V_2), the seeds alone (V_s, the test set kept) and the test samples
  alone (V_t, the seeds kept). Drawing both at once counts the seed-by-sample interaction
  three times where the mean has it once (Owen, "The pigeonhole bootstrap", Ann. Appl. Stat.
  2007); each one-level pass counts it once. So the seeds' part is V_s (the interaction in it)
  and the test sample's part is V_t less the interaction, V_t - (V_2 - V_s - V_t), at least 0.
  The seeds' part is scaled by n / (n - 1) (a bootstrap's plug-in variance of a mean of n
  values is (n - 1)/n of the unbiased one), the test sample's by N / (N - 1); SE is the root
  of their sum, with Welch-Satterthwaite's degrees of freedom (n - 1 for the seeds' part,
  N - 1 for the test sample's, N test samples): the interval mean +- t(0.975, df) SE and the
  two-sided p-value of mean = 0. Where the seeds are the only source (no per-sample
  correctness, no choice) this is the t interval itself.
- **Equivalence** within a margin d: two one-sided tests (TOST) on the same SE and t; the
  p-value of "|effect| >= d" is the larger of the two one-sided ones.
- **Holm** (``statsmodels.stats.multitest.multipletests``): the family-wise correction of a
  family of p-values; adjusted p-values below alpha are the rejections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
SIGN_FLIP_RESAMPLES = 9999   # at most this many sign patterns; every pattern (exact) up to 13 seeds


@dataclass(frozen=True)
class Sample:
    """A quantity's per-seed values: observed (S,), and in the bootstrap's replicates (B, S)
    with seeds and test samples drawn (``both``), the seeds alone, the test samples alone
    (None: not drawn, the seeds are the only source)."""

    observed: np.ndarray
    both: np.ndarray | None = None
    seeds: np.ndarray | None = None
    test: np.ndarray | None = None


@dataclass(frozen=True)
class Estimate:
    """A seed-paired mean (points) with its intervals and tests (see the module's doc)."""

    n: int
    mean: float
    seed_low: float | None        # t interval over seeds (None: fewer than two seeds)
    seed_high: float | None
    p_sign_flip: float | None     # exact sign-flip test over seeds, two-sided
    se: float | None              # every source: bootstrap SE, small-sample corrected
    low: float | None             # primary interval
    high: float | None
    p: float | None               # primary two-sided p-value of mean = 0
    df: float | None = None       # its degrees of freedom (Welch-Satterthwaite)

    def clipped(self, lo: float = 0.0, hi: float = 100.0) -> "Estimate":
        """The intervals clipped to [lo, hi] (an accuracy's bounds stay within [0, 100])."""
        def c(x):
            return None if x is None else min(hi, max(lo, x))
        return Estimate(self.n, self.mean, c(self.seed_low), c(self.seed_high), self.p_sign_flip, self.se,
                        c(self.low), c(self.high), self.p, self.df)


def t_quantile(n: int) -> float:
    """t(0.975) on n - 1 degrees of freedom."""
    return t_quantile_df(n - 1)


def t_quantile_df(df: float) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + CONFIDENCE / 2, df))


def t_interval(values: list[float]) -> tuple[float, float, float] | None:
    """(mean, low, high) of the 95% Student-t interval of the mean of ``values``, one value per
    independent seed (None: fewer than two)."""
    if len(values) < 2:
        return None
    mean = math.fsum(values) / len(values)
    sd = float(np.std(np.asarray(values, dtype=np.float64), ddof=1))
    half = t_quantile(len(values)) * sd / math.sqrt(len(values))
    return mean, mean - half, mean + half


def sign_flip_p(values: np.ndarray) -> float:
    """Two-sided p-value of the exact sign-flip permutation test of the mean of ``values``
    (scipy.stats.permutation_test, one sample: each value's sign flipped independently)."""
    from scipy.stats import permutation_test

    if not np.any(values):
        return 1.0
    res = permutation_test((values,), lambda x, axis: np.mean(x, axis=axis), permutation_type="samples",
                           alternative="two-sided", n_resamples=SIGN_FLIP_RESAMPLES,
                           rng=np.random.default_rng(0), vectorized=True)
    return float(min(1.0, res.pvalue))


def replicate_variance(replicates: np.ndarray) -> float | None:
    """The variance of the replicates' means ((B, S) values; seeds without a value left out).
    None: fewer than two usable replicates."""
    counts = np.sum(~np.isnan(replicates), axis=1)
    ok = counts > 0
    if ok.sum() < 2:
        return None
    means = np.nansum(replicates[ok], axis=1) / counts[ok]
    return float(np.var(means, ddof=1))


def variance_parts(n: int, both: float, seeds: float | None, test: float | None, test_samples: int | None
                   ) -> tuple[float, float]:
    """(the seeds' part, the test sample's part) of the variance of a mean over n seeds, from the
    bootstrap passes' variances: seeds and test samples drawn together, the seeds alone, the test
    samples alone (None: the seeds are the only source, ``both`` is all of it); each scaled to
    an unbiased one, the seed-by-sample interaction counted once (in the seeds' part)."""
    if seeds is None or test is None or test_samples is None:
        v_s, v_t = both, 0.0
    else:
        interaction = max(both - seeds - test, 0.0)
        v_s, v_t = seeds, max(test - interaction, 0.0) * test_samples / (test_samples - 1)
    return v_s * n / (n - 1), v_t


def standard_error(n: int, both: float, seeds: float | None, test: float | None, test_samples: int | None
                   ) -> tuple[float, float]:
    """(SE, Welch-Satterthwaite degrees of freedom) of a mean over n seeds (``variance_parts``)."""
    v_s, v_t = variance_parts(n, both, seeds, test, test_samples)
    total = v_s + v_t
    if total <= 0:
        return 0.0, float(n - 1)
    denominator = v_s ** 2 / (n - 1) + (v_t ** 2 / (test_samples - 1) if v_t > 0 else 0.0)
    return math.sqrt(total), total ** 2 / denominator


def t_p_two_sided(stat: float, df: int) -> float:
    from scipy.stats import t

    return float(2 * t.sf(abs(stat), df))


def estimate(sample: Sample, test_samples: int | None = None, sign_flip: bool = True) -> Estimate | None:
    """The estimate of a seed-paired quantity from its ``Sample`` (no replicates: the seeds' t
    interval alone; no one-level passes or no test-set size N: the replicates' variance is all
    the seeds'). None without any seed. ``sign_flip``: with the exact sign-flip test over seeds."""
    observed = sample.observed
    values = observed[~np.isnan(observed)]
    n = int(values.size)
    if n == 0:
        return None
    mean = math.fsum(values.tolist()) / n
    if n < 2:
        return Estimate(n, mean, None, None, None, None, None, None, None)
    ci = t_interval(values.tolist())
    p_flip = sign_flip_p(values) if sign_flip else None
    v_seeds = float(np.var(values, ddof=1)) * (n - 1) / n ** 2      # a seeds bootstrap's variance, exactly
    v_both = replicate_variance(sample.both) if sample.both is not None else None
    v_one = replicate_variance(sample.seeds) if sample.seeds is not None else None
    v_test = replicate_variance(sample.test) if sample.test is not None else None
    if v_both is None:
        se, df = standard_error(n, v_seeds, None, None, None)
    else:
        se, df = standard_error(n, v_both, v_one, v_test, test_samples)
    half = t_quantile_df(df) * se
    if se > 0:
        p = t_p_two_sided(mean / se, df)
    else:
        p = 0.0 if mean != 0 else 1.0
    return Estimate(n, mean, ci[1], ci[2], p_flip, se, mean - half, mean + half, p, df)


def one_sided_p(stat: float, df: int, upper: bool) -> float:
    """P(T >= stat) (``upper``) or P(T <= stat) for Student's t on ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.sf(stat, df) if upper else t.cdf(stat, df))


def equivalence_p(est: Estimate, margin: float) -> tuple[float, float]:
    """(p of "equivalent": TOST, H0 |effect| >= margin; p of "outside the margin": H0 |effect|
    <= margin, the one-sided test on the side of the estimate)."""
    df = est.df if est.df is not None else est.n - 1
    if est.se is None or est.se == 0:
        inside = abs(est.mean) < margin
        return (0.0, 1.0) if inside else (1.0, 0.0 if abs(est.mean) > margin else 1.0)
    p_low = one_sided_p((est.mean + margin) / est.se, df, upper=True)      # H0: effect <= -margin
    p_high = one_sided_p((est.mean - margin) / est.se, df, upper=False)    # H0: effect >= +margin
    p_out = one_sided_p((abs(est.mean) - margin) / est.se, df, upper=True)
    return max(p_low, p_high), p_out


def holm(pvalues: list[float], alpha: float) -> list[float]:
    """Holm-adjusted p-values of a family (statsmodels' multipletests, method "holm")."""
    if not pvalues:
        return []
    import gc

    from statsmodels.stats.multitest import multipletests

    # statsmodels' Holm ends with gc.collect(), a pass over every object of the process (a tenth
    # of a second and more in a report's); the objects there before the call are set aside for it
    gc.freeze()
    try:
        return [float(p) for p in multipletests(pvalues, alpha=alpha, method="holm")[1]]
    finally:
        gc.unfreeze()


def p_text(p: float) -> str:
    """A p-value as the reports print it."""
    return "<0.001" if p < 0.001 else f"{p:.3f}"
