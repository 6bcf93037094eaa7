"""One phase of a setting on one stack of models, resumable: the engine's inner loop.

A stack holds S seeds x C cells, seed-major; a cell holds as many models as its method
trains (``Method.models``: two for Co-teaching and JoCoR), so a seed has ``slots`` models
and model ``s * slots + j`` is slot j of seed s (``StackLoss.offsets`` says which slots are
which cell's). Each seed has its own noisy labels, held-out split, initialisation and batch
order; the cells of a seed share all of them (common random numbers), so within a seed they
differ only by their method. The m-th model of a cell starts from the seed's m-th
initialisation (the m-th warm-up model, where the variant has a warm-up; the warm-up then
trains as many models per seed as the widest cell has). One ``StackLoss`` call per step
computes every model's loss, whatever methods it mixes; where the stack has peer cells, a
second forward pass on the step's peer inputs (a fresh shuffle of the seed's training split,
``core.draws``) feeds them, and the other models' batch-norm statistics are kept as they were
before it. Cells that estimate the noise get T and the noise rate estimated from a CE
warm-up model (``methods.correction.anchor_transition``; the one they start from, or in a
variant without a warm-up another variant's), computed once when the run is built (a
resumed run computes the same). Every random draw comes from a key
derived from the group, the run and the cell (``core.vocabulary.derive_seed``) through
``core.draws``, at a counter that is the step: a model's results do not depend on what else
shares its stack, and a resumed run draws exactly what an uninterrupted one would. A step
has no host-device synchronisation (``tests/test_cuda.py`` checks it with
``torch.cuda.set_sync_debug_mode("error")``).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

import torch

from ..core import draws, selection
from . import models
from ..core.vocabulary import Cell, derive_seed
from .checkpoints import CheckpointDir
from .device import DeviceData, augment, evaluate, predict_proba
from ..methods import get
from ..methods.correction import anchor_transition, noise_rate_of
from ..methods.stackloss import StackLoss, quantile_of
from .protocol import OptimizerConfig, Protocol, ScheduleConfig, learning_rate
from .layers import assign_model, select_state
from .position import Position

HISTORY_KEYS = ("train_loss", "noisy_train_acc", "clean_train_acc", "val_acc", "test_acc", "test_nll", "ece")


@dataclass
class SettingContext:
    """What every run of a setting shares."""

    gids: list[str]            # group id of each seed
    protocol: Protocol
    device: torch.device
    data: DeviceData
    checkpoints: CheckpointDir
    fingerprint: str
    progress: Any              # the job's progress bar

    @property
    def setting(self) -> str:
        """The setting's id, DATASET-KIND-RATE: its group ids without the seed."""
        return self.gids[0].rsplit("-s", 1)[0]

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    @property
    def amp_dtype(self) -> torch.dtype | None:
        p = self.protocol.precision
        return torch.bfloat16 if p == "bf16" or (p == "auto" and self.device.type == "cuda") else None

    @property
    def channels_last(self) -> bool:
        return self.device.type == "cuda" and self.data.is_image

    @property
    def eval_batch(self) -> int:
        return max(512, self.protocol.batch_size * 4)

    def autocast(self):
        if self.amp_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.amp_dtype)


class _HostCopy:
    """The stack's parameters and buffers at the start of an epoch, on the host (pinned memory,
    copied without waiting on CUDA): a diverged model goes back to it without a second copy of
    the model on the device."""

    def __init__(self, model: torch.nn.Module):
        pin = next(model.parameters()).device.type == "cuda"
        self.buffers = {k: torch.empty(v.shape, dtype=v.dtype, pin_memory=pin) for k, v in model.state_dict().items()}

    def take(self, model: torch.nn.Module) -> None:
        for k, v in model.state_dict().items():
            self.buffers[k].copy_(v.detach(), non_blocking=True)


def init_seed(gid: str, member: int) -> int:
    """The seed of a group's ``member``-th initialisation (its first: every one-model cell's)."""
    return derive_seed("init", gid) if member == 0 else derive_seed("init", gid, "member", member)


