"""Loss correction (Patrini et al. 2017) with the noise's TRUE transition matrix T ("oracle T")
or with T estimated from the noisy training data ("estimated T").

T[i, j] is the probability that a sample of clean class i carries the noisy label j (the
noise step writes it beside the labels: the matrix of symmetric, pair-flip and asymmetric
noise, the realised one of instance-dependent, human and annotation noise). ``forward`` and
``backward`` are given that T, which no real method knows: every table marks them "oracle
T". ``forward_est`` and ``backward_est`` are what a practitioner can run: T estimated by
Patrini et al.'s anchor points (``anchor_transition``) from the softmax of a CE model trained
on the noisy labels, the warm-up model of the cell's protocol variant at its branch point,
on the seed's training split (so they need a warm-up; the study refuses them without one).

- forward: CE of the noisy label under the noisy-label distribution the model implies,
  ``-log sum_i p_i T[i, y]``;
- backward: the per-class CE losses corrected by T's inverse, ``sum_j T^-1[y, j] (-log p_j)``
  (unbiased for the clean loss, unbounded below: it can diverge). A seed whose estimated T
  is singular gets NaN for its inverse: its backward-est cell is recorded as diverged at its
  first epoch.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.lazy import torch

from .registry import Batch, Literature, Method, Param, register

PATRINI2017 = ("Patrini et al., Making Deep Neural Networks Robust to Label Noise: a Loss Correction Approach, "
               "CVPR 2017")
SINGULAR = 1e12          # condition number from which T counts as singular
ESTIMATOR = ("the anchor points of the authors' code (giorgiop/loss-correction, models.py NoiseEstimator): per "
             "class i the training sample with the highest p(noisy = i | x) below the given percentile of those "
             "probabilities (quantile 97: their filter_outlier; 100: the highest, the paper's formula), T's row i "
             "its softmax, rows normalised; estimated once, from the CE warm-up model at the branch point, on the "
             "seed's training split, then fixed (their two-stage procedure)")
QUANTILE = Param("quantile", "q", 97.0, "the percentile of p(noisy = i | x) below which the anchor of class i is "
                 "taken (100: the highest)", low=0.0, high=100.0, low_open=True)
QUANTILE_LITERATURE = (
    Literature(("mnist", "cifar10"), {"quantile": 97.0},
               "Patrini et al.'s code, experiment.py (filter_outlier True but on CIFAR-100) and models.py "
               "(the 97th percentile)"),
    Literature(("cifar100",), {"quantile": 100.0},
               "Patrini et al.'s code, experiment.py (filter_outlier False on CIFAR-100)"))


def anchor_transition(probs: torch.Tensor, quantile: float) -> torch.Tensor:
    """Patrini et al.'s estimate of T from a model's softmax ``probs`` (..., N, K) on the noisy
    training data: per class i the anchor sample is the one with the highest ``probs[:, i]``
    strictly below that column's ``quantile``-th percentile (NumPy's 'higher' percentile; at
    100, the highest of all), row i of T is its ``probs`` row, and the rows are normalised.
    Returns (..., K, K) in float64."""
    p = probs.to(torch.float64)
    n = p.shape[-2]
    cols = p.transpose(-1, -2)                                          # (..., K, N)
    if quantile < 100:
        k = min(n - 1, math.ceil((n - 1) * quantile / 100.0))
        threshold = cols.sort(dim=-1).values[..., k:k + 1]
        cols = torch.where(cols >= threshold, torch.zeros_like(cols), cols)
    anchors = cols.argmax(dim=-1)                                       # (..., K) first maximum
    rows = p.gather(-2, anchors.unsqueeze(-1).expand(*anchors.shape, p.shape[-1]))
    return rows / rows.sum(-1, keepdim=True)


def noise_rate_of(transition: torch.Tensor, noisy_prior: torch.Tensor) -> torch.Tensor:
    """The noise rate a transition matrix (..., K, K) implies given the noisy labels' class
    frequencies (..., K): sum_i pi_i (1 - T[i, i]), pi the clean prior that T maps to them
    (least squares of T^T pi = noisy prior, clipped at 0 and normalised)."""
    t = transition.to(torch.float64)
    prior = noisy_prior.to(torch.float64)
    pi = torch.linalg.lstsq(t.transpose(-1, -2), prior.unsqueeze(-1)).solution.squeeze(-1).clamp(min=0.0)
    pi = pi / pi.sum(-1, keepdim=True).clamp(min=1e-300)
    return (pi * (1 - torch.diagonal(t, dim1=-2, dim2=-1))).sum(-1)


def _rows(matrix: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``matrix[..., y, :]`` per sample: (..., K, K) and (..., B) -> (..., B, K)."""
    k = matrix.shape[-1]
    return matrix.gather(-2, labels.unsqueeze(-1).expand(*labels.shape, k))


