"""The loss core: generalized label smoothing (GLS) for any smooth rate r <= 1.

One formula serves cross-entropy (r = 0), label smoothing (0 < r <= 1) and negative
label smoothing (r < 0). With soft target ``(1 - r) * onehot(y) + r / K`` the
per-sample loss is

    -(1 - r) * log p_y - (r / K) * sum_j log p_j

computed from one log-softmax over a stack of models: logits ``(*M, B, K)``, one rate
per model. Label flipping (seed note 000) draws a uniformly chosen *other* class with
probability eps; in expectation it is GLS with r = eps * K / (K - 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .cells import check_num_classes, flip_to_smooth, smooth_to_flip  # noqa: F401 (the losses' public names)

_HALF = (torch.float16, torch.bfloat16)


def off_target_mass(flip_rate: float, num_classes: int) -> float:
    """Seed 000's form: each wrong class gets eps/(K-1), equal to r/K for r = flip_to_smooth(eps)."""
    check_num_classes(num_classes)
    return flip_rate / (num_classes - 1)


def _rate_tensor(rate, model_shape: torch.Size, device, name: str, check: bool, upper: float | None = 1.0):
    """``rate`` (float or tensor of shape ``model_shape``) as a float32/64 tensor on ``device``."""
    if isinstance(rate, torch.Tensor):
        r = rate.to(device) if rate.is_floating_point() else rate.to(device, torch.float64)
    else:  # a Python number: keep its full precision until it meets the logits' dtype
        r = torch.as_tensor(rate, dtype=torch.float64, device=device)
    if r.dim() and tuple(r.shape) != tuple(model_shape):
        raise ValueError(
            f"{name} has shape {tuple(r.shape)}; allowed: a float or a tensor of the model shape {tuple(model_shape)}"
        )
    if check:
        bad = torch.isnan(r) | (r > upper) if upper is not None else torch.isnan(r)
        if bool(bad.any()):
            raise ValueError(f"{name} must be <= {upper} (and not NaN); got {r.tolist()}")
    return r


def _check_labels(labels: torch.Tensor, num_classes: int, check: bool) -> None:
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise ValueError(f"labels must be an integer tensor, got {labels.dtype}")
    if check and labels.numel():
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"labels must lie in [0, {num_classes - 1}]; got values in [{lo}, {hi}]")


class _GLS(torch.autograd.Function):
    """Per-sample GLS loss with its closed-form gradient ``softmax - target``.

    Forward: one log-softmax, a gather and a mean over the classes. Backward: one
    pass that writes ``(softmax - r/K - (1-r)*onehot) * grad`` without building the
    one-hot or soft-target tensors (measured by ``smoothbench bench loss``).
    """

    @staticmethod
    def forward(ctx, x, labels, r):  # x (*M, B, K); labels (*M, B) int64; r (*M, 1) or (1,)
        logp = torch.log_softmax(x, dim=-1)
        nll = -logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)     # -log p_y          (*M, B)
        uniform = -logp.mean(dim=-1)                                  # -(1/K) sum log p  (*M, B)
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


def gls_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    smooth_rate: float | torch.Tensor,
    reduction: str = "mean",
    *,
    check: bool = True,
) -> torch.Tensor:
    """Generalized label smoothing loss over a stack of models.

    logits: ``(*M, B, K)``; labels: ``(B,)`` shared by all models or ``(*M, B)``;
    smooth_rate: a float or a tensor of shape ``*M`` (one r <= 1 per model).
    ``reduction="mean"`` returns shape ``*M`` (a 0-d tensor when there is no model
    dimension), ``"sum"`` likewise, ``"none"`` returns ``(*M, B)``.
    Half-precision logits are accumulated in float32. ``check=False`` skips the
    value checks that need a device synchronisation (label range, r <= 1).
    """
    if logits.dim() < 2:
        raise ValueError(f"logits must have shape (*M, B, K); got {tuple(logits.shape)}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none'; got {reduction!r}")
    *model_shape, batch, num_classes = logits.shape
    model_shape = torch.Size(model_shape)
    if labels.shape != (batch,) and labels.shape != (*model_shape, batch):
        raise ValueError(
            f"labels have shape {tuple(labels.shape)}; allowed: ({batch},) or {(*model_shape, batch)} "
            f"for logits {tuple(logits.shape)}"
        )
    _check_labels(labels, num_classes, check)
    r = _rate_tensor(smooth_rate, model_shape, logits.device, "smooth_rate", check)

    x = logits.float() if logits.dtype in _HALF else logits
    idx = labels.long().expand(*model_shape, batch)
    loss = _GLS.apply(x, idx, r.to(x.dtype).reshape(*r.shape, 1))   # (*M, B)
    if reduction == "none":
        return loss
    return loss.mean(dim=-1) if reduction == "mean" else loss.sum(dim=-1)


def gls_targets(labels: torch.Tensor, num_classes: int, smooth_rate: float | torch.Tensor) -> torch.Tensor:
    """The GLS soft targets ``(1 - r) * onehot(y) + r / K``; shape ``labels.shape + (K,)``.

    smooth_rate is a float or a tensor broadcastable against ``labels.shape[:-1]``
    (one rate per model). Rows sum to 1; for r < 0 the off-target entries are negative.
    """
    check_num_classes(num_classes)
    _check_labels(labels, num_classes, True)
    r = _rate_tensor(smooth_rate, labels.shape[:-1] if labels.dim() else (), labels.device,
                     "smooth_rate", True)
    r = r.to(torch.get_default_dtype())
    if r.dim():
        r = r.unsqueeze(-1).unsqueeze(-1)
    onehot = F.one_hot(labels.long(), num_classes).to(r.dtype)
    return (1 - r) * onehot + r / num_classes


