"""Sample selection with two models per cell: Co-teaching and JoCoR.

A cell of these methods trains two models of the stack (``models=2``) on the same batches;
the first is the cell's model (its accuracy, selection and curves are the cell's), the
second exists to train it. Their loss gets the two models' logits side by side, (S, n, 2,
B, K), and returns the per-sample losses of both, (S, n, 2, B), whose batch means the engine
sums like any other models'. Each keeps, per batch, the fraction 1 - R(t) of the samples
with the smallest loss, ``R(t) = tau * min(t / T_k, 1)``, t the epochs of the cell's phase
trained so far; ties in the loss go to the earlier sample of the batch. tau is the noise
rate: the seed's realised rate on its training split ("oracle rate", as the authors' code
takes the noise rate it was given), or the rate implied by T estimated by anchor points
from the warm-up model (``correction.noise_rate_of``; "estimated rate").

- Co-teaching (Han et al. 2018): each model's loss is its CE averaged over the samples the
  OTHER model kept.
- JoCoR (Wei et al. 2020): one joint loss per sample, ``(1 - lambda) (CE_1 + CE_2) + lambda
  (KL(p_1 || p_2) + KL(p_2 || p_1))`` (gradients through both sides of each KL), the small-loss
  selection on it, and its mean over the kept samples trains both models (it is the first
  model's loss; the second's is 0).
"""

from __future__ import annotations

from ..core.lazy import torch

from .correction import QUANTILE, QUANTILE_LITERATURE
from .registry import Batch, Literature, Method, Param, register

HAN2018 = ("Han et al., Co-teaching: Robust Training of Deep Neural Networks with Extremely Noisy Labels, "
           "NeurIPS 2018")
WEI2020 = ("Wei et al., Combating Noisy Labels by Agreement: A Joint Training Method with Co-Regularization, "
           "CVPR 2020")
COTEACH_CODE = "Han et al.'s code (bhanML/Co-teaching), main.py: num_gradual 10 (T_k), exponent 1"
JOCOR_CODE = "the authors' code (hongxin001/JoCoR)"

TK = Param("tk", "T_k", 10.0, "epochs over which the forget rate R(t) grows to τ", low=0.0, low_open=True,
           tex="T_k")
LAMBDA = Param("lam", "λ", 0.9, "weight of the agreement term (symmetric KL) against the two CEs", low=0.0,
               high=1.0, tex="\\lambda")


def forget_rate(tau: torch.Tensor, tk: torch.Tensor, epoch: int) -> torch.Tensor:
    """R(t) = tau min(t / T_k, 1) at the phase's epoch t (0-based): tau (S, n), tk (..., n)."""
    return tau * torch.clamp(epoch / tk, max=1.0)


