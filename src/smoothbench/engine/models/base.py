"""What every stacked model shares: one module holds M independent models.

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
* ``registry.build_model`` initialises one model from ``torch.Generator().manual_seed(seed)``
  on the CPU (``init_model_``) and copies it into all M slots: the M replicas are identical,
  and identical to ``build_model(..., num_models=1, seed=seed)``.

``model.to(memory_format=torch.channels_last)`` is accepted and only moves
device/dtype (conv weights are 5-D); feed channels_last *inputs* instead: the
grouped convolutions follow the input's memory format.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..layers import BN_MOMENTUM, StackedBatchNorm2d, StackedConv2d, StackedLinear


class StackedModel(nn.Module):
    """Base class: remembers how it was built; forward returns ``(M, B, K)``."""

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


class ConvBNAct(nn.Sequential):
    def __init__(self, M, cin, cout, k=3, stride=1, act: type[nn.Module] = nn.ReLU, momentum=BN_MOMENTUM):
        super().__init__(StackedConv2d(M, cin, cout, k, stride), StackedBatchNorm2d(M, cout, momentum), act())


def per_model(x: torch.Tensor, num_models: int) -> torch.Tensor:
    """Pooled features ``(B, M*C)`` -> ``(M, B, C)``."""
    B = x.shape[0]
    return x.reshape(B, num_models, -1).transpose(0, 1)


def maybe_pool(size: int) -> tuple[nn.Module, int]:
    """2x2 max-pool when the spatial size allows it, else identity."""
    if size >= 2:
        return nn.MaxPool2d(2), size // 2
    return nn.Identity(), size


def scaled(base: int, width: float) -> int:
    """A layer's channels at a width multiplier: ``base * width`` rounded, at least 1."""
    return max(1, int(round(base * width)))


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
