"""Early-learning regularization (ELR; Liu et al., NeurIPS 2020).

Each model keeps a running target t_i per training sample, ``t_i <- beta t_i + (1 - beta)
p_i`` (p clamped to [1e-4, 1 - 1e-4] and renormalised, no gradient), updated when the
sample is in the batch; the loss is ``CE + lambda * log(1 - <p_i, t_i>)``, which keeps the
model close to what it predicted early in training. The targets are per-sample state
(``state=True``): the engine keeps them on the device beside the model and in the
checkpoint, so a killed run resumes to identical metrics.
"""

from __future__ import annotations

from ..core.lazy import torch

from .registry import Batch, Literature, Method, Param, register

ELR_CLAMP = 1e-4


def elr(batch: Batch, params: torch.Tensor) -> torch.Tensor:
    lam = params[..., 0].unsqueeze(-1).to(batch.logits.dtype)
    beta = params[..., 1].unsqueeze(-1).unsqueeze(-1).to(batch.logits.dtype)
    p = batch.logp.exp().clamp(ELR_CLAMP, 1 - ELR_CLAMP)                         # (..., B, K)
    k = p.shape[-1]
    where = batch.index.unsqueeze(-1).expand(*batch.index.shape, k)              # (..., B, K)
    with torch.no_grad():
        fresh = p / p.sum(-1, keepdim=True)
        target = beta * batch.state.gather(-2, where).to(p.dtype) + (1 - beta) * fresh
        batch.state.scatter_(-2, where, target.to(batch.state.dtype))            # indices are unique in a batch
    reg = torch.log1p(-(p * target).sum(-1))
    return batch.nll + lam * reg


register(Method("elr", "ELR", (Param("lam", "λ", 3.0, "weight of the regularizer (0: CE)", low=0.0,
                                     tex="\\lambda"),
                               Param("beta", "β", 0.7, "momentum of the running targets", low=0.0, high=1.0,
                                     high_open=True, tex="\\beta")), elr,
                "Liu et al., Early-Learning Regularization Prevents Memorization of Noisy Labels, NeurIPS 2020",
                "CE + λ log(1 - <p, t>) with running per-sample targets t", family="elr", state=True,
                convention="the authors' code: p clamped to [1e-4, 1 - 1e-4] in the regularizer and the targets (not "
                           "in the paper's formula), the targets renormalised and updated before the loss, a sample's "
                           "target updated only when it is in the batch",
                literature=(Literature(("cifar10",), {"lam": 3.0, "beta": 0.7},
                                       "the authors' code (shengliu66/ELR), ELR/config_cifar10.json"),
                            Literature(("cifar100",), {"lam": 7.0, "beta": 0.9},
                                       "the authors' code (shengliu66/ELR), ELR/config_cifar100.json"))))
