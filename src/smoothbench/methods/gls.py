"""Generalized label smoothing (GLS): CE, LS and NLS as one formula, and label flipping.

With soft target ``(1 - r) * onehot(y) + r / K`` the per-sample loss is

    -(1 - r) * log p_y - (r / K) * sum_j log p_j

for any smooth rate r <= 1: r = 0 is cross-entropy (CE), 0 < r <= 1 label smoothing (LS),
r < 0 negative label smoothing (NLS). One log-softmax over a stack of models, one rate
per model, the closed-form gradient ``softmax - target`` (no one-hot is built).
Label flipping (seed note 000) replaces a label, with probability eps and afresh at
every step, by a uniformly drawn OTHER class and trains CE on it; in expectation it is
GLS with r = eps * K / (K - 1).
"""

from __future__ import annotations

import functools

from ..core import draws
from ..core.vocabulary import check_num_classes, fmt_rate
from ..core.lazy import F, torch
from .registry import Batch, Method, Param, full_precision, register

WEI2022 = ("Wei et al., To Smooth or Not? When Label Smoothing Meets Noisy Labels, ICML 2022 "
           "(arXiv 2106.04149)")


@functools.cache
def _gls_function():
    """The autograd function (made on first use: defining it needs torch)."""
    from torch.autograd.function import once_differentiable

    class _GLS(torch.autograd.Function):
        """Per-sample GLS loss with its closed-form gradient ``softmax - target``.

        Forward: one log-softmax, a gather and a mean over the classes. Backward: one pass
        that writes ``(softmax - r/K - (1-r)*onehot) * grad`` without building the one-hot or
        soft-target tensors (measured by ``smoothbench bench loss``).
        """

        @staticmethod
        def forward(ctx, x, labels, r):  # x (..., B, K); labels (..., B) int64; r (..., 1)
            logp = torch.log_softmax(x, dim=-1)
            nll = -logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)     # -log p_y          (..., B)
            uniform = -logp.mean(dim=-1)                                  # -(1/K) sum log p  (..., B)
            ctx.save_for_backward(logp, labels, r)
            return nll + r * (uniform - nll)                              # (1-r)*nll + r*uniform

        @staticmethod
        @once_differentiable
        def backward(ctx, grad):
            logp, labels, r = ctx.saved_tensors
            out = logp.exp()
            out.sub_((r / logp.shape[-1]).unsqueeze(-1))
            idx = labels.unsqueeze(-1)   # one index per row: gather + scatter_ is exact and deterministic on CUDA
            out.scatter_(-1, idx, out.gather(-1, idx) + (r - 1).expand_as(grad).unsqueeze(-1))
            out.mul_(grad.unsqueeze(-1))
            return out, None, None

    return _GLS


def _check_labels(labels: torch.Tensor, num_classes: int, check: bool) -> None:
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise ValueError(f"labels must be an integer tensor, got {labels.dtype}")
    if check and labels.numel():
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"labels must lie in [0, {num_classes - 1}]; got values in [{lo}, {hi}]")


def _rate_tensor(rate, model_shape, device, check: bool) -> torch.Tensor:
    if isinstance(rate, torch.Tensor):
        r = rate.to(device) if rate.is_floating_point() else rate.to(device, torch.float64)
    else:  # a Python number: keep its full precision until it meets the logits' dtype
        r = torch.as_tensor(rate, dtype=torch.float64, device=device)
    if r.dim() and tuple(r.shape) != tuple(model_shape):
        raise ValueError(f"smooth_rate has shape {tuple(r.shape)}; allowed: a float or a tensor of the model "
                         f"shape {tuple(model_shape)}")
    if check and bool((torch.isnan(r) | (r > 1)).any()):
        raise ValueError(f"smooth_rate must be <= 1 (and not NaN); got {r.tolist()}")
    return r


def gls_loss(logits: torch.Tensor, labels: torch.Tensor, smooth_rate: float | torch.Tensor,
             reduction: str = "mean", *, check: bool = True) -> torch.Tensor:
    """Generalized label smoothing loss over a stack of models.

    logits: ``(*M, B, K)``; labels: ``(B,)`` shared by all models or ``(*M, B)``;
    smooth_rate: a float or a tensor of shape ``*M`` (one r <= 1 per model).
    ``reduction="mean"`` returns shape ``*M`` (a 0-d tensor when there is no model
    dimension), ``"sum"`` likewise, ``"none"`` returns ``(*M, B)``. Half-precision logits are
    accumulated in float32. ``check=False`` skips the value checks that need a device
    synchronisation (label range, r <= 1).
    """
    if logits.dim() < 2:
        raise ValueError(f"logits must have shape (*M, B, K); got {tuple(logits.shape)}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none'; got {reduction!r}")
    *model_shape, batch, num_classes = logits.shape
    model_shape = torch.Size(model_shape)
    if labels.shape != (batch,) and labels.shape != (*model_shape, batch):
        raise ValueError(f"labels have shape {tuple(labels.shape)}; allowed: ({batch},) or "
                         f"{(*model_shape, batch)} for logits {tuple(logits.shape)}")
    _check_labels(labels, num_classes, check)
    r = _rate_tensor(smooth_rate, model_shape, logits.device, check)
    x = full_precision(logits)
    idx = labels.long().expand(*model_shape, batch)
    loss = _gls_function().apply(x, idx, r.to(x.dtype).reshape(*r.shape, 1))   # (*M, B)
    if reduction == "none":
        return loss
    return loss.mean(dim=-1) if reduction == "mean" else loss.sum(dim=-1)


