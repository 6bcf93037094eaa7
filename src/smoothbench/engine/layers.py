"""Stacked layers: M independent models' layers as one module, and state helpers.

Every parameter and buffer has the model dimension M first (``tensor[m]`` is model m):
conv weight ``(M, out, in, k, k)`` (no bias), BatchNorm weight/bias and running stats
``(M, C)`` (fixed momentum, no ``num_batches_tracked``), linear weight ``(M, out, in)``
and bias ``(M, out)``. Image features are laid out ``(B, M*C, H, W)`` (model-major
channels): the first conv maps a shared input with its weight viewed as
``(M*out, in, k, k)``, later convs use ``groups=M``. See ``models`` for the zoo built
from these layers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

BN_MOMENTUM = 0.1
BN_EPS = 1e-5


# --------------------------------------------------------------------------- layers


class StackedConv2d(nn.Module):
    """M independent bias-free 2-D convolutions; weight ``(M, out, in, k, k)``.

    Input ``(B, G*in, H, W)``: G input groups, each shared by M/G consecutive models
    (G = 1: one input for all; G = M: one per model); output ``(B, M*out, H', W')``.
    """

    def __init__(self, num_models: int, in_ch: int, out_ch: int, kernel_size: int,
                 stride: int = 1, padding: int | None = None):
        super().__init__()
        self.num_models, self.in_ch, self.out_ch = num_models, in_ch, out_ch
        self.kernel_size, self.stride = kernel_size, stride
        self.padding = kernel_size // 2 if padding is None else padding
        self.weight = nn.Parameter(torch.empty(num_models, out_ch, in_ch, kernel_size, kernel_size))

    def init_single(self, gen: torch.Generator, init: str = "kaiming_normal") -> None:
        """``kaiming_normal``: He normal, fan_out, ReLU gain. ``torch_default``: what
        ``nn.Conv2d`` does (kaiming_uniform with a = sqrt(5)), as the reference code."""
        w = torch.empty(self.weight.shape[1:])
        if init == "kaiming_normal":
            nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu", generator=gen)
        elif init == "torch_default":
            nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=gen)
        else:
            raise ValueError(f"init {init!r} is unknown; allowed: kaiming_normal, torch_default")
        _fill(self.weight, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        M = self.num_models
        w = self.weight.reshape(M * self.out_ch, self.in_ch, self.kernel_size, self.kernel_size)
        # G input groups of in_ch channels, each shared by M/G consecutive models (G = 1: one
        # input for all; G = M: one per model)
        groups, rest = divmod(x.shape[1], self.in_ch)
        if rest or groups < 1 or M % groups:
            raise ValueError(f"StackedConv2d expects G*{self.in_ch} input channels with G dividing "
                             f"M={M}, got {x.shape[1]}")
        return F.conv2d(x, w, None, self.stride, self.padding, 1, groups)

    def extra_repr(self) -> str:
        return (f"M={self.num_models}, {self.in_ch}, {self.out_ch}, k={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")


class StackedBatchNorm2d(nn.Module):
    """Per-model BatchNorm over ``(B, M*C, H, W)``; params and buffers ``(M, C)``.

    BatchNorm over M*C channels is exactly per-model BN; the running statistics are
    updated in place through flat views of the ``(M, C)`` buffers (keep them
    contiguous). Fixed momentum, no ``num_batches_tracked``.
    """

    def __init__(self, num_models: int, num_features: int,
                 momentum: float = BN_MOMENTUM, eps: float = BN_EPS):
        super().__init__()
        self.num_models, self.num_features = num_models, num_features
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(num_models, num_features))
        self.bias = nn.Parameter(torch.zeros(num_models, num_features))
        self.register_buffer("running_mean", torch.zeros(num_models, num_features))
        self.register_buffer("running_var", torch.ones(num_models, num_features))

    def init_single(self, gen: torch.Generator, init: str = "kaiming_normal") -> None:
        with torch.no_grad():
            self.weight.fill_(1.0)
            self.bias.zero_()
            self.running_mean.zero_()
            self.running_var.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # .view (not reshape): the in-place running-stat update must land in the buffers
        return F.batch_norm(x, self.running_mean.view(-1), self.running_var.view(-1),
                            self.weight.reshape(-1), self.bias.reshape(-1),
                            self.training, self.momentum, self.eps)

    def extra_repr(self) -> str:
        return f"M={self.num_models}, {self.num_features}, momentum={self.momentum}, eps={self.eps}"


class StackedLinear(nn.Module):
    """M independent linear maps; weight ``(M, out, in)``, bias ``(M, out)``.

    Input ``(B, in)`` (shared), ``(M, B, in)`` (per model) or ``(G, B, in)`` (G groups, each
    shared by M/G consecutive models); output ``(M, B, out)``.
    """

    def __init__(self, num_models: int, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.num_models, self.in_features, self.out_features = num_models, in_features, out_features
        self.weight = nn.Parameter(torch.empty(num_models, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(num_models, out_features)) if bias else None

    def init_single(self, gen: torch.Generator, init: str = "kaiming_normal") -> None:
        # nn.Linear's default under either init: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias
        bound = 1.0 / math.sqrt(self.in_features)
        w = torch.empty(self.weight.shape[1:]).uniform_(-bound, bound, generator=gen)
        _fill(self.weight, w)
        if self.bias is not None:
            _fill(self.bias, torch.empty(self.bias.shape[1:]).uniform_(-bound, bound, generator=gen))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        M = self.num_models
        if x.dim() == 2:
            y = torch.einsum("bi,moi->mbo", x, self.weight)
        elif x.dim() == 3 and x.shape[0] == M:
            y = torch.bmm(x, self.weight.transpose(1, 2))
        elif x.dim() == 3 and x.shape[0] >= 1 and M % x.shape[0] == 0:   # G groups of M/G models
            g = x.shape[0]
            w = self.weight.reshape(g, M // g * self.out_features, self.in_features)
            y = torch.bmm(x, w.transpose(1, 2))                            # (G, B, M/G*out)
            # (M, B, out) in one memory layout whatever G: for G = 1 the reshape alone would be a view
            # of layout (B, M, out), and the batch sums of the backward pass (the bias gradient) run in
            # another order over another layout: a seed alone would not compute what it computes stacked
            y = y.reshape(g, x.shape[1], M // g, self.out_features).transpose(1, 2).contiguous()
            y = y.view(M, x.shape[1], self.out_features)
        else:
            raise ValueError(f"StackedLinear expects (B, {self.in_features}) or (G, B, {self.in_features}) "
                             f"with G dividing M={M}, got {tuple(x.shape)}")
        if self.bias is not None:
            y = y + self.bias.unsqueeze(1).to(y.dtype)
        return y

    def extra_repr(self) -> str:
        return (f"M={self.num_models}, {self.in_features}, {self.out_features}, "
                f"bias={self.bias is not None}")


def _fill(param: torch.Tensor, single: torch.Tensor) -> None:
    """Copy one model's tensor into every slot of a stacked tensor."""
    with torch.no_grad():
        param.copy_(single.unsqueeze(0).expand_as(param))


