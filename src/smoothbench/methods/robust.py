"""The field's noise-robust losses, as registry entries (baselines of the study).

Each is a per-sample formula of the softmax output p and the label y, written with
log-probabilities so that it stays finite (and its gradient too) where p_y rounds to 1:
``1 - p_y`` is ``exp(log_not_y)``, a log-sum-exp over the other classes.

- GCE (Zhang & Sabuncu 2018): ``(1 - p_y^q) / q``; q -> 0 is CE, q = 1 is MAE.
- SCE (Wang et al. 2019): ``alpha * CE + beta * RCE``, RCE = ``-sum_j p_j log q_j`` with the
  one-hot label clamped to ``q_j >= 1e-4`` (A = log 1e-4) and p clamped to >= 1e-7: for
  p summing to 1 it is ``-A (1 - p_y)``.
- NCE+RCE (Ma et al. 2020, active-passive losses): ``alpha * NCE + beta * RCE``,
  NCE = ``log p_y / sum_j log p_j``.
- MAE (Ghosh et al. 2017): ``s * ||p - onehot(y)||_1 / 2 = s * (1 - p_y)``.
- focal (Lin et al. 2017): ``-(1 - p_y)^gamma log p_y``; gamma = 0 is CE. The weight is
  differentiated through (Lin et al.'s loss, the default) or, with ``detach`` 1, taken as a
  constant (the active-passive losses code, whose benchmark gives gamma = 0.5).
- bootstrapping (Reed et al. 2015): soft ``-sum_j (beta onehot_j + (1 - beta) p_j) log p_j``
  (the prediction part is an entropy term: Reed et al.'s minimum-entropy reading; gradient
  flows through it), hard ``-beta log p_y - (1 - beta) log p_argmax`` (argmax without
  gradient); beta = 1 is CE.
"""

from __future__ import annotations

import math

from ..core.lazy import torch

from .registry import Batch, Literature, Method, Param, register

APL = "the active-passive losses code (HanxunH/Active-Passive-Losses), configs/{family}/sym/{file}.yaml"

RCE_LOG_A = math.log(1e-4)      # A: log of the clamped zero entries of the one-hot label (Wang et al.)
RCE_P_MIN = 1e-7                # the prediction's clamp in RCE (Wang et al.)


def _rce(batch: Batch) -> torch.Tensor:
    """Reverse cross-entropy ``-sum_j clamp(p_j) log clamp(onehot_j, 1e-4)`` per sample."""
    p = batch.logp.exp().clamp(min=RCE_P_MIN)
    p_y = p.gather(-1, batch.labels.unsqueeze(-1)).squeeze(-1)
    return -RCE_LOG_A * (p.sum(-1) - p_y)


def gce(batch: Batch, params: torch.Tensor) -> torch.Tensor:
    q = params[..., 0].unsqueeze(-1).to(batch.logits.dtype)            # (..., 1)
    return -torch.expm1(-q * batch.nll) / q                           # (1 - p_y^q) / q


def sce(batch: Batch, params: torch.Tensor) -> torch.Tensor:
    alpha, beta = (params[..., i].unsqueeze(-1).to(batch.logits.dtype) for i in (0, 1))
    return alpha * batch.nll + beta * _rce(batch)


def nce_rce(batch: Batch, params: torch.Tensor) -> torch.Tensor:
    alpha, beta = (params[..., i].unsqueeze(-1).to(batch.logits.dtype) for i in (0, 1))
    nce = batch.nll / (-batch.logp.sum(-1))
    return alpha * nce + beta * _rce(batch)


def mae(batch: Batch, params: torch.Tensor) -> torch.Tensor:
    scale = params[..., 0].unsqueeze(-1).to(batch.logits.dtype)
    return scale * batch.log_not_y.exp()                              # s (1 - p_y)


def focal(batch: Batch, params: torch.Tensor) -> torch.Tensor:
    gamma = params[..., 0].unsqueeze(-1).to(batch.logits.dtype)
    detach = params[..., 1].unsqueeze(-1) > 0.5
    weight = torch.exp(gamma * batch.log_not_y)                       # (1 - p_y)^gamma
    weight = torch.where(detach, weight.detach(), weight)             # a constant weight where detached
    return weight * batch.nll


def boot_soft(batch: Batch, params: torch.Tensor) -> torch.Tensor:
    beta = params[..., 0].unsqueeze(-1).to(batch.logits.dtype)
    entropy = -(batch.logp.exp() * batch.logp).sum(-1)
    return beta * batch.nll + (1 - beta) * entropy


def boot_hard(batch: Batch, params: torch.Tensor) -> torch.Tensor:
    beta = params[..., 0].unsqueeze(-1).to(batch.logits.dtype)
    top = batch.logp.detach().argmax(-1, keepdim=True)
    return beta * batch.nll - (1 - beta) * batch.logp.gather(-1, top).squeeze(-1)


register(Method("gce", "GCE", (Param("q", "q", 0.7, "truncation of the Box-Cox transform: q -> 0 is CE, 1 is MAE",
                                     low=0.0, high=1.0, low_open=True),), gce,
                "Zhang & Sabuncu, Generalized Cross Entropy Loss for Training Deep Neural Networks with Noisy "
                "Labels, NeurIPS 2018 (q = 0.7)", "generalized cross-entropy (1 - p_y^q)/q", family="robust",
                convention="the paper's (1 - p_y^q)/q, which the authors' and the active-passive losses code compute "
                           "alike (without the truncated variant L_trunc)",
                literature=(Literature(("mnist", "cifar10", "cifar100"), {"q": 0.7},
                                       "Zhang & Sabuncu 2018, experiments (q = 0.7); "
                                       + APL.format(family="*", file="gce")),)))