def gls_targets(labels: torch.Tensor, num_classes: int, smooth_rate: float | torch.Tensor) -> torch.Tensor:
    """The GLS soft targets ``(1 - r) * onehot(y) + r / K``; shape ``labels.shape + (K,)``.

    smooth_rate is a float or a tensor broadcastable against ``labels.shape[:-1]`` (one rate
    per model). Rows sum to 1; for r < 0 the off-target entries are negative.
    """
    check_num_classes(num_classes)
    _check_labels(labels, num_classes, True)
    r = _rate_tensor(smooth_rate, labels.shape[:-1] if labels.dim() else (), labels.device, True)
    r = r.to(torch.get_default_dtype())
    if r.dim():
        r = r.unsqueeze(-1).unsqueeze(-1)
    onehot = F.one_hot(labels.long(), num_classes).to(r.dtype)
    return (1 - r) * onehot + r / num_classes


def flip_labels(labels: torch.Tensor, num_classes: int, flip_rate: torch.Tensor, key: torch.Tensor,
                step: int) -> torch.Tensor:
    """Label flipping: each label of ``labels`` (..., B) becomes, with probability
    ``flip_rate`` (...) and afresh at every ``step``, a uniformly drawn OTHER class. The
    draws are those of ``smoothbench.draws`` for each model's ``key`` (...): no generator
    state, no host-device synchronisation."""
    n = labels.shape[-1]
    flip = draws.uniform(key, "flip", step, n) < flip_rate.unsqueeze(-1)
    offset = draws.integers(key, "flip_class", step, n, 1, num_classes)
    return torch.where(flip, (labels + offset) % num_classes, labels)


# --------------------------------------------------------------------------- registry entries


def gls(batch: Batch, params: torch.Tensor) -> torch.Tensor:
    """The GLS per-sample loss; ``params[..., 0]`` is r."""
    return _gls_function().apply(batch.logits, batch.labels, params[..., :1].to(batch.logits.dtype))


def _flip(labels: torch.Tensor, params: torch.Tensor, batch: Batch) -> torch.Tensor:
    return flip_labels(labels, batch.num_classes, params[..., 0], batch.draw_key, batch.step)


def _flip_fits(values: tuple, k: int) -> str | None:
    eps = values[0]
    if eps > (k - 1) / k + 1e-12:
        return (f"flip rate ε = {fmt_rate(eps)} exceeds (K-1)/K = {fmt_rate((k - 1) / k)} (K = {k}): "
                f"its LS twin r = εK/(K-1) = {fmt_rate(eps * k / (k - 1))} would be above 1")
    return None


R_MEANING = "smooth rate: soft target (1 - r) onehot(y) + r/K"
register(Method("ce", "CE", (Param("r", "r", 0.0, "smooth rate (0: plain cross-entropy)", low=0.0, high=0.0),),
                gls, "cross-entropy; " + WEI2022 + " (r = 0)", "cross-entropy on the (noisy) labels",
                baseline=None, family="gls"))
register(Method("ls", "LS", (Param("r", "r", 0.1, R_MEANING, low=0.0, high=1.0, low_open=True),), gls,
                "Szegedy et al., Rethinking the Inception Architecture, CVPR 2016; " + WEI2022,
                "label smoothing: GLS with 0 < r <= 1", family="gls"))
register(Method("nls", "NLS", (Param("r", "r", -0.2, R_MEANING, high=0.0, high_open=True),), gls, WEI2022,
                "negative label smoothing: GLS with r < 0 (unbounded below: it can diverge)", family="gls"))
register(Method("flip", "flip", (Param("eps", "ε", 0.1, "flip rate: a label becomes a uniformly drawn other class "
                                       "with probability ε, afresh at every step", low=0.0, high=1.0, low_open=True,
                                       tex="\\varepsilon"),),
                gls, "seed note 000 (flipping at ε equals GLS at r = εK/(K-1) in expectation)",
                "CE on labels flipped afresh at every step", family="flip", loss_args=lambda v: (0.0,),
                transform=_flip, dataset_check=_flip_fits))
