"""Binary smoothing (seed note 001): sigmoid outputs trained with BCE on smoothed targets.

Targets in {0, 1} become ``(1 - r) * y + r / 2`` (bce: r = 0, bls: 0 < r <= 1, bnls: r < 0).
For K = 2 the model's two logits give ONE binary logit ``z_1 - z_0`` against y, which is
softmax GLS exactly (so the family is an identity on binary tasks); for K > 2 a sigmoid per
class against ``onehot(y)`` (one-vs-all), summed over the classes. Their probabilities are
their own sigmoids (``output = "sigmoid"``): the engine's NLL, ECE and calibration read those.
"""

from __future__ import annotations

from ..core.lazy import F, torch

from .registry import Batch, Method, Param, full_precision, register

SEED_001 = "seed note 001 (smoothing one-hot and binary targets)"


def gls_bce_loss(logits: torch.Tensor, targets: torch.Tensor, smooth_rate: float | torch.Tensor,
                 reduction: str = "mean", *, check: bool = True) -> torch.Tensor:
    """Binary / multi-label GLS: targets in {0, 1} become ``(1 - r) * y + r / 2``.

    logits and targets share a shape ``(*M, ...)``; smooth_rate is a float or a tensor of
    the leading model shape ``*M`` (r <= 1). ``"mean"`` averages over everything after the
    model dimensions (shape ``*M``; 0-d for a float rate).
    """
    if logits.shape != targets.shape:
        raise ValueError(f"targets have shape {tuple(targets.shape)}; allowed: the logits' shape {tuple(logits.shape)}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none'; got {reduction!r}")
    if check and targets.numel() and not bool(((targets == 0) | (targets == 1)).all()):
        raise ValueError("targets must be 0 or 1")
    r = torch.as_tensor(smooth_rate, dtype=torch.float64, device=logits.device) \
        if not isinstance(smooth_rate, torch.Tensor) else smooth_rate.to(logits.device)
    if check and bool((torch.isnan(r) | (r > 1)).any()):
        raise ValueError(f"smooth_rate must be <= 1 (and not NaN); got {r.tolist()}")
    if r.dim() > logits.dim() - 1 or tuple(r.shape) != tuple(logits.shape[: r.dim()]):
        raise ValueError(f"smooth_rate has shape {tuple(r.shape)}; allowed: a float or the leading model shape")
    lead = r.dim()
    x = full_precision(logits)
    r = r.to(x.dtype).reshape(*r.shape, *([1] * (x.dim() - lead)))
    soft = (1 - r) * targets.to(x.dtype) + r / 2
    loss = F.binary_cross_entropy_with_logits(x, soft.expand_as(x), reduction="none")
    if reduction == "none":
        return loss
    dims = tuple(range(lead, x.dim()))
    return loss.mean(dim=dims) if reduction == "mean" else loss.sum(dim=dims)


def bce(batch: Batch, params: torch.Tensor) -> torch.Tensor:
    """Per-sample BCE smoothing loss; ``params[..., 0]`` is r."""
    x, y, k = batch.logits, batch.labels, batch.num_classes
    r = params[..., :1].to(x.dtype)                                   # (..., 1)
    if k == 2:
        binary = x[..., 1] - x[..., 0]                                # (..., B)
        return F.binary_cross_entropy_with_logits(binary, (1 - r) * y.to(x.dtype) + r / 2, reduction="none")
    onehot = F.one_hot(y, k).to(x.dtype)                              # (..., B, K)
    target = (1 - r.unsqueeze(-1)) * onehot + r.unsqueeze(-1) / 2
    return F.binary_cross_entropy_with_logits(x, target, reduction="none").sum(-1)


R_MEANING = "smooth rate of the binary targets: (1 - r) y + r/2"
register(Method("bce", "BCE", (Param("r", "r", 0.0, "smooth rate (0: plain BCE)", low=0.0, high=0.0),), bce,
                SEED_001, "sigmoid outputs, binary cross-entropy (one-vs-all for K > 2)", baseline=None,
                family="bce", output="sigmoid"))
register(Method("bls", "BCE-LS", (Param("r", "r", 0.1, R_MEANING, low=0.0, high=1.0, low_open=True),), bce,
                SEED_001, "BCE on smoothed targets, 0 < r <= 1", baseline="bce", family="bce", output="sigmoid"))
register(Method("bnls", "BCE-NLS", (Param("r", "r", -0.2, R_MEANING, high=0.0, high_open=True),), bce,
                SEED_001, "BCE on negatively smoothed targets, r < 0", baseline="bce", family="bce",
                output="sigmoid"))