def flip_labels(
    labels: torch.Tensor,
    num_classes: int,
    flip_rate: float | torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Label flipping: each label becomes, with probability ``flip_rate``, a uniformly drawn OTHER class.

    labels: ``(B,)``. flip_rate: a float (output ``(B,)``) or a tensor of shape ``*M``
    (output ``(*M, B)``, an independent draw per model). The generator must live on
    the labels' device.
    """
    check_num_classes(num_classes)
    if labels.dim() != 1:
        raise ValueError(f"labels must have shape (B,); got {tuple(labels.shape)}")
    _check_labels(labels, num_classes, True)
    eps = torch.as_tensor(flip_rate, dtype=torch.float32, device=labels.device)
    if bool(torch.isnan(eps).any()) or bool(((eps < 0) | (eps > 1)).any()):
        raise ValueError(f"flip_rate must lie in [0, 1]; got {eps.tolist()}")
    shape = (*eps.shape, labels.shape[0])
    flip = torch.rand(shape, generator=generator, device=labels.device) < eps.unsqueeze(-1)
    offset = torch.randint(1, num_classes, shape, generator=generator, device=labels.device)
    y = labels.long().expand(shape)
    return torch.where(flip, (y + offset) % num_classes, y)


def gls_bce_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    smooth_rate: float | torch.Tensor,
    reduction: str = "mean",
    *,
    check: bool = True,
) -> torch.Tensor:
    """Binary / multi-label GLS (seed note 001): targets in {0, 1} become ``(1 - r) * y + r / 2``.

    logits and targets share a shape ``(*M, ...)``; smooth_rate is a float or a tensor
    of the leading model shape ``*M`` (r <= 1). ``"mean"`` averages over everything
    after the model dimensions (shape ``*M``; 0-d for a float rate).
    """
    if logits.shape != targets.shape:
        raise ValueError(f"targets have shape {tuple(targets.shape)}; allowed: the logits' shape {tuple(logits.shape)}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none'; got {reduction!r}")
    if check and targets.numel() and not bool(((targets == 0) | (targets == 1)).all()):
        raise ValueError("targets must be 0 or 1")
    r = _rate_tensor(smooth_rate, torch.as_tensor(smooth_rate).shape, logits.device, "smooth_rate", check)
    if r.dim() > logits.dim() - 1 or tuple(r.shape) != tuple(logits.shape[: r.dim()]):
        raise ValueError(f"smooth_rate has shape {tuple(r.shape)}; allowed: a float or the leading model shape")
    lead = r.dim()
    x = logits.float() if logits.dtype in _HALF else logits
    r = r.to(x.dtype).reshape(*r.shape, *([1] * (x.dim() - lead)))
    soft = (1 - r) * targets.to(x.dtype) + r / 2
    loss = F.binary_cross_entropy_with_logits(x, soft.expand_as(x), reduction="none")
    if reduction == "none":
        return loss
    dims = tuple(range(lead, x.dim()))
    return loss.mean(dim=dims) if reduction == "mean" else loss.sum(dim=dims)


def bce_cell_loss(logits: torch.Tensor, labels: torch.Tensor, smooth_rate: torch.Tensor) -> torch.Tensor:
    """Per-model mean BCE-smoothing loss of stacked logits ``(M, B, K)`` and labels ``(B,)``:
    for K = 2 one binary logit ``z_1 - z_0`` against y; for K > 2 one-vs-all, a sigmoid per
    class against ``onehot(y)`` (summed over classes). Targets ``(1 - r) * y + r / 2`` with
    one r per model (``smooth_rate`` of shape ``(M,)``). Returns ``(M,)``."""
    m, b, k = logits.shape
    if k == 2:
        binary = logits[..., 1] - logits[..., 0]                         # (M, B)
        target = labels.to(binary.dtype).expand(m, b)
        return gls_bce_loss(binary, target, smooth_rate, check=False)
    onehot = F.one_hot(labels.long(), k).to(logits.dtype if logits.dtype not in _HALF else torch.float32)
    per = gls_bce_loss(logits, onehot.expand(m, b, k), smooth_rate, reduction="none", check=False)  # (M, B, K)
    return per.sum(-1).mean(-1)


def stacked_loss(logits: torch.Tensor, labels: torch.Tensor, smooth_rate: torch.Tensor,
                 bce_index: torch.Tensor | None = None) -> torch.Tensor:
    """The loss of every model of a group's stack, ``(M,)``: GLS on softmax outputs, except the
    models in ``bce_index`` (their BCE smoothing, ``bce_cell_loss``; their labels are
    ``labels[0]``'s row when labels are per model). One call per training step."""
    if bce_index is None or bce_index.numel() == 0:
        return gls_loss(logits, labels, smooth_rate, check=False)
    m = logits.shape[0]
    soft = torch.ones(m, dtype=torch.bool, device=logits.device)
    soft[bce_index] = False
    soft_index = soft.nonzero().squeeze(-1)
    shared = labels if labels.dim() == 1 else labels[bce_index[0]]
    out = torch.empty(m, dtype=torch.float32 if logits.dtype in _HALF else logits.dtype, device=logits.device)
    out = out.index_copy(0, bce_index, bce_cell_loss(logits[bce_index], shared, smooth_rate[bce_index]).to(out.dtype))
    if soft_index.numel():
        soft_labels = labels if labels.dim() == 1 else labels[soft_index]
        out = out.index_copy(0, soft_index, gls_loss(logits[soft_index], soft_labels, smooth_rate[soft_index],
                                                     check=False).to(out.dtype))
    return out