# --------------------------------------------------------------------------- state helpers


def replicate_state(state_dict: Mapping[str, torch.Tensor], num_models: int) -> dict[str, torch.Tensor]:
    """Turn the state of a one-model stack (dim 0 of size 1) into ``num_models`` copies."""
    out = {}
    for k, v in state_dict.items():
        if v.dim() == 0 or v.shape[0] != 1:
            raise ValueError(f"replicate_state: {k!r} has shape {tuple(v.shape)}; expected model dim 1 first")
        out[k] = v.repeat(num_models, *([1] * (v.dim() - 1)))
    return out


def select_state(state_dict: Mapping[str, torch.Tensor], index: int) -> dict[str, torch.Tensor]:
    """Model ``index``'s slice of a stacked state, keeping dim 0 (size 1); cloned."""
    out = {}
    for k, v in state_dict.items():
        n = v.shape[0] if v.dim() else 0
        if not -n <= index < n:
            raise IndexError(f"select_state: index {index} out of range for {k!r} with {n} models")
        i = index % n
        out[k] = v[i:i + 1].clone()
    return out


def assign_model(module: nn.Module, index: int, state_of_one: Mapping[str, torch.Tensor]) -> None:
    """Copy one model's params/buffers (dim 0 of size 1, or no model dim) into slot ``index``."""
    with torch.no_grad():
        for k, t in (*module.named_parameters(), *module.named_buffers()):
            if k not in state_of_one:
                raise KeyError(f"assign_model: state lacks {k!r}")
            src = state_of_one[k]
            if src.dim() == t.dim():
                if src.shape[0] != 1:
                    raise ValueError(f"assign_model: {k!r} has {src.shape[0]} models, expected 1")
                src = src[0]
            t[index].copy_(src)
