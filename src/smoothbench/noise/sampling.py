"""Drawing noisy labels from a transition matrix, and the realised transition of a corruption.

T[i, j] is the probability that a sample of clean class i gets the noisy label j; rows sum
to 1. Two samplers draw labels from T: ``inverse_cdf`` (one uniform per sample from
``Generator(PCG64(seed))``) and ``reference`` (``RandomState(seed)``, one multinomial draw per
sample in order: the reference code's sampler, so with its seed 0 it gives the labels the
paper trained on). Each is a deterministic function of (labels, T, seed).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.vocabulary import check_num_classes

SAMPLERS = ("inverse_cdf", "reference")


def check_labels(labels: Any, num_classes: int, name: str = "labels") -> np.ndarray:
    """``labels`` as int64, or a one-line ValueError unless they are 1-D integers in [0, K)."""
    y = np.asarray(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D integer array, got dtype {y.dtype} shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{name} must lie in [0, {num_classes}), found [{y.min()}, {y.max()}]")
    return y.astype(np.int64, copy=False)


def check_matrix(matrix: Any) -> np.ndarray:
    """``matrix`` as float64, or a one-line ValueError unless it is a (K, K) transition matrix."""
    t = np.asarray(matrix, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] != t.shape[1] or t.shape[0] < 2:
        raise ValueError(f"transition matrix must be square (K, K) with K >= 2, got shape {t.shape}")
    if not np.all(np.isfinite(t)) or t.min() < 0:
        raise ValueError("transition matrix entries must be finite and >= 0")
    if not np.allclose(t.sum(axis=1), 1.0, rtol=0, atol=1e-9):
        raise ValueError("transition matrix rows must sum to 1")
    return t


def draw_inverse_cdf(probs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Row i's category for uniform u[i] in [0, 1); zero-probability categories never come up."""
    cdf = np.cumsum(probs, axis=1)
    cdf /= cdf[:, -1:]  # last entry exactly 1
    return (u[:, None] >= cdf).sum(axis=1).astype(np.int64)


def corrupt_labels(labels: Any, matrix: Any, seed: int, sampler: str = "inverse_cdf") -> np.ndarray:
    """Noisy labels drawn from the rows of ``matrix`` for each clean label (int64).

    ``inverse_cdf``: one uniform per sample from ``Generator(PCG64(seed))``, inverted
    through the cumulative row of the sample's class. ``reference``: the reference code's
    sampler, ``RandomState(seed)`` and one ``multinomial(1, row)`` per sample in order.
    Either way a deterministic function of the inputs.
    """
    t = check_matrix(matrix)
    y = check_labels(labels, t.shape[0])
    if sampler == "reference":
        rng = np.random.RandomState(seed)
        return np.fromiter((int(np.argmax(rng.multinomial(1, t[c], 1)[0])) for c in y), dtype=np.int64, count=y.size)
    if sampler != "inverse_cdf":
        raise ValueError(f"sampler {sampler!r} is unknown; allowed: {', '.join(SAMPLERS)}")
    u = np.random.Generator(np.random.PCG64(seed)).random(y.size)
    return draw_inverse_cdf(t[y], u)


def empirical_transition(clean: Any, noisy: Any, num_classes: int) -> np.ndarray:
    """Row-normalised confusion clean -> noisy; the row of a class absent from ``clean`` is the identity row."""
    k = check_num_classes(num_classes)
    c, n = check_labels(clean, k, "clean"), check_labels(noisy, k, "noisy")
    if c.shape != n.shape:
        raise ValueError(f"clean and noisy labels differ in length: {c.size} vs {n.size}")
    counts = np.bincount(c * k + n, minlength=k * k).reshape(k, k).astype(np.float64)
    totals = counts.sum(axis=1)
    absent = totals == 0
    counts[absent] = np.eye(k)[absent]
    totals[absent] = 1.0
    return counts / totals[:, None]
