"""Instance-dependent noise (Xia et al., NeurIPS 2020): the registry entry ``instance``.

A sample's chance of a wrong label, and which wrong label, depend on its features; rates lie
in [0, 1). The labels come with their realised (empirical) transition matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.vocabulary import check_num_classes
from .registry import NoiseJob, NoiseKind, check_rate, register
from .sampling import check_labels, draw_inverse_cdf, empirical_transition

INSTANCE_STD = 0.1  # std of the per-sample flip rate around the nominal rate (Xia et al.)


def _truncated_normal(rng: np.random.Generator, mean: float, std: float, size: int) -> np.ndarray:
    """Normal(mean, std) draws conditioned on [0, 1], by vectorised rejection."""
    out = rng.normal(mean, std, size)
    bad = (out < 0.0) | (out > 1.0)
    while bad.any():
        out[bad] = rng.normal(mean, std, int(bad.sum()))
        bad = (out < 0.0) | (out > 1.0)
    return out


def _instance_flip_probabilities(
    x: np.ndarray, labels: np.ndarray, num_classes: int, rate: float, rng: np.random.Generator
) -> np.ndarray:
    """(N, K) noisy-label distribution of each sample (Xia et al. 2020, instance-dependent).

    Per sample a flip rate q ~ Normal(rate, 0.1) truncated to [0, 1]; per class c a
    projection W_c ~ Normal(0, 1) of shape (D, K). Sample i of class c keeps its label
    with 1 - q_i and flips with q_i, spread over the other classes by the softmax of
    its standardised, flattened features times W_c with its own class excluded.
    Draw order: q (N), then W_0 ... W_{K-1}.
    """
    n, d = x.shape
    q = _truncated_normal(rng, rate, INSTANCE_STD, n)
    mean = x.mean(axis=0, dtype=np.float64)
    sq = np.zeros(d)
    for start in range(0, n, 4096):  # chunked: no full float64 copy of the data
        sq += ((x[start:start + 4096] - mean) ** 2).sum(axis=0)
    std = np.sqrt(sq / n)
    std[std == 0] = 1.0
    probs = np.zeros((n, num_classes))
    for c in range(num_classes):
        w = rng.standard_normal((d, num_classes))  # drawn for every class: same draws whatever the labels
        idx = np.flatnonzero(labels == c)
        if idx.size == 0:
            continue
        logits = ((x[idx] - mean) / std) @ w
        logits[:, c] = -np.inf
        logits -= logits.max(axis=1, keepdims=True)
        soft = np.exp(logits)
        soft /= soft.sum(axis=1, keepdims=True)
        probs[idx] = q[idx, None] * soft
        probs[idx, c] = 1.0 - q[idx]
    return probs


def instance_noise(
    features: Any, labels: Any, num_classes: int, rate: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Instance-dependent noisy labels and their empirical transition matrix.

    See ``_instance_flip_probabilities`` for the construction; the expected realised rate
    is the mean of the truncated normal (``rate`` itself unless rate is within ~0.2 of 0
    or 1). Rate 0 returns the clean labels. Deterministic for a seed.
    """
    k = check_num_classes(num_classes)
    y = check_labels(labels, k)
    r = check_rate("instance", rate, k)
    x = np.asarray(features)
    if x.shape[0] != y.size:
        raise ValueError(f"features have {x.shape[0]} rows but labels have {y.size}")
    if r == 0.0:
        return y.copy(), np.eye(k)
    rng = np.random.Generator(np.random.PCG64(seed))
    probs = _instance_flip_probabilities(x.reshape(y.size, -1), y, k, r, rng)
    noisy = draw_inverse_cdf(probs, rng.random(y.size))
    return noisy, empirical_transition(y, noisy, k)


def _corrupt(job: NoiseJob) -> tuple[np.ndarray, np.ndarray]:
    return instance_noise(job.features, job.labels, job.num_classes, job.rate, job.draw_seed)


register(NoiseKind(
    name="instance", description="instance-dependent: each sample's flip rate and target follow its features "
                                 "(Xia et al. 2020)",
    rates="[0, 1)", rate_range=lambda k: (0.0, 1.0), corrupt=_corrupt))
