"""The loss of a whole stack of models in one call per step, whatever methods it mixes.

A stack holds S seeds x C cells, seed-major; a cell of a method with k models per cell
(``Method.models``: Co-teaching, JoCoR) holds k consecutive models of its seed. The models
of a seed are its **slots**: cell c's models are slots ``offsets[c] .. offsets[c] + k - 1``,
and the logits are viewed as ``(S, slots, B, K)``. The cells are in registry order, so the
cells of methods that share a loss function (CE, LS, NLS and flip all use GLS; BCE, BCE-LS,
BCE-NLS one BCE) sit side by side: each such run is ONE call of that function on a view of
the stack, with one parameter set per cell. Everything the step needs is prepared once
(parameter tensors, the label transforms' keys, the T or noise rate each cell is given,
per-sample state): a step does no host-device synchronisation.
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
    """Cells [start, stop) computed by one call of one loss function; their slots [first, last)."""

    start: int
    stop: int
    first: int
    last: int
    method: Method                # the first method of the block (its loss, state and model count)
    args: torch.Tensor            # (1, n, A) the loss function's arguments per cell, float64
    keys: torch.Tensor            # (S, n) draw keys
    runs: list[_Run]
    transition: torch.Tensor | None = None   # (S, n, K, K) what the loss gets of T
    noise_rate: torch.Tensor | None = None   # (S, n) the noise rate each cell is given
    state: torch.Tensor | None = None        # (S, n, N, K)


def quantile_of(cell: Cell) -> float:
    """The anchor-point quantile of a cell of an estimated-noise method."""
    m = get(cell.method)
    return float(cell.values[[p.name for p in m.params].index("quantile")])


class StackLoss:
    """Per-model mean losses ``(S, slots)`` of stacked logits ``(S, slots, B, K)``.

    ``cells``: the C cells (registry order); ``draw_keys``: (S, C) int64 keys of the cells'
    random draws; ``transitions``: (S, K, K) the noise's true T of each seed and
    ``noise_rates`` (S,) its true rate (for "oracle" methods); ``estimates``: anchor-point
    quantile -> (T estimated for each seed (S, K, K), the noise rate it implies (S,)) (for
    "estimated" methods); ``num_train``: N, the training set's size (per-sample state is (N, K)
    per model).

    A cell whose method refuses a seed's true T (``transition`` raises ValueError: backward
    correction with a singular T) fails alone: ``failed`` maps its (seed, cell) to the reason,
    its slots compute with the identity and their loss is held at zero, so they do not train;
    the stack's other models are untouched.
    """

    def __init__(self, cells: Sequence[Cell], num_seeds: int, num_classes: int, device: torch.device,
                 draw_keys: torch.Tensor, transitions: torch.Tensor | None = None, num_train: int | None = None,
                 noise_rates: torch.Tensor | None = None,
                 estimates: dict[float, tuple[torch.Tensor, torch.Tensor]] | None = None):
        self.cells, self.num_seeds, self.num_classes = list(cells), int(num_seeds), int(num_classes)
        methods = [get(c.method) for c in self.cells]
        if tuple(draw_keys.shape) != (self.num_seeds, len(self.cells)):
            raise ValueError(f"draw_keys has shape {tuple(draw_keys.shape)}; expected {(self.num_seeds, len(cells))}")
        self.widths = [m.models for m in methods]
        self.offsets = [sum(self.widths[:c]) for c in range(len(self.cells))]
        self.slots = sum(self.widths)
        self.peer = any(m.peer for m in methods)
        self.failed: dict[tuple[int, int], str] = {}
        given = {"transitions": transitions, "noise_rates": noise_rates, "estimates": estimates or {}}
        self.blocks: list[_Block] = []
        start = 0
        while start < len(self.cells):
            stop = start + 1
            args = [methods[start].args(self.cells[start].values)]
            while stop < len(self.cells) and methods[stop].loss is methods[start].loss and \
                    len(methods[stop].args(self.cells[stop].values)) == len(args[0]):
                args.append(methods[stop].args(self.cells[stop].values))
                stop += 1
            self.blocks.append(self._block(start, stop, methods, args, device, draw_keys, given, num_train))
            start = stop
        self.live: torch.Tensor | None = None      # (S, slots): False where a cell failed
        if self.failed:
            self.live = torch.ones(self.num_seeds, self.slots, dtype=torch.bool)
            for s, c in self.failed:
                self.live[s, self.offsets[c]:self.offsets[c] + self.widths[c]] = False
            self.live = self.live.to(device)

    def slot(self, cell: int, member: int = 0) -> int:
        """The slot (model of a seed) of a cell's ``member``-th model."""
        return self.offsets[cell] + member

    def _block(self, start, stop, methods, args, device, draw_keys, given, num_train) -> _Block:
        m = methods[start]
        keys = draw_keys[:, start:stop].to(device)
        runs, i = [], start
        while i < stop:                       # runs of the same transform inside the block
            j = i + 1
            while j < stop and methods[j].transform is methods[i].transform:
                j += 1
            values = torch.tensor([self.cells[c].values for c in range(i, j)], dtype=torch.float64,
                                  device=device).unsqueeze(0) if methods[i].transform else None
            runs.append(_Run(i - start, j - start, methods[i], values, draw_keys[:, i:j].to(device)))
            i = j
        last = self.offsets[stop - 1] + self.widths[stop - 1]
        blk = _Block(start, stop, self.offsets[start], last, m,
                     torch.tensor(args, dtype=torch.float64, device=device).unsqueeze(0), keys, runs)
        told = [self._told(c, methods[c], given) for c in range(start, stop)]
        if m.transition is not None:
            blk.transition = torch.stack([t for t, _ in told], dim=1).to(device)          # (S, n, K, K)
        if m.noise.endswith(" rate"):
            blk.noise_rate = torch.stack([r for _, r in told], dim=1).to(device)          # (S, n)
        if m.state:
            if num_train is None:
                raise ValueError(f"{m.name} keeps per-sample state and needs the training set's size")
            blk.state = torch.zeros(self.num_seeds, stop - start, int(num_train), self.num_classes, device=device)
        return blk

    def _told(self, c: int, m: Method, given: dict) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(what cell ``c``'s loss gets of T (S, K, K), the noise rate it is given (S,)) for its
        method; a seed whose T the method refuses marks the cell failed for that seed."""
        cell = self.cells[c]
        if not m.noise:
            return None, None
        if m.estimated:
            q = quantile_of(cell)
            if q not in given["estimates"]:
                raise ValueError(f"{cell.id} needs T estimated with quantile {q:g}, and none was given")
            t, rate = given["estimates"][q]
        else:
            t, rate = given["transitions"], given["noise_rates"]
            if (m.transition is not None and t is None) or (m.noise.endswith(" rate") and rate is None):
                raise ValueError(f"{m.name} needs the noise's true {'transition matrix' if m.transition else 'rate'}, "
                                 "and none was given")
        told_t = None
        if m.transition is not None:
            seeds = []
            for s, seed_t in enumerate(t.detach().to(torch.float64).cpu().numpy()):
                try:
                    seeds.append(np.asarray(m.transition(seed_t), dtype=np.float64))
                except ValueError as exc:          # this seed's T does not suit the method: the cell fails
                    self.failed[(s, c)] = str(exc)
                    seeds.append(np.eye(self.num_classes))
            told_t = torch.from_numpy(np.stack(seeds))
        told_rate = rate.to(torch.float64) if m.noise.endswith(" rate") else None
        return told_t, told_rate

    # -- per step

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, step: int, index: torch.Tensor | None = None,
                 epoch: int = 0, epochs: int = 1,
                 peer: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``logits`` (S, slots, B, K), ``labels`` (S, B) the seeds' noisy labels, ``index`` (S, B)
        the samples' positions in the training set, ``step`` the global step (the draws'
        counter), ``epoch`` the epochs of the phase trained so far of ``epochs``; ``peer``: the
        peer predictions (S, slots, B, K) and peer labels (S, B), where the stack has peer cells.
        Returns the per-model mean loss (S, slots)."""
        x = full_precision(logits)
        s, _, b, k = x.shape
        if self.peer and peer is None:
            raise ValueError("the stack has peer cells: give the step's peer predictions and labels")
        # one split into the blocks' views: its backward is one concatenation of their gradients
        sizes = [blk.last - blk.first for blk in self.blocks]
        views = x.split(sizes, dim=1)
        peer_views = peer[0].split(sizes, dim=1) if peer is not None else [None] * len(sizes)
        out = []
        for blk, xb, pb in zip(self.blocks, views, peer_views):
            n, width = blk.stop - blk.start, blk.method.models
            given = labels.unsqueeze(1)
            parts = []
            for run in blk.runs:
                y = given.expand(s, run.stop - run.start, b)
                if run.method.transform is not None:
                    y = run.method.transform(y, run.values, Batch(x, y, self.num_classes, draw_key=run.keys, step=step))
                parts.append(y)
            y = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
            if width > 1:
                xb = xb.view(s, n, width, b, k)
                y = y.unsqueeze(2).expand(s, n, width, b)
            batch = Batch(xb, y, self.num_classes, transition=blk.transition,
                          index=None if index is None else index.unsqueeze(1).expand(s, n, b), state=blk.state,
                          draw_key=blk.keys, step=step, noise_rate=blk.noise_rate, epoch=epoch, epochs=epochs)
            if blk.method.peer:
                batch.peer_logits = full_precision(pb)
                batch.peer_labels = peer[1].unsqueeze(1).expand(s, n, b)
            out.append(blk.method.loss(batch, blk.args).reshape(s, n * width, b).mean(-1))
        loss = out[0] if len(out) == 1 else torch.cat(out, dim=1)
        return loss if self.live is None else torch.where(self.live, loss, torch.zeros_like(loss))

    # -- per-sample state, for checkpoints

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"{blk.start}": blk.state for blk in self.blocks if blk.state is not None}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for blk in self.blocks:
            if blk.state is not None:
                blk.state.copy_(state[f"{blk.start}"])