def small_loss(loss: torch.Tensor, rate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The kept samples of each row of ``loss`` (..., B): the floor((1 - rate) B) smallest (at
    least one; ties: the earlier sample), and that count (...) as a float tensor."""
    b = loss.shape[-1]
    keep_n = torch.floor((1.0 - rate.to(torch.float64)) * b).clamp(min=1.0)
    order = torch.sort(loss.detach(), dim=-1, stable=True).indices
    rank = torch.empty_like(order).scatter_(-1, order, torch.arange(b, device=loss.device).expand_as(order))
    return rank < keep_n.unsqueeze(-1), keep_n


def coteach(batch: Batch, params: torch.Tensor) -> torch.Tensor:
    tk = params[..., 0]                                                    # (1, n)
    ce = batch.nll                                                         # (S, n, 2, B)
    rate = forget_rate(batch.noise_rate, tk, batch.epoch).unsqueeze(-1)    # (S, n, 1): both models
    keep, keep_n = small_loss(ce, rate)
    b = ce.shape[-1]
    return ce * keep.flip(-2).to(ce.dtype) * (b / keep_n).unsqueeze(-1).to(ce.dtype)


def jocor(batch: Batch, params: torch.Tensor) -> torch.Tensor:
    lam = params[..., 0].unsqueeze(-1).to(batch.logits.dtype)             # (1, n, 1)
    tk = params[..., 1]
    logp = batch.logp                                                      # (S, n, 2, B, K)
    p = logp.exp()
    ce = batch.nll                                                         # (S, n, 2, B)
    kl_01 = (p[:, :, 1] * (logp[:, :, 1] - logp[:, :, 0])).sum(-1)          # KL(p_2 || p_1)
    kl_10 = (p[:, :, 0] * (logp[:, :, 0] - logp[:, :, 1])).sum(-1)          # KL(p_1 || p_2)
    joint = (1 - lam) * (ce[:, :, 0] + ce[:, :, 1]) + lam * (kl_01 + kl_10)   # (S, n, B)
    keep, keep_n = small_loss(joint, forget_rate(batch.noise_rate, tk, batch.epoch))
    b = joint.shape[-1]
    first = joint * keep.to(joint.dtype) * (b / keep_n).unsqueeze(-1).to(joint.dtype)
    return torch.stack([first, torch.zeros_like(first)], dim=-2)


COTEACH = ("the paper's Algorithm 1: each model's CE averaged over the samples the other kept (the authors' "
           "code divides that mean by the count again, a learning-rate factor 1 / ((1 - R) B)); R(t) = τ min(t / "
           "T_k, 1) with t the epochs of the phase trained so far (the code indexes linspace(0, τ, T_k) by a "
           "1-based epoch); τ the noise rate, the code's forget rate; two models initialised apart (from two "
           "warm-up models where the variant has a warm-up)")
JOCOR = ("the authors' code: the joint loss (1 - λ)(CE₁ + CE₂) + λ(KL(p₁‖p₂) + KL(p₂‖p₁)), gradients through "
         "both sides of each KL, one small-loss selection by it, its mean over the kept samples for both models; "
         "R(t) as Co-teaching's; τ the noise rate as given (the code halves it for its asymmetric noise)")
TK_LITERATURE = (Literature(("mnist", "cifar10", "cifar100"), {"tk": 10.0}, COTEACH_CODE),)
JOCOR_LITERATURE = (
    Literature(("mnist",), {"lam": 0.95, "tk": 10.0}, JOCOR_CODE + ", example.sh (MNIST: co_lambda 0.95) and "
                                                                   "main.py (num_gradual 10)"),
    Literature(("cifar10",), {"lam": 0.9, "tk": 10.0}, JOCOR_CODE + ", README.md (CIFAR-10: λ = 0.9) and main.py "
                                                                    "(num_gradual 10)"),
    Literature(("cifar100",), {"lam": 0.85, "tk": 10.0}, JOCOR_CODE + ", README.md (CIFAR-100: λ = 0.85) and "
                                                                       "main.py (num_gradual 10)"))


def _with_quantile(literature: tuple[Literature, ...]) -> tuple[Literature, ...]:
    """The literature rows with the anchor-point estimator's quantile of each family added."""
    out = []
    for lit in literature:
        for q in QUANTILE_LITERATURE:
            families = tuple(f for f in lit.families if f in q.families)
            if families:
                out.append(Literature(families, {**lit.values, **q.values}, f"{lit.source}; {q.source}"))
    return tuple(out)


register(Method("coteach", "Co-teaching", (TK,), coteach, HAN2018,
                "two models, each trained on the other's small-loss samples (oracle rate)", family="selection",
                noise="oracle rate", models=2, convention=COTEACH, literature=TK_LITERATURE))
register(Method("coteach_est", "Co-teaching-est", (TK, QUANTILE), coteach, HAN2018,
                "Co-teaching with τ from T estimated from the warm-up model (estimated rate)", family="selection",
                noise="estimated rate", models=2, loss_args=lambda v: (v[0],), convention=COTEACH,
                literature=_with_quantile(TK_LITERATURE)))
register(Method("jocor", "JoCoR", (LAMBDA, TK), jocor, WEI2020,
                "two models trained on the small-loss samples of one joint loss with an agreement term "
                "(oracle rate)", family="selection", noise="oracle rate", models=2, convention=JOCOR,
                literature=JOCOR_LITERATURE))
register(Method("jocor_est", "JoCoR-est", (LAMBDA, TK, QUANTILE), jocor, WEI2020,
                "JoCoR with τ from T estimated from the warm-up model (estimated rate)", family="selection",
                noise="estimated rate", models=2, loss_args=lambda v: (v[0], v[1]), convention=JOCOR,
                literature=_with_quantile(JOCOR_LITERATURE)))
