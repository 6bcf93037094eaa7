"""The loss of a whole stack of models in one call per step, whatever methods it mixes.

A stack holds S seeds x C cells, seed-major: model ``s * C + c`` is cell c of seed s, and
its logits are viewed as ``(S, C, B, K)``. The cells are in registry order, so the cells of
methods that share a loss function (CE, LS, NLS and flip all use GLS; BCE, BCE-LS, BCE-NLS
one BCE) sit side by side: each such run is ONE call of that function on a view of the
stack, with one parameter set per model. Everything the step needs is prepared once
(parameter tensors, the label transforms' keys, T or its inverse, per-sample state):
a step does no host-device synchronisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..core.vocabulary import Cell
from .registry import Batch, Method, full_precision, get


@dataclass
class _Run:
    """Cells [start, stop) of a block that share a label transform (None: the labels as given)."""

    start: int
    stop: int
    method: Method
    values: torch.Tensor | None   # (1, n, P) the method's own values (the transform's parameters)
    keys: torch.Tensor | None     # (S, n) draw keys


@dataclass
class _Block:
    """Cells [start, stop) computed by one call of one loss function."""

    start: int
    stop: int
    method: Method                # the first method of the block (its loss, state and T needs)
    args: torch.Tensor            # (1, n, A) the loss function's arguments per model, float64
    keys: torch.Tensor            # (S, n) draw keys
    runs: list[_Run]
    transition: torch.Tensor | None = None   # (S, n, K, K) what the loss gets of T
    state: torch.Tensor | None = None        # (S, n, N, K)


class StackLoss:
    """Per-model mean losses ``(S, C)`` of stacked logits ``(S, C, B, K)``.

    ``cells``: the C cells (registry order); ``draw_keys``: (S, C) int64 keys of the models'
    random draws; ``transitions``: (S, K, K) the noise's true T of each seed (needed by
    methods with ``transition``); ``num_train``: N, the training set's size (per-sample
    state is (N, K) per model).

    A cell whose method refuses a seed's T (``transition`` raises ValueError: backward
    correction with a singular T) fails alone: ``failed`` maps its (seed, cell) to the reason,
    its slot computes with the identity and its loss is held at zero, so it does not train;
    the stack's other models are untouched.
    """

    def __init__(self, cells: Sequence[Cell], num_seeds: int, num_classes: int, device: torch.device,
                 draw_keys: torch.Tensor, transitions: torch.Tensor | None = None, num_train: int | None = None):
        self.cells, self.num_seeds, self.num_classes = list(cells), int(num_seeds), int(num_classes)
        methods = [get(c.method) for c in self.cells]
        if tuple(draw_keys.shape) != (self.num_seeds, len(self.cells)):
            raise ValueError(f"draw_keys has shape {tuple(draw_keys.shape)}; expected {(self.num_seeds, len(cells))}")
        self.blocks: list[_Block] = []
        self.failed: dict[tuple[int, int], str] = {}
        start = 0
        while start < len(self.cells):
            stop = start + 1
            args = [methods[start].args(self.cells[start].values)]
            while stop < len(self.cells) and methods[stop].loss is methods[start].loss and \
                    len(methods[stop].args(self.cells[stop].values)) == len(args[0]):
                args.append(methods[stop].args(self.cells[stop].values))
                stop += 1
            self.blocks.append(self._block(start, stop, methods, args, device, draw_keys, transitions, num_train))
            start = stop
        self.live: torch.Tensor | None = None      # (S, C): False where a cell failed
        if self.failed:
            self.live = torch.ones(self.num_seeds, len(self.cells), dtype=torch.bool)
            for s, c in self.failed:
                self.live[s, c] = False
            self.live = self.live.to(device)

    def _block(self, start, stop, methods, args, device, draw_keys, transitions, num_train) -> _Block:
        m = methods[start]
        keys = draw_keys[:, start:stop].to(device)
        runs, i = [], start
        while i < stop:                       # runs of the same transform inside the block
            j = i + 1
            while j < stop and methods[j].transform is methods[i].transform:
                j += 1
            values = torch.tensor([self.cells[c].values for c in range(i, j)], dtype=torch.float64, device=device)
            runs.append(_Run(i - start, j - start, methods[i], values.unsqueeze(0) if methods[i].transform else None,
                             draw_keys[:, i:j].to(device)))
            i = j
        blk = _Block(start, stop, m, torch.tensor(args, dtype=torch.float64, device=device).unsqueeze(0), keys, runs)
        n = stop - start
        if m.transition is not None:
            if transitions is None:
                raise ValueError(f"{m.name} needs the noise's transition matrix, and none was given")
            given = []
            for s, seed_t in enumerate(transitions.to(torch.float64).cpu().numpy()):
                try:
                    given.append(np.asarray(m.transition(seed_t), dtype=np.float64))
                except ValueError as exc:          # this seed's T does not suit the method: its cells fail
                    self.failed.update({(s, c): str(exc) for c in range(start, stop)})
                    given.append(np.eye(self.num_classes))
            t = torch.from_numpy(np.stack(given)).to(device)                       # (S, K, K)
            blk.transition = t.unsqueeze(1).expand(self.num_seeds, n, *t.shape[1:])
        if m.state:
            if num_train is None:
                raise ValueError(f"{m.name} keeps per-sample state and needs the training set's size")
            blk.state = torch.zeros(self.num_seeds, n, int(num_train), self.num_classes, device=device)
        return blk

    # -- per step

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, step: int,
                 index: torch.Tensor | None = None) -> torch.Tensor:
        """``logits`` (S, C, B, K), ``labels`` (S, B) the seeds' noisy labels, ``index`` (S, B)
        the samples' positions in the training set, ``step`` the global step (the draws'
        counter). Returns the per-model mean loss (S, C)."""
        x = full_precision(logits)
        s, _, b, _ = x.shape
        # one split into the blocks' views: its backward is one concatenation of their gradients
        views = x.split([blk.stop - blk.start for blk in self.blocks], dim=1)
        out = []
        for blk, xb in zip(self.blocks, views):
            n = blk.stop - blk.start
            given = labels.unsqueeze(1)
            parts = []
            for run in blk.runs:
                y = given.expand(s, run.stop - run.start, b)
                if run.method.transform is not None:
                    y = run.method.transform(y, run.values, Batch(x, y, self.num_classes, draw_key=run.keys, step=step))
                parts.append(y)
            y = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
            batch = Batch(xb, y, self.num_classes, transition=blk.transition,
                          index=None if index is None else index.unsqueeze(1).expand(s, n, b), state=blk.state,
                          draw_key=blk.keys, step=step)
            out.append(blk.method.loss(batch, blk.args).mean(-1))
        loss = out[0] if len(out) == 1 else torch.cat(out, dim=1)
        return loss if self.live is None else torch.where(self.live, loss, torch.zeros_like(loss))

    # -- per-sample state, for checkpoints

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"{blk.start}": blk.state for blk in self.blocks if blk.state is not None}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for blk in self.blocks:
            if blk.state is not None:
                blk.state.copy_(state[f"{blk.start}"])
