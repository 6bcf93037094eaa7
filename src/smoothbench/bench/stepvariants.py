"""Ways to take one training step of M models, measured side by side by ``smoothbench bench
step`` so that the fastest one that is also repeatable bit for bit can be chosen.

A step is what the engine does per batch: forward (bf16 autocast or fp32), the GLS loss with
one smooth rate per model, backward, SGD. The variants differ in how the M models are run:

* ``stacked``: one M-model stack (grouped convolutions), in the engine's memory layout
  (channels-last on CUDA, NCHW on the CPU); ``stacked-nchw`` / ``stacked-nhwc`` force a layout;
* ``loop``: M separate one-model stacks, stepped one after another;
* ``vmap``: ``torch.func``: one ordinary one-model module called through ``functional_call``
  on M parameter sets stacked by ``stack_module_state``, vectorised by ``vmap``;
* ``graphs``: the stacked step captured once as a CUDA graph and replayed (CUDA only).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch

from ..engine import models
from ..engine.models.base import StackedModel
from ..methods.gls import gls_loss

VARIANTS = ("stacked", "loop", "stacked-nchw", "stacked-nhwc", "vmap", "graphs")


class NotOnThisDevice(Exception):
    """The variant does not exist on this device (CUDA graphs on the CPU)."""


@dataclass
class Step:
    """``step()`` takes one training step; ``tensors()`` is the state it trains (parameters
    and BatchNorm statistics), for the repeatability check."""

    run: Callable[[], None]
    tensors: Callable[[], list[torch.Tensor]]
    keep: tuple = ()          # what must outlive the step (a CUDA graph's static inputs)

    def __call__(self) -> None:
        self.run()


def _layout(variant: str, dev: torch.device) -> torch.memory_format:
    if variant == "stacked-nchw":
        return torch.contiguous_format
    if variant == "stacked-nhwc" or dev.type == "cuda":
        return torch.channels_last
    return torch.contiguous_format


def build_step(variant: str, name: str, num_models: int, model_args: dict, x: torch.Tensor, y: torch.Tensor,
               rates: torch.Tensor, dev: torch.device, compile_: bool, amp_dtype: torch.dtype | None,
               make_optimizer: Callable, shape: tuple[int, ...], classes: int) -> Step:
    """One variant's training step of ``num_models`` models of ``name`` on the fixed batch
    (x, y), every model initialised alike (seed 0). ``amp_dtype`` None: fp32."""
    if variant not in VARIANTS:
        raise ValueError(f"step variant {variant!r}; allowed: {', '.join(VARIANTS)}")
    if variant == "graphs" and dev.type != "cuda":
        raise NotOnThisDevice("n/a on CPU")
    x = x.contiguous(memory_format=_layout(variant, dev))

    def build(m: int) -> StackedModel:
        return models.build_model(name, m, shape, classes, seed=0, **model_args).to(dev)

    def amp(cache: bool = True):
        return torch.autocast(dev.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None,
                              cache_enabled=cache)

    def sgd_step(opt, forward, r) -> None:
        opt.zero_grad(set_to_none=True)
        with amp():
            logits = forward()
        gls_loss(logits, y, r, check=False).sum().backward()
        opt.step()

    if variant == "loop":
        nets = [build(1) for _ in range(num_models)]
        opts = [make_optimizer(n.parameters()) for n in nets]
        fwds = [torch.compile(n) if compile_ else n for n in nets]

        def run() -> None:
            for i, (fwd, opt) in enumerate(zip(fwds, opts)):
                sgd_step(opt, lambda: fwd(x), rates[i:i + 1])

        return Step(run, lambda: [t for n in nets for t in _state(n)])

    if variant == "vmap":
        from torch.func import functional_call, stack_module_state, vmap

        singles = [build(1) for _ in range(num_models)]
        params, buffers = stack_module_state(singles)          # (M, 1, ...) leaves; BN stats (M, 1, C)
        base = copy.deepcopy(singles[0]).to("meta")
        del singles

        def one(p, b, xx):
            return functional_call(base, (p, b), (xx,))[0]      # one model: (B, K)

        batched = vmap(one, in_dims=(0, 0, None))
        fwd = torch.compile(batched) if compile_ else batched
        opt = make_optimizer(list(params.values()))
        return Step(lambda: sgd_step(opt, lambda: fwd(params, buffers, x), rates),
                    lambda: [*params.values(), *buffers.values()])

    net = build(num_models)
    opt = make_optimizer(net.parameters())
    if variant != "graphs":
        fwd = torch.compile(net) if compile_ else net
        return Step(lambda: sgd_step(opt, lambda: fwd(x), rates), lambda: _state(net))
    return _graphed(net, opt, x, y, rates, lambda: amp(cache=False))


def _state(net: torch.nn.Module) -> list[torch.Tensor]:
    return [*net.parameters(), *net.buffers()]


def _graphed(net, opt, x, y, rates, amp) -> Step:
    """Capture forward, loss, backward and the SGD update as one CUDA graph (after three
    eager steps on a side stream, which also create the momentum buffers); a step replays it
    on the same static batch. Autocast's weight cache is off, as graph capture requires."""

    def eager(capturing: bool = False) -> None:
        if not capturing:
            opt.zero_grad(set_to_none=True)
        with amp():
            logits = net(x)
        gls_loss(logits, y, rates, check=False).sum().backward()
        opt.step()

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            eager()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)         # the captured backward allocates the gradients it writes
    with torch.cuda.graph(graph):
        eager(capturing=True)
    return Step(graph.replay, lambda: _state(net), keep=(x, y, rates))


PRECISIONS = ("auto", "bf16", "fp32", "both")


def amp_dtypes(precision: str, dev: torch.device) -> list[torch.dtype | None]:
    """The autocast dtypes of ``--precision`` (None: fp32); ``auto`` is the engine's choice:
    bf16 autocast on CUDA, fp32 on the CPU."""
    if precision not in PRECISIONS:
        raise ValueError(f"bench step: --precision {precision!r}; allowed: {', '.join(PRECISIONS)}")
    if precision == "auto":
        return [torch.bfloat16 if dev.type == "cuda" else None]
    return {"bf16": [torch.bfloat16], "fp32": [None], "both": [torch.bfloat16, None]}[precision]


def repeatable(build: Callable[[], Step], sync: Callable[[], None]) -> bool:
    """Two fresh builds, two steps each on the same batch: is the trained state bit-identical?
    ``sync`` waits for the device (and frees what it can) after each."""
    snapshots = []
    for _ in range(2):
        step = build()
        step()
        step()
        sync()
        snapshots.append([t.detach().cpu().clone() for t in step.tensors()])
        step = None
        sync()
    return all(torch.equal(a, b) for a, b in zip(*snapshots))
