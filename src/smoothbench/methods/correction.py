"""Loss correction with the noise's TRUE transition matrix T ("oracle T"; Patrini et al. 2017).

T[i, j] is the probability that a sample of clean class i carries the noisy label j (the
noise step writes it beside the labels: the matrix of symmetric, pair-flip and asymmetric
noise, the realised one of instance-dependent and human noise). These cells know T, which
no real method does: every table marks them "oracle T".

- forward: CE of the noisy label under the noisy-label distribution the model implies,
  ``-log sum_i p_i T[i, y]``;
- backward: the per-class CE losses corrected by T's inverse, ``sum_j T^-1[y, j] (-log p_j)``
  (unbiased for the clean loss, unbounded below: it can diverge).
"""

from __future__ import annotations

import numpy as np

from ..core.lazy import torch

from .registry import Batch, Method, register

# T is singular for backward correction where its condition number exceeds this (float64)
MAX_CONDITION = 1e12

PATRINI2017 = ("Patrini et al., Making Deep Neural Networks Robust to Label Noise: a Loss Correction Approach, "
               "CVPR 2017")


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
    """T^-1 (float64), or ValueError when T is singular (backward correction is undefined)."""
    t = np.asarray(t, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = float(np.linalg.cond(t))
    if not np.isfinite(cond) or cond > MAX_CONDITION:
        raise ValueError(f"backward correction needs an invertible transition matrix, and this T is singular "
                         f"(condition number {cond:.3g}, above {MAX_CONDITION:g}): drop backward for this noise")
    return np.linalg.inv(t)


register(Method("forward", "forward-T", (), forward, PATRINI2017 + " (forward correction, with the true T)",
                "forward loss correction with the noise's true T (oracle T)", family="correction",
                transition=lambda t: np.asarray(t, dtype=np.float64)))
register(Method("backward", "backward-T", (), backward, PATRINI2017 + " (backward correction, with the true T)",
                "backward loss correction with the inverse of the noise's true T (oracle T)", family="correction",
                transition=_inverse))