def forward(batch: Batch, params: torch.Tensor) -> torch.Tensor:
    # T's column y per sample, through the transpose's rows; log 0 = -inf drops a class
    log_col = torch.log(_rows(batch.transition.transpose(-1, -2), batch.labels).to(batch.logits.dtype))
    return -torch.logsumexp(batch.logp + log_col, dim=-1)


def backward(batch: Batch, params: torch.Tensor) -> torch.Tensor:
    rows = _rows(batch.transition, batch.labels).to(batch.logits.dtype)       # T^-1[y, :]
    return -(rows * batch.logp).sum(-1)


def _inverse(t: np.ndarray) -> np.ndarray:
    """T^-1 (float64), or ValueError when T is singular (backward correction is undefined). NumPy:
    the study checks every setting's T with it before any job, without torch."""
    t = np.asarray(t, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = np.linalg.cond(t)
    worst = float(np.max(cond))
    if not np.all(np.isfinite(cond)) or worst > SINGULAR:
        raise ValueError(f"backward correction needs an invertible transition matrix, and this T is singular "
                         f"(condition number {worst:.3g}, above {SINGULAR:g}): drop backward for this noise")
    return np.linalg.inv(t)


def _inverse_or_nan(t: np.ndarray) -> np.ndarray:
    """Each matrix's inverse (float64), NaN where it is singular (its cell's loss is NaN: diverged)."""
    t = np.asarray(t, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = np.linalg.cond(t)
    ok = np.isfinite(cond) & (cond <= SINGULAR)
    safe = np.where(ok[..., None, None], t, np.eye(t.shape[-1]))
    return np.where(ok[..., None, None], np.linalg.inv(safe), np.nan)


def _as_is(t: np.ndarray) -> np.ndarray:
    return np.asarray(t, dtype=np.float64)


ORACLE = "the paper's loss with the noise's true T, which no practitioner has: a bound on what correction can do"
register(Method("forward", "forward-T", (), forward, PATRINI2017 + " (forward correction, with the true T)",
                "forward loss correction with the noise's true T (oracle T)", family="correction",
                transition=_as_is, noise="oracle T", convention=ORACLE))
register(Method("backward", "backward-T", (), backward, PATRINI2017 + " (backward correction, with the true T)",
                "backward loss correction with the inverse of the noise's true T (oracle T)", family="correction",
                transition=_inverse, noise="oracle T", convention=ORACLE))
register(Method("forward_est", "forward-est", (QUANTILE,), forward,
                PATRINI2017 + " (forward correction, with T estimated by anchor points)",
                "forward loss correction with T estimated from the warm-up model (estimated T)", family="correction",
                transition=_as_is, noise="estimated T", loss_args=lambda v: (), convention=ESTIMATOR,
                literature=QUANTILE_LITERATURE))
register(Method("backward_est", "backward-est", (QUANTILE,), backward,
                PATRINI2017 + " (backward correction, with T estimated by anchor points)",
                "backward loss correction with the inverse of T estimated from the warm-up model (estimated T)",
                family="correction", transition=_inverse_or_nan, noise="estimated T", loss_args=lambda v: (),
                convention=ESTIMATOR, literature=QUANTILE_LITERATURE))