register(Method("sce", "SCE", (Param("alpha", "α", 0.1, "weight of CE", low=0.0, low_open=True, tex="\\alpha"),
                               Param("beta", "β", 1.0, "weight of reverse CE (A = log 1e-4)", low=0.0,
                                     tex="\\beta")), sce,
                "Wang et al., Symmetric Cross Entropy for Robust Learning with Noisy Labels, ICCV 2019",
                "symmetric cross-entropy α CE + β RCE", family="robust",
                convention="the authors' code: RCE's log 0 is A = ln 1e-4 ≈ -9.21 (the one-hot label clamped at 1e-4; "
                           "the paper writes A = -4) and p is clamped at 1e-7; their per-dataset α, β were tuned "
                           "with it",
                literature=(Literature(("mnist",), {"alpha": 0.01, "beta": 1.0},
                                       "Wang et al. 2019, experimental setup; " + APL.format(family="mnist", file="sce")),
                            Literature(("cifar10",), {"alpha": 0.1, "beta": 1.0},
                                       "Wang et al. 2019, experimental setup; " + APL.format(family="cifar10", file="sce")),
                            Literature(("cifar100",), {"alpha": 6.0, "beta": 0.1},
                                       "Wang et al. 2019, experimental setup; " + APL.format(family="cifar100", file="sce")))))
register(Method("nce_rce", "NCE+RCE", (Param("alpha", "α", 1.0, "weight of normalized CE (active)", low=0.0,
                                             low_open=True, tex="\\alpha"),
                                       Param("beta", "β", 1.0, "weight of reverse CE (passive)", low=0.0,
                                             tex="\\beta")), nce_rce,
                "Ma et al., Normalized Loss Functions for Deep Learning with Noisy Labels, ICML 2020 "
                "(active-passive loss)", "normalized CE plus reverse CE", family="robust",
                convention="the authors' code: NCE = log p_y / Σ_j log p_j as written, RCE as SCE's (A = ln 1e-4, p "
                           "clamped at 1e-7)",
                literature=(Literature(("mnist",), {"alpha": 1.0, "beta": 10.0},
                                       APL.format(family="mnist", file="nce+rce")),
                            Literature(("cifar10",), {"alpha": 1.0, "beta": 1.0},
                                       APL.format(family="cifar10", file="nce+rce")),
                            Literature(("cifar100",), {"alpha": 10.0, "beta": 0.1},
                                       APL.format(family="cifar100", file="nce+rce")))))
register(Method("mae", "MAE", (Param("scale", "s", 1.0, "scale of (1 - p_y); 2 is the L1 distance to the one-hot "
                                     "label", low=0.0, low_open=True),), mae,
                "Ghosh, Kumar & Sastry, Robust Loss Functions under Label Noise for Deep Neural Networks, "
                "AAAI 2017", "mean absolute error s (1 - p_y)", family="robust",
                convention="the active-passive losses code's reduced MAE 1 - p_y at s = 1, half of Ghosh et al.'s L1 "
                           "distance ||p - onehot(y)||_1 = 2 (1 - p_y) (s = 2); the benchmark values are for it",
                literature=(Literature(("mnist", "cifar10", "cifar100"), {"scale": 1.0},
                                       APL.format(family="*", file="mae")),)))
register(Method("focal", "focal", (Param("gamma", "γ", 0.5, "focusing: weight (1 - p_y)^γ; 0 is CE", low=0.0,
                                         tex="\\gamma"),
                                   Param("detach", "detach", 0.0, "the weight (1 - p_y)^γ differentiated through "
                                         "(0, Lin et al.) or a constant (1, the active-passive losses code)",
                                         choices=((0.0, "weight differentiated"), (1.0, "detached weight")))),
                focal,
                "Lin et al., Focal Loss for Dense Object Detection, ICCV 2017 (γ = 0.5 as benchmarked under label "
                "noise by Ma et al., ICML 2020)", "focal loss -(1 - p_y)^γ log p_y", family="robust",
                convention="Lin et al.'s loss by default: its gradient goes through the weight (1 - p_y)^γ; the "
                           "active-passive losses code, whose benchmark gives γ = 0.5, detaches p_y in the weight "
                           "(detach: 1), which changes the gradient, not the loss",
                literature=(Literature(("mnist", "cifar10", "cifar100"), {"gamma": 0.5},
                                       APL.format(family="*", file="focal")),)))
register(Method("boot_soft", "boot-soft", (Param("beta", "β", 0.95, "weight of the given label (1: CE)", low=0.0,
                                                 high=1.0, tex="\\beta"),), boot_soft,
                "Reed et al., Training Deep Neural Networks on Noisy Labels with Bootstrapping, ICLR 2015 workshop",
                "soft bootstrapping: target β onehot(y) + (1 - β) p", family="robust",
                convention="the paper's loss with the gradient through the prediction target (its minimum-entropy "
                           "reading); the active-passive and ELR benchmarks' versions agree",
                literature=(Literature(("mnist",), {"beta": 0.95}, "Reed et al. 2015, MNIST experiments (soft: β = 0.95)"),)))
register(Method("boot_hard", "boot-hard", (Param("beta", "β", 0.8, "weight of the given label (1: CE)", low=0.0,
                                                 high=1.0, tex="\\beta"),), boot_hard,
                "Reed et al., Training Deep Neural Networks on Noisy Labels with Bootstrapping, ICLR 2015 workshop",
                "hard bootstrapping: target β onehot(y) + (1 - β) onehot(argmax p)", family="robust",
                convention="the paper's loss; the argmax carries no gradient",
                literature=(Literature(("mnist",), {"beta": 0.8}, "Reed et al. 2015, MNIST experiments (hard: β = 0.8)"),)))
