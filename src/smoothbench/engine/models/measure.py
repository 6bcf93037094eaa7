"""What a stacked model costs: parameters per model, multiply-adds per sample, device memory to
train one model of a stack. Traced on the meta device: nothing is computed or allocated."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..layers import StackedConv2d, StackedLinear
from . import registry
from .base import StackedModel


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
    model = registry.get(name)
    registry.check_args(name, model_args)
    with torch.device("meta"):
        model = model.builder(1, tuple(int(s) for s in input_shape), int(num_classes), **model.complete(model_args))
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
