"""Model zoo of *stacked* models: one module holds M independent models.

A group of cells is trained as one computation: the M models of a group see the
same input batch (common random numbers) and are evaluated together with grouped
convolutions and batched matrix products.

Conventions (the training engine relies on them):

* Every parameter and every buffer has the model dimension M first:

  ======================  ======================================
  conv weight             ``(M, out, in, k, k)``  (no bias)
  BatchNorm weight/bias   ``(M, C)``
  BatchNorm running stats ``(M, C)`` (no ``num_batches_tracked``: fixed momentum)
  linear weight           ``(M, out, in)``  (nn.Linear order per model)
  linear bias             ``(M, out)``
  ======================  ======================================

  so ``tensor[m]`` is model m, and a single model's state replicates to M copies
  with ``repeat`` along dim 0 (:func:`replicate_state`).
* ``forward(x)`` takes one shared batch ``x`` of shape ``(B, *input_shape)``, or G
  batches ``(G, B, *input_shape)`` each shared by M/G consecutive models (the seeds of a
  setting, each with its own batches), and returns logits ``(M, B, K)``. Inside, image features are laid out
  ``(B, M*C, H, W)`` (model-major channels); the first conv maps the shared input
  with the weight viewed as ``(M*out, in, k, k)``, later convs use ``groups=M``.
  The first layer also accepts per-model inputs ``(B, M*C, H, W)`` / ``(M, B, D)``.
* :func:`build_model` initialises one model from ``torch.Generator().manual_seed(seed)``
  on the CPU and copies it into all M slots: the M replicas are identical, and
  identical to ``build_model(..., num_models=1, seed=seed)``.

``model.to(memory_format=torch.channels_last)`` is accepted and only moves
device/dtype (conv weights are 5-D); feed channels_last *inputs* instead: the
grouped convolutions follow the input's memory format.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import BN_MOMENTUM, StackedBatchNorm2d, StackedConv2d, StackedLinear

__all__ = ["MODELS", "StackedModel", "build_model", "init_model_", "count_flops_per_sample", "params_per_model"]

MODELS = ("mlp", "cnn", "resnet18", "resnet34", "fastnet")



def _per_model(x: torch.Tensor, num_models: int) -> torch.Tensor:
    """Pooled features ``(B, M*C)`` -> ``(M, B, C)``."""
    B = x.shape[0]
    return x.reshape(B, num_models, -1).transpose(0, 1)


def _maybe_pool(size: int) -> tuple[nn.Module, int]:
    """2x2 max-pool when the spatial size allows it, else identity."""
    if size >= 2:
        return nn.MaxPool2d(2), size // 2
    return nn.Identity(), size


# --------------------------------------------------------------------------- models


class StackedModel(nn.Module):
    """Base class: remembers how it was built; forward returns ``(M, B, K)``."""

    name = "?"

    def __init__(self, num_models: int, input_shape: tuple[int, ...], num_classes: int, **model_args):
        super().__init__()
        self.num_models = num_models
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.model_args = dict(model_args)

    def _vectors(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, *input_shape)`` -> ``(B, D)`` (shared); ``(G, B, *input_shape)`` -> ``(G, B, D)``."""
        lead = x.dim() - len(self.input_shape)
        return x.reshape(x.shape[0], -1) if lead == 1 else x.reshape(x.shape[0], x.shape[1], -1)

    def _images(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` (shared) or ``(G, B, C, H, W)`` (G input groups, each shared by M/G
        consecutive models) -> the first conv's layout ``(B, G*C, H, W)``, in the memory
        format ``to(memory_format=...)`` asked for."""
        if x.dim() == 5:
            x = x[0] if x.shape[0] == 1 else x.transpose(0, 1).reshape(x.shape[1], -1, *x.shape[3:])
        return x.contiguous(memory_format=self.memory_format)

    memory_format = torch.contiguous_format

    def to(self, *args, **kwargs):  # noqa: D401 - see module docstring
        """Like nn.Module.to; ``memory_format`` is not applied to the (5-D) conv weights but to
        the image inputs of ``forward``."""
        if "memory_format" in kwargs:
            self.memory_format = kwargs.pop("memory_format")
        if not args and not kwargs:
            return self
        return super().to(*args, **kwargs)


class MLP(StackedModel):
    """Fully connected ReLU layers of widths ``hidden``; for image inputs, ``pool`` > 1 first
    averages each ``pool`` x ``pool`` block of pixels (MNIST at pool 2: 14 x 14 inputs)."""

    name = "mlp"

    def __init__(self, num_models, input_shape, num_classes, hidden: Sequence[int] = (256, 256), pool: int = 1):
        super().__init__(num_models, input_shape, num_classes, hidden=list(hidden), **({"pool": pool} if pool != 1
                                                                                        else {}))
        self.pool = int(pool)
        if self.pool < 1 or (self.pool > 1 and len(input_shape) != 3):
            raise ValueError(f"mlp pool {pool}: an integer >= 1, and > 1 only for image inputs (C, H, W)")
        shape = input_shape if self.pool == 1 else (input_shape[0], input_shape[1] // self.pool,
                                                     input_shape[2] // self.pool)
        dims = [math.prod(shape), *[int(h) for h in hidden]]
        self.hidden = nn.ModuleList(StackedLinear(num_models, a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.head = StackedLinear(num_models, dims[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool > 1:
            lead = x.shape[:x.dim() - 3]
            x = F.avg_pool2d(x.reshape(-1, *x.shape[-3:]), self.pool)
            x = x.reshape(*lead, *x.shape[-3:])
        h = self._vectors(x)           # (B, D) shared, or (G, B, D) per input group
        for layer in self.hidden:
            h = F.relu(layer(h))       # (M, B, H)
        return self.head(h)


class ConvBNAct(nn.Sequential):
    def __init__(self, M, cin, cout, k=3, stride=1, act: type[nn.Module] = nn.ReLU, momentum=BN_MOMENTUM):
        super().__init__(StackedConv2d(M, cin, cout, k, stride), StackedBatchNorm2d(M, cout, momentum), act())


class SmallCNN(StackedModel):
    """conv-BN-ReLU x2, pool, conv-BN-ReLU x2, pool, conv-BN-ReLU, global avg pool, linear.

    Widths ``(32, 64, 128) * width``; pools are skipped where the map is 1 pixel.
    """

    name = "cnn"

    def __init__(self, num_models, input_shape, num_classes, width: float = 1.0):
        super().__init__(num_models, input_shape, num_classes, width=width)
        M, (C, H, W) = num_models, input_shape
        w1, w2, w3 = (_scaled(b, width) for b in (32, 64, 128))
        size = min(H, W)
        pool1, size = _maybe_pool(size)
        pool2, size = _maybe_pool(size)
        self.features = nn.Sequential(
            ConvBNAct(M, C, w1), ConvBNAct(M, w1, w1), pool1,
            ConvBNAct(M, w1, w2), ConvBNAct(M, w2, w2), pool2,
            ConvBNAct(M, w2, w3),
        )
        self.head = StackedLinear(num_models, w3, num_classes)

    def forward(self, x):
        h = self.features(self._images(x)).mean(dim=(2, 3))
        return self.head(_per_model(h, self.num_models))


class BasicBlock(nn.Module):
    def __init__(self, M, cin, cout, stride):
        super().__init__()
        self.conv1 = StackedConv2d(M, cin, cout, 3, stride)
        self.bn1 = StackedBatchNorm2d(M, cout)
        self.conv2 = StackedConv2d(M, cout, cout, 3, 1)
        self.bn2 = StackedBatchNorm2d(M, cout)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(StackedConv2d(M, cin, cout, 1, stride, 0), StackedBatchNorm2d(M, cout))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(StackedModel):
    """CIFAR ResNet: 3x3 stride-1 stem, no max-pool, BasicBlock stages, GAP, linear."""

    def __init__(self, num_models, input_shape, num_classes, blocks: Sequence[int], width: float = 1.0):
        super().__init__(num_models, input_shape, num_classes, width=width)
        M, C = num_models, input_shape[0]
        widths = [_scaled(b, width) for b in (64, 128, 256, 512)]
        self.stem = ConvBNAct(M, C, widths[0])
        layers, cin = [], widths[0]
        for i, (n, cout) in enumerate(zip(blocks, widths)):
            for j in range(n):
                layers.append(BasicBlock(M, cin, cout, 2 if (i > 0 and j == 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.head = StackedLinear(M, cin, num_classes)

    def forward(self, x):
        h = self.layers(self.stem(self._images(x))).mean(dim=(2, 3))
        return self.head(_per_model(h, self.num_models))


class ResNet18(ResNet):
    name = "resnet18"

    def __init__(self, num_models, input_shape, num_classes, width: float = 1.0):
        super().__init__(num_models, input_shape, num_classes, (2, 2, 2, 2), width)


class ResNet34(ResNet):
    name = "resnet34"

    def __init__(self, num_models, input_shape, num_classes, width: float = 1.0):
        super().__init__(num_models, input_shape, num_classes, (3, 4, 6, 3), width)


class FastNet(StackedModel):
    """A small fast CIFAR net in the spirit of airbench.

    stem conv-BN-GELU (32 ch), then three blocks
    ``conv -> maxpool -> BN -> GELU -> conv -> BN -> GELU`` of widths
    ``(64, 256, 256) * width``, global max pool, bias-free linear whose output is
    multiplied by ``logit_scale`` (1/9 as in airbench). No residuals.
    """

    name = "fastnet"

    def __init__(self, num_models, input_shape, num_classes, width: float = 1.0,
                 logit_scale: float = 1.0 / 9, bn_momentum: float = BN_MOMENTUM):
        super().__init__(num_models, input_shape, num_classes, width=width,
                         logit_scale=logit_scale, bn_momentum=bn_momentum)
        M, (C, H, W) = num_models, input_shape
        stem = _scaled(32, width)
        widths = [_scaled(b, width) for b in (64, 256, 256)]
        self.logit_scale = float(logit_scale)
        mods: list[nn.Module] = [ConvBNAct(M, C, stem, act=nn.GELU, momentum=bn_momentum)]
        size, cin = min(H, W), stem
        for cout in widths:
            pool, size = _maybe_pool(size)
            mods += [StackedConv2d(M, cin, cout, 3), pool, StackedBatchNorm2d(M, cout, bn_momentum), nn.GELU(),
                     ConvBNAct(M, cout, cout, act=nn.GELU, momentum=bn_momentum)]
            cin = cout
        self.features = nn.Sequential(*mods)
        self.head = StackedLinear(M, cin, num_classes, bias=False)

    def forward(self, x):
        h = self.features(self._images(x)).amax(dim=(2, 3))
        return self.head(_per_model(h, self.num_models)) * self.logit_scale


def _scaled(base: int, width: float) -> int:
    return max(1, int(round(base * width)))


_REGISTRY: dict[str, type[StackedModel]] = {
    "mlp": MLP, "cnn": SmallCNN, "resnet18": ResNet18, "resnet34": ResNet34, "fastnet": FastNet,
}
assert tuple(_REGISTRY) == MODELS


# --------------------------------------------------------------------------- building


def build_model(name: str, num_models: int, input_shape: Sequence[int], num_classes: int,
                seed: int, init: str = "kaiming_normal", **model_args) -> StackedModel:
    """Build a stack of ``num_models`` identical models of architecture ``name`` (on CPU).

    ``input_shape`` is one sample's shape: ``(D,)`` for vectors, ``(C, H, W)`` for
    images. ``model_args``: ``mlp``: ``hidden=[256, 256]``; ``cnn``/``resnet*``:
    ``width`` (channel multiplier, default 1.0); ``fastnet``: ``width``,
    ``logit_scale``, ``bn_momentum``. ``init``: ``kaiming_normal`` (He normal, fan_out) or
    ``torch_default`` (PyTorch's own, the reference code's) for the convolutions.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(MODELS)}")
    if int(num_models) < 1:
        raise ValueError(f"num_models must be >= 1, got {num_models}")
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"model {name!r}: invalid input_shape {shape}")
    if name != "mlp" and len(shape) != 3:
        raise ValueError(f"model {name!r} needs image input_shape (C, H, W), got {shape}; "
                         f"use 'mlp' for vectors")
    try:
        model = _REGISTRY[name](int(num_models), shape, int(num_classes), **model_args)
    except TypeError as e:
        raise ValueError(f"model {name!r}: bad model_args {sorted(model_args)}: {e}") from None
    init_model_(model, seed, init)
    return model


def init_model_(model: nn.Module, seed: int, init: str = "kaiming_normal") -> nn.Module:
    """(Re)initialise every slot of a stacked model with the same single model drawn from ``seed``.

    Draws happen on the CPU in module registration order, so the result does not
    depend on M or on the device the model lives on.
    """
    gen = torch.Generator().manual_seed(int(seed))
    for mod in model.modules():
        if isinstance(mod, (StackedConv2d, StackedBatchNorm2d, StackedLinear)):
            mod.init_single(gen, init)
    return model


def params_per_model(model: StackedModel) -> int:
    """Number of trainable parameters of one model of the stack."""
    return sum(p.numel() for p in model.parameters()) // model.num_models


def count_flops_per_sample(model: StackedModel, input_shape: Sequence[int]) -> int:
    """Approximate forward multiply-adds (MACs) per sample per model (conv + linear only).

    Multiply by 2 for FLOPs. Traced with meta tensors: no compute, no state change.
    """
    macs = [0]

    def conv_hook(mod, inp, out):
        macs[0] += out.shape[1] // mod.num_models * out.shape[2] * out.shape[3] * mod.in_ch * mod.kernel_size ** 2

    def linear_hook(mod, inp, out):
        macs[0] += mod.in_features * mod.out_features

    handles = []
    for mod in model.modules():
        if isinstance(mod, StackedConv2d):
            handles.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, StackedLinear):
            handles.append(mod.register_forward_hook(linear_hook))
    state = {k: torch.empty_like(v, device="meta")
             for k, v in (*model.named_parameters(), *model.named_buffers())}
    modes = [(m, m.training) for m in model.modules()]
    dtype = next(iter(state.values())).dtype if state else torch.float32
    try:
        model.eval()
        x = torch.empty((1, *input_shape), device="meta", dtype=dtype)
        with torch.no_grad():
            torch.func.functional_call(model, state, (x,))
    finally:
        for m, mode in modes:
            m.training = mode
        for h in handles:
            h.remove()
    return int(macs[0])


def memory_per_model(name: str, input_shape: Sequence[int], num_classes: int, batch: int, activation_bytes: int,
                     **model_args) -> int:
    """Estimated device bytes one model of a stack needs to train: parameters, gradients and
    momentum in float32, plus every module's output for a batch (``activation_bytes`` per
    element: 2 under bf16 autocast, 4 in fp32), counted twice (kept for the backward pass,
    and its gradient). Traced on the meta device: nothing is allocated."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(MODELS)}")
    with torch.device("meta"):
        model = _REGISTRY[name](1, tuple(int(s) for s in input_shape), int(num_classes), **model_args)
        x = torch.empty((1, *input_shape))
    elements = [0]

    def hook(mod, inp, out):
        if isinstance(out, torch.Tensor) and not list(mod.children()):
            elements[0] += out.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    model.eval()   # the same outputs; BatchNorm does not ask for a batch of more than one
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    params = sum(p.numel() for p in model.parameters())
    return int(params * 4 * 3 + elements[0] * batch * activation_bytes * 2)