class PhaseRun:
    """One phase of a setting on one stack: the shared CE warm-up (``cells`` None: ``members``
    CE models per seed) or a variant's own phase (S seeds x C cells), for the seeds at positions
    ``rows`` of the setting. ``start``: per seed, the states its cells' first, second, ...
    models start from (None: the seed's initialisations); ``estimate_from``: per seed, the CE
    warm-up models whose first one the noise is estimated from (needed by cells that estimate
    T). Resumable from its checkpoint ``key``; its random draws are keyed by ``stream``
    (default: ``key``), the same for every pass of a run. Epochs are numbered from
    ``epoch0 + 1``; ``history`` has one list of per-epoch rows per model."""

    def __init__(self, ctx: SettingContext, key: str, phase: str, epochs: int, optimizer: OptimizerConfig,
                 schedule: ScheduleConfig, rows: list[int], cells: list[Cell] | None = None,
                 start: list[list[dict[str, torch.Tensor]]] | None = None, epoch0: int = 0,
                 stream: str | None = None, members: int = 1,
                 estimate_from: list[list[dict[str, torch.Tensor]]] | None = None):
        self.ctx, self.key, self.phase, self.epochs, self.epoch0 = ctx, key, phase, epochs, epoch0
        self.opt_cfg, self.sch_cfg, self.rows = optimizer, schedule, rows
        self.cells = cells if cells is not None else [Cell("ce", (0.0,))] * members
        self.warmup = cells is None
        self.data = ctx.data.seeds(rows)
        methods = [get(cl.method) for cl in self.cells]
        # slot -> (cell, member): a cell's models side by side
        self.layout = [(c, j) for c, m in enumerate(methods) for j in range(m.models)]
        s, c = len(rows), len(self.layout)
        self.s, self.c, self.m = s, c, s * c
        dev, gids = ctx.device, [ctx.gids[r] for r in rows]
        p = ctx.protocol
        shape = tuple(self.data.x_train.shape[1:])
        needed = len(self.cells) if self.warmup else 1 + max(j for _, j in self.layout)
        singles = start if start is not None else [
            [models.build_model(p.model, 1, shape, ctx.num_classes, seed=init_seed(g, j), init=p.init,
                                **p.model_args).state_dict() for j in range(needed)] for g in gids]
        members_of = [j for _, j in self.layout] if not self.warmup else list(range(c))
        model = models.build_model(p.model, self.m, shape, ctx.num_classes, seed=0, init=p.init, **p.model_args)
        model.load_state_dict({k: torch.cat([singles[i][j][k] for i in range(s) for j in members_of])
                               for k in singles[0][0]})
        model = model.to(dev)
        if ctx.channels_last:
            model = model.to(memory_format=torch.channels_last)
        model.train()
        self.model = model
        self.optimizer = torch.optim.SGD(model.parameters(), lr=optimizer.lr, momentum=optimizer.momentum,
                                         nesterov=optimizer.nesterov and optimizer.momentum > 0,
                                         weight_decay=optimizer.weight_decay)
        stream = stream or key     # what the draws are keyed by: the run, not the pass of it
        cell_keys = [[derive_seed("draws", g, stream, cl.id) for cl in self.cells] for g in gids]
        d = self.data
        noisy_train = d.y_noisy.gather(1, d.train_idx)
        self.noise_rates = (noisy_train != d.y_clean[d.train_idx]).double().mean(1)          # (S,) realised
        self.estimates = self._estimates(estimate_from, noisy_train) if any(m.estimated for m in methods) else {}
        self.loss = StackLoss(self.cells, s, ctx.num_classes, dev,
                              draws.keys(sum(cell_keys, []), dev).view(s, len(self.cells)),
                              d.transition if any(m.noise == "oracle T" for m in methods) else None,
                              num_train=len(d.y_clean), noise_rates=self.noise_rates, estimates=self.estimates)
        self.batch_keys = draws.keys([derive_seed("batches", g, stream) for g in gids], dev)
        self.aug_keys = draws.keys([derive_seed("augment", g, stream) for g in gids], dev)
        self.peer_keys = draws.keys([derive_seed("peer", g, stream) for g in gids], dev)
        self.peer_aug_keys = draws.keys([derive_seed("augment-peer", g, stream) for g in gids], dev)
        self.peer_slots = torch.tensor([methods[c].peer for c, _ in self.layout] * s, device=dev)
        self.all_peer = all(methods[c].peer for c, _ in self.layout)
        self.sigmoid = torch.tensor([methods[c].output == "sigmoid" for c, _ in self.layout] * s)
        self.done = 0
        self.history: list[list[dict]] = [[] for _ in range(self.m)]
        self.diverged_epoch: list[int | None] = [None] * self.m
        # warm-up: the branch points seen so far, branch -> per seed {"epoch", "score", "state"}
        self.candidates: dict[str, list[dict | None]] = {}
        self.final: list[dict] | None = None  # per-model results, once complete
        # a cell's own phase: per selection, each model's per-test-sample correctness at the
        # epoch that selection chooses so far (TestCorrect); the warm-up keeps none
        self.test_correct = None if self.warmup else TestCorrect(self.m, int(self.data.y_test.shape[0]), dev)
        self._host = _HostCopy(model)

    def seed_cell(self, i: int) -> tuple[int, int]:
        """(seed position in this run, cell position) of model i."""
        s, j = divmod(i, self.c)
        return s, self.layout[j][0]

    def model_of(self, seed: int, cell: int) -> int:
        """The stack position of a cell's first model (the one evaluated) for the seed at position
        ``seed``."""
        return seed * self.c + self.loss.slot(cell)

    def _estimates(self, source, noisy_train: torch.Tensor) -> dict[float, tuple[torch.Tensor, torch.Tensor]]:
        """anchor-point quantile -> (T estimated per seed (S, K, K), the noise rate it implies (S,)),
        from the softmax on the seed's training split of the first CE warm-up model of ``source``."""
        ctx, d, p = self.ctx, self.data, self.ctx.protocol
        if source is None:
            raise ValueError(f"{self.key}: cells that estimate T need a CE warm-up model to estimate it from, and "
                             "none was given")
        shape = tuple(d.x_train.shape[1:])
        model = models.build_model(p.model, self.s, shape, ctx.num_classes, seed=0, init=p.init, **p.model_args)
        model.load_state_dict({k: torch.cat([st[0][k] for st in source]) for k in source[0][0]})
        model = model.to(ctx.device)
        if ctx.channels_last:
            model = model.to(memory_format=torch.channels_last)
        probs = predict_proba(model, d.x_train, d.train_idx, ctx.eval_batch, ctx.autocast).double()   # (S, N, K)
        k = ctx.num_classes
        prior = torch.nn.functional.one_hot(noisy_train, k).double().mean(1)                       # (S, K)
        out = {}
        for q in sorted({quantile_of(cl) for cl in self.cells if get(cl.method).estimated}):
            t = anchor_transition(probs, q)
            out[q] = (t, noise_rate_of(t, prior))
        return out

    # -- checkpoints
    def _state(self) -> dict:
        state = {"fingerprint": self.ctx.fingerprint, "key": self.key, "done": self.done,
                 "history": self.history, "diverged_epoch": self.diverged_epoch, "final": self.final}
        if self.final is None:  # still training (or a warm-up whose branch points are needed)
            state.update(model=self.model.state_dict(), optimizer=self.optimizer.state_dict(),
                         method_state=self.loss.state_dict(), candidates=self.candidates,
                         test_correct=None if self.test_correct is None else self.test_correct.state_dict())
        return state

    def _resume(self) -> bool:
        state = self.ctx.checkpoints.load(self.key, self.ctx.fingerprint)
        if state is None:
            return False
        self.done, self.history = state["done"], state["history"]
        self.diverged_epoch, self.final = state["diverged_epoch"], state["final"]
        if self.final is None:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.loss.load_state_dict(state["method_state"])
            self.candidates = state["candidates"]
            if self.test_correct is not None:
                self.test_correct.load_state_dict(state["test_correct"])
        return True

    # -- training
    def train(self, finish=None) -> None:
        """Train to the end (resuming from the checkpoint if there is one); then
        ``finish(self)`` computes ``self.final`` before the last save. An interrupt leaving it
        carries the run's ``position`` (``engine.position``)."""
        try:
            self._train(finish)
        except KeyboardInterrupt as interrupt:
            self.position().mark(interrupt)
            raise

    def position(self) -> Position:
        """The setting, this run and the epoch it is training (its last once all are trained)."""
        return Position(self.ctx.setting, self.key, self.epoch0 + min(self.done + 1, self.epochs),
                        self.epoch0 + self.epochs)

    def _train(self, finish) -> None:
        resumed = self._resume()
        if resumed and self.done:
            print(f"{self.key}: resumed from epoch {self.epoch0 + self.done}", file=sys.stderr)
        self.ctx.progress.update(self.done)
        if resumed and self.done == self.epochs and (self.final is not None or finish is None):
            return  # finished before: nothing to train, nothing new to save
        p = self.ctx.protocol
        while self.done < self.epochs:
            self._host.take(self.model)
            stats = self._train_epoch()
            self.done += 1
            self._check_divergence(stats["train_loss"].double().cpu().tolist())
            self._record(stats)
            self.ctx.progress.update(1)
            if self.done < self.epochs and self.done % p.checkpoint_every == 0:
                self.ctx.checkpoints.save(self.key, self._state())
        if self.final is None and finish is not None:
            finish(self)
        self.ctx.checkpoints.save(self.key, self._state())

    def steps_per_epoch(self) -> tuple[int, int]:
        n = self.data.train_idx.shape[1]
        bs = min(self.ctx.protocol.batch_size, n)
        return (n // bs if self.ctx.protocol.drop_last else -(-n // bs)), bs

    def _train_epoch(self) -> dict[str, torch.Tensor]:
        """One epoch; no host-device synchronisation inside a step."""
        ctx, d, p = self.ctx, self.data, self.ctx.protocol
        s, c, m, k = self.s, self.c, self.m, ctx.num_classes
        steps, bs = self.steps_per_epoch()
        order = d.train_idx.gather(1, draws.permutation(self.batch_keys, "batch", self.done, d.train_idx.shape[1]))
        loss_sum = torch.zeros(m, device=ctx.device)
        noisy_hits = torch.zeros(m, device=ctx.device)
        clean_hits = torch.zeros(m, device=ctx.device)
        seen = 0
        lr = self.opt_cfg.lr
        for step in range(steps):
            counter = self.done * steps + step
            lr = learning_rate(self.opt_cfg, self.sch_cfg, self.done, step, steps, self.epochs)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            idx = order[:, step * bs:(step + 1) * bs]                                # (S, b)
            x = augment(d.x_train[idx], p.augment, self.aug_keys, counter, d.black)
            y = d.y_noisy.gather(1, idx)
            with ctx.autocast():
                logits = self.model(x)                                             # (M, b, K)
            b = idx.shape[1]
            peer = self._peer(counter, b) if self.loss.peer else None
            loss = self.loss(logits.view(s, c, b, k), y, counter, index=idx, epoch=self.done, epochs=self.epochs,
                             peer=peer[:2] if peer else None).reshape(m)
            finite = torch.isfinite(loss)
            self.optimizer.zero_grad(set_to_none=True)
            torch.where(finite, loss, torch.zeros_like(loss)).sum().backward()
            if peer:
                self._restore_buffers(peer[2])
            self.optimizer.step()
            with torch.no_grad():
                pred = logits.detach().argmax(-1).view(s, c, b)
                loss_sum += torch.where(finite, loss.detach(), torch.full_like(loss, float("nan")))
                noisy_hits += (pred == y.unsqueeze(1)).sum(-1).reshape(m)
                clean_hits += (pred == d.y_clean[idx].unsqueeze(1)).sum(-1).reshape(m)
            seen += b
        return {"lr": lr, "train_loss": loss_sum / max(1, steps), "noisy_train_acc": noisy_hits / max(1, seen),
                "clean_train_acc": clean_hits / max(1, seen)}

    def peer_indices(self, counter: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's peer samples (S, b) each, as positions in the training set: the inputs are
        the first b and the labels the next b of a fresh shuffle of each seed's training split
        (wrapping around when the split has fewer than 2 b samples), as the peer-loss authors'
        code draws them."""
        d = self.data
        n = d.train_idx.shape[1]
        perm = draws.permutation(self.peer_keys, "peer", counter, n)                   # (S, n)
        labels_at = (torch.arange(b, 2 * b, device=perm.device) % n).expand(self.s, b)
        return d.train_idx.gather(1, perm[:, :b]), d.train_idx.gather(1, perm.gather(1, labels_at))

    def _peer(self, counter: int, b: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """The step's peer predictions (S, slots, b, K), the peer inputs through the whole stack,
        the peer labels (S, b), and the models' buffers (batch-norm statistics) as they were
        before this forward pass, for ``_restore_buffers`` once the step's backward pass is done."""
        ctx, d, p = self.ctx, self.data, self.ctx.protocol
        x_idx, y_idx = self.peer_indices(counter, b)
        x = augment(d.x_train[x_idx], p.augment, self.peer_aug_keys, counter, d.black)
        kept = {name: buf.clone() for name, buf in self.model.named_buffers()
                if buf.dim() and buf.shape[0] == self.m} if not self.all_peer else {}
        with ctx.autocast():
            logits = self.model(x)
        return logits.view(self.s, self.c, b, -1), d.y_noisy.gather(1, y_idx), kept

    @torch.no_grad()
    def _restore_buffers(self, kept: dict[str, torch.Tensor]) -> None:
        """Put the buffers of the models of cells without a peer term back to ``kept``: the peer
        inputs' forward pass does not move their batch-norm statistics."""
        for name, buf in self.model.named_buffers():
            if name in kept:
                buf.copy_(torch.where(self.peer_slots.view(-1, *([1] * (buf.dim() - 1))), buf, kept[name]))

    def evaluate(self, x: torch.Tensor, labels: list[torch.Tensor], index: torch.Tensor | None = None,
                 per_sample: bool = False) -> list[dict[str, torch.Tensor]]:
        ctx = self.ctx
        return evaluate(self.model, x, labels, self.sigmoid, ctx.protocol.ece_bins, ctx.eval_batch, ctx.autocast,
                        index, per_sample)

    def _record(self, stats: dict) -> None:
        d = self.data
        test, = self.evaluate(d.x_test, [d.y_test], per_sample=self.test_correct is not None)
        val, = self.evaluate(d.x_train, [d.y_noisy.gather(1, d.val_idx)], index=d.val_idx)
        cols = {"train_loss": stats["train_loss"], "noisy_train_acc": stats["noisy_train_acc"],
                "clean_train_acc": stats["clean_train_acc"], "val_acc": val["acc"], "test_acc": test["acc"],
                "test_nll": test["nll"], "ece": test["ece"]}
        cols = {key: v.double().cpu().tolist() for key, v in cols.items()}
        epoch = self.epoch0 + self.done
        live = []
        for i in range(self.m):
            if self.diverged_epoch[i] is not None and self.diverged_epoch[i] < epoch:
                # frozen: repeat the figures of its last finite epoch, no new training loss
                last = dict(self.history[i][-1])
                last.update(epoch=epoch, phase=self.phase, lr=float(stats["lr"]), train_loss=float("nan"))
                self.history[i].append(last)
                continue
            live.append(i)
            row = {"epoch": epoch, "phase": self.phase, "lr": float(stats["lr"])}
            row.update({key: float(v[i]) for key, v in cols.items()})
            self.history[i].append(row)
        if self.test_correct is not None:
            self.test_correct.update(test["correct"], live, cols["test_acc"], cols["val_acc"])
        if self.warmup:
            self._track_branch_points(epoch)

    def _track_branch_points(self, epoch: int) -> None:
        """Warm-up: per seed, keep the model of the first epoch with the best clean-test accuracy
        (``best``) and with the best held-out noisy accuracy (``selected``); ``last`` is the
        model at the end."""
        state = None
        for i in range(self.m):
            row = self.history[i][-1]
            for branch, key in (("best", "test_acc"), ("selected", "val_acc")):
                cands = self.candidates.setdefault(branch, [None] * self.m)
                score, cur = row[key], cands[i]
                if math.isfinite(score) and (cur is None or score > cur["score"]):
                    state = state if state is not None else self.model.state_dict()
                    cands[i] = {"epoch": epoch, "score": score, "state": _cpu(select_state(state, i))}
            if self.done == self.epochs:
                state = state if state is not None else self.model.state_dict()
                self.candidates.setdefault("last", [None] * self.m)[i] = {
                    "epoch": epoch, "score": row["test_acc"], "state": _cpu(select_state(state, i))}

    def _check_divergence(self, last_loss: list[float]) -> None:
        """Freeze every model whose loss or weights became non-finite this epoch, with the other
        models of its cell: they go back to their state at the start of the epoch (their last
        finite state) and are marked; the other models are untouched."""
        finite = _per_model_finite(self.model.state_dict(), self.m).cpu().tolist()
        epoch = self.epoch0 + self.done
        newly = [i for i in range(self.m) if self.diverged_epoch[i] is None and
                 (not finite[i] or not math.isfinite(last_loss[i]))]
        # a cell of several models diverges as a whole
        cells = {self.seed_cell(i) for i in newly}
        newly = [i for i in range(self.m) if self.diverged_epoch[i] is None and self.seed_cell(i) in cells]
        frozen = [i for i in range(self.m) if self.diverged_epoch[i] is not None]
        if not newly and not frozen:
            return
        if self.ctx.device.type == "cuda":
            torch.cuda.synchronize(self.ctx.device)   # the host copy of this epoch's start is complete
        with torch.no_grad():
            for i in newly + frozen:
                assign_model(self.model, i, select_state(self._host.buffers, i))
            for buf in self.optimizer.state.values():
                mom = buf.get("momentum_buffer")
                if mom is not None:
                    mom[newly + frozen] = 0
        for i in newly:
            self.diverged_epoch[i] = epoch


class TestCorrect:
    """Each model's per-test-sample correctness at the epoch each selection chooses
    (``core.selection``: ``best`` the first epoch of the highest test accuracy, ``selected``
    of the highest held-out accuracy, ``final`` the last), kept as the epochs go by: the
    report resamples the test set from it (the test set is the same for every seed). A
    frozen (diverged) model keeps what it had, as its history repeats its last finite epoch."""

    SCORES = {"best": "test_acc", "selected": "val_acc"}

    def __init__(self, m: int, n: int, device: torch.device):
        self.correct = {sel: torch.zeros(m, n, dtype=torch.bool, device=device)
                        for sel in selection.SELECTIONS}
        self.seen = {sel: [False] * m for sel in selection.SELECTIONS}
        self.score = {sel: [-math.inf] * m for sel in self.SCORES}

    def update(self, correct: torch.Tensor, live: list[int], test_acc: list[float], val_acc: list[float]) -> None:
        """One epoch's correctness (M, N) of the models ``live`` (not frozen), with the
        epoch's test and held-out accuracies (the figures of their history rows)."""
        scores = {"test_acc": test_acc, "val_acc": val_acc}
        for sel in selection.SELECTIONS:
            key = self.SCORES.get(sel)
            take = []
            for i in live:
                if key is None:
                    take.append(i)
                elif math.isfinite(scores[key][i]) and scores[key][i] > self.score[sel][i]:
                    self.score[sel][i] = scores[key][i]
                    take.append(i)
            if take:
                idx = torch.tensor(take, device=correct.device)
                self.correct[sel][idx] = correct[idx]
                for i in take:
                    self.seen[sel][i] = True

    def packed(self, i: int) -> dict[str, bytes | None]:
        """Model i's correctness per selection, 8 samples a byte (numpy's packbits, little bit
        order); None where the selection chose no epoch (no held-out split)."""
        import numpy as np

        return {sel: np.packbits(self.correct[sel][i].cpu().numpy(), bitorder="little").tobytes()
                if self.seen[sel][i] else None for sel in selection.SELECTIONS}

    def state_dict(self) -> dict:
        return {"correct": {k: v.cpu() for k, v in self.correct.items()}, "seen": self.seen, "score": self.score}

    def load_state_dict(self, state: dict) -> None:
        device = next(iter(self.correct.values())).device
        self.correct = {k: v.to(device) for k, v in state["correct"].items()}
        self.seen, self.score = state["seen"], state["score"]


def _per_model_finite(state: dict[str, torch.Tensor], m: int) -> torch.Tensor:
    ok = torch.ones(m, dtype=torch.bool, device=next(iter(state.values())).device)
    for t in state.values():
        if t.is_floating_point() and t.dim() and t.shape[0] == m:
            ok &= torch.isfinite(t.reshape(m, -1)).all(dim=1)
    return ok


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
