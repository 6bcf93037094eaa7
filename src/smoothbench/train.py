"""The training engine: all cells of a group trained together, on one set of batches.

A group shares dataset, noisy labels and seed; its cells differ by protocol variant,
method and rate. Each variant's cells are trained as ONE stacked model
(``models.build_model(num_models=M)``): every cell sees the same batches and
augmentations (common random numbers), one ``gls_loss`` call applies each cell's
smooth rate, and flip cells get their own freshly flipped labels at every step.

A variant with a warm-up branches from a CE warm-up trained once per group (one
model; variants with the same warm-up share it) at the checkpoint its ``branch``
names: ``last``, ``selected`` (best held-out noisy accuracy) or ``best`` (best clean
test accuracy, the reference code's choice). Each cell's selections (``selection``)
look only at the epochs of its own phase, after the branch point.

Determinism: every random draw comes from a seed derived from the group, the run and
the cell (``cells.derive_seed``); a run killed at any point resumes from its last
checkpoint and ends with exactly the metrics of an uninterrupted run (same machine,
same device).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import io, models, selection
from .cells import CURVE_COLUMNS, Cell, derive_seed, fmt_rate, group_id
from .checkpoint import CheckpointDir
from .device import DeviceData, augment, evaluate, prepare_data, resolve_device, set_determinism
from .losses import flip_labels, stacked_loss
from .protocol import OptimizerConfig, Protocol, ScheduleConfig, VariantConfig, learning_rate
from .stacked import assign_model, replicate_state, select_state


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _per_model_finite(state: dict[str, torch.Tensor], m: int) -> torch.Tensor:
    ok = torch.ones(m, dtype=torch.bool, device=next(iter(state.values())).device)
    for t in state.values():
        if t.is_floating_point() and t.dim() and t.shape[0] == m:
            ok &= torch.isfinite(t.reshape(m, -1)).all(dim=1)
    return ok


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


@dataclass
class GroupContext:
    """What every run of a group shares."""

    gid: str
    protocol: Protocol
    device: torch.device
    data: DeviceData
    checkpoints: CheckpointDir
    fingerprint: str
    progress: Any  # the group's progress bar

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

    def evaluate(self, model, x, y) -> dict[str, torch.Tensor]:
        return evaluate(model, x, y, self.protocol.ece_bins, self.eval_batch, self.autocast)


class StackRun:
    """One phase of a group on one stack of models, resumable from its checkpoint: the
    shared CE warm-up (one model, ``cells`` None) or a variant's own phase (one model per
    cell). Epochs are numbered from ``epoch0 + 1``; rows of ``history`` are per model."""

    def __init__(self, ctx: GroupContext, key: str, phase: str, epochs: int, optimizer: OptimizerConfig,
                 schedule: ScheduleConfig, cells: list[Cell] | None = None,
                 start_state: dict[str, torch.Tensor] | None = None, epoch0: int = 0):
        self.ctx, self.key, self.phase, self.epochs, self.epoch0 = ctx, key, phase, epochs, epoch0
        self.opt_cfg, self.sch_cfg = optimizer, schedule
        self.cells = cells
        self.m = 1 if cells is None else len(cells)
        dev, gid = ctx.device, ctx.gid
        self.smooth = torch.tensor([0.0] if cells is None else [c.smooth_rate for c in cells],
                                   dtype=torch.float32, device=dev)
        self.flip_index = [] if cells is None else [i for i, c in enumerate(cells) if c.method == "flip"]
        bce = [] if cells is None else [i for i, c in enumerate(cells) if c.is_bce]
        self.bce_index = torch.tensor(bce, dtype=torch.long, device=dev) if bce else None
        p = ctx.protocol
        model = models.build_model(p.model, self.m, tuple(ctx.data.x_train.shape[1:]), ctx.num_classes,
                                   seed=derive_seed("init", gid), init=p.init, **p.model_args)
        if start_state is not None:
            model.load_state_dict(replicate_state(start_state, self.m))
        model = model.to(dev)
        if ctx.channels_last:
            model = model.to(memory_format=torch.channels_last)
        model.train()
        self.model = model
        self.optimizer = torch.optim.SGD(model.parameters(), lr=optimizer.lr, momentum=optimizer.momentum,
                                         nesterov=optimizer.nesterov and optimizer.momentum > 0,
                                         weight_decay=optimizer.weight_decay)
        self.batch_gen = torch.Generator().manual_seed(derive_seed("batches", gid, key))
        self.aug_gen = torch.Generator(device=dev).manual_seed(derive_seed("augment", gid, key))
        self.flip_gens = {i: torch.Generator(device=dev).manual_seed(derive_seed("flip", gid, key, cells[i].id))
                          for i in self.flip_index}
        self.done = 0
        self.history: list[list[dict]] = [[] for _ in range(self.m)]
        self.diverged_epoch: list[int | None] = [None] * self.m
        # warm-up: the branch points seen so far, branch -> {"epoch", "score", "state"}
        self.candidates: dict[str, dict] = {}
        self.final: list[dict] | None = None  # a variant's per-cell results, once complete

    # -- checkpoints
    def _state(self) -> dict:
        state = {"fingerprint": self.ctx.fingerprint, "key": self.key, "done": self.done,
                 "history": self.history, "diverged_epoch": self.diverged_epoch, "final": self.final}
        if self.final is None:  # still training (or a warm-up whose branch points are needed)
            state.update(model=self.model.state_dict(), optimizer=self.optimizer.state_dict(),
                         batch_gen=self.batch_gen.get_state(), aug_gen=self.aug_gen.get_state(),
                         flip_gens={i: g.get_state() for i, g in self.flip_gens.items()},
                         candidates=self.candidates)
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
            self.batch_gen.set_state(state["batch_gen"])
            self.aug_gen.set_state(state["aug_gen"])
            for i, g in self.flip_gens.items():
                g.set_state(state["flip_gens"][i])
            self.candidates = state["candidates"]
        return True

    # -- training
    def train(self, finish=None) -> None:
        """Train to the end (resuming from the checkpoint if there is one); then
        ``finish(self)`` computes ``self.final`` (a variant's results) before the last save."""
        resumed = self._resume()
        if resumed and self.done:
            print(f"{self.ctx.gid}: {self.key} resumed from epoch {self.epoch0 + self.done}", file=sys.stderr)
        self.ctx.progress.update(self.done)
        if resumed and self.done == self.epochs and (self.final is not None or finish is None):
            return  # finished before: nothing to train, nothing new to save
        p = self.ctx.protocol
        while self.done < self.epochs:
            snapshot = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            stats = self._train_epoch()
            self.done += 1
            self._check_divergence(snapshot, stats["train_loss"].double().cpu().tolist())
            self._record(stats)
            self.ctx.progress.update(1)
            if self.done < self.epochs and self.done % p.checkpoint_every == 0:
                self.ctx.checkpoints.save(self.key, self._state())
        if self.final is None and finish is not None:
            finish(self)
        self.ctx.checkpoints.save(self.key, self._state())

    def _train_epoch(self) -> dict[str, torch.Tensor]:
        ctx, d, p = self.ctx, self.ctx.data, self.ctx.protocol
        n = len(d.x_train)
        bs = min(p.batch_size, n)
        steps = n // bs if p.drop_last else -(-n // bs)
        perm = torch.randperm(n, generator=self.batch_gen).to(ctx.device)
        loss_sum = torch.zeros(self.m, device=ctx.device)
        noisy_hits = torch.zeros(self.m, device=ctx.device)
        clean_hits = torch.zeros(self.m, device=ctx.device)
        seen = 0
        lr = self.opt_cfg.lr
        for step in range(steps):
            lr = learning_rate(self.opt_cfg, self.sch_cfg, self.done, step, steps, self.epochs)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            idx = perm[step * bs:(step + 1) * bs]
            x = augment(d.x_train[idx], p.augment, self.aug_gen, d.black)
            if ctx.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = d.y_train_noisy[idx]
            if self.flip_index:
                rows = [y] * self.m
                for i in self.flip_index:
                    rows[i] = flip_labels(y, ctx.num_classes, self.cells[i].flip_rate, generator=self.flip_gens[i])
                labels = torch.stack(rows)
            else:
                labels = y
            with ctx.autocast():
                logits = self.model(x)
            loss = stacked_loss(logits, labels, self.smooth, self.bce_index)   # (m,)
            finite = torch.isfinite(loss)
            self.optimizer.zero_grad(set_to_none=True)
            torch.where(finite, loss, torch.zeros_like(loss)).sum().backward()
            self.optimizer.step()
            with torch.no_grad():
                pred = logits.argmax(-1)
                loss_sum += torch.where(finite, loss.detach(), torch.full_like(loss, float("nan")))
                noisy_hits += (pred == y).sum(-1)
                clean_hits += (pred == d.y_train_clean[idx]).sum(-1)
            seen += len(idx)
        return {"lr": lr, "train_loss": loss_sum / max(1, steps), "noisy_train_acc": noisy_hits / max(1, seen),
                "clean_train_acc": clean_hits / max(1, seen)}

    def _record(self, stats: dict) -> None:
        d = self.ctx.data
        test = self.ctx.evaluate(self.model, d.x_test, d.y_test)
        val = self.ctx.evaluate(self.model, d.x_val, d.y_val_noisy)
        cols = {
            "train_loss": stats["train_loss"], "noisy_train_acc": stats["noisy_train_acc"],
            "clean_train_acc": stats["clean_train_acc"], "val_acc": val["acc"], "test_acc": test["acc"],
            "test_nll": test["nll"], "ece": test["ece"],
        }
        cols = {k: v.double().cpu().tolist() for k, v in cols.items()}
        epoch = self.epoch0 + self.done
        for i in range(self.m):
            row = {"epoch": epoch, "phase": self.phase, "lr": float(stats["lr"])}
            if self.diverged_epoch[i] is not None and self.diverged_epoch[i] < epoch:
                # frozen: repeat the figures of its last finite epoch, no new training loss
                last = dict(self.history[i][-1])
                last.update(epoch=epoch, phase=self.phase, lr=float(stats["lr"]), train_loss=float("nan"))
                self.history[i].append(last)
                continue
            row.update({k: float(v[i]) for k, v in cols.items()})
            self.history[i].append(row)
        if self.cells is None:
            self._track_branch_points(epoch)

    def _track_branch_points(self, epoch: int) -> None:
        """Warm-up: keep the model of the first epoch with the best clean-test accuracy
        (``best``) and with the best held-out noisy accuracy (``selected``); ``last`` is
        the model at the end."""
        row = self.history[0][-1]
        for branch, key in (("best", "test_acc"), ("selected", "val_acc")):
            score = row[key]
            cur = self.candidates.get(branch)
            if math.isfinite(score) and (cur is None or score > cur["score"]):
                self.candidates[branch] = {"epoch": epoch, "score": score, "state": _cpu(self.model.state_dict())}
        if self.done == self.epochs:
            self.candidates["last"] = {"epoch": epoch, "score": row["test_acc"],
                                       "state": _cpu(self.model.state_dict())}

    def _check_divergence(self, snapshot: dict, last_loss: list[float]) -> None:
        """Freeze every model whose loss or weights became non-finite this epoch.

        A diverged slice is put back to its state at the start of the epoch (its last
        finite state) and marked; the other slices are untouched.
        """
        state = self.model.state_dict()
        finite = _per_model_finite(state, self.m).cpu().tolist()
        epoch = self.epoch0 + self.done
        newly = [i for i in range(self.m) if self.diverged_epoch[i] is None and
                 (not finite[i] or not math.isfinite(last_loss[i]))]
        frozen = [i for i in range(self.m) if self.diverged_epoch[i] is not None]
        if not newly and not frozen:
            return
        with torch.no_grad():
            for i in newly + frozen:
                assign_model(self.model, i, select_state(snapshot, i))
            for buf in self.optimizer.state.values():
                mom = buf.get("momentum_buffer")
                if mom is not None:
                    mom[newly + frozen] = 0
        for i in newly:
            self.diverged_epoch[i] = epoch


class GroupTrainer:
    """One group's training: the shared warm-up(s), then every variant's cells."""

    def __init__(self, ctx: GroupContext, cells: list[Cell]):
        self.ctx, self.cells = ctx, cells

    def run(self) -> list[dict]:
        """Per (variant, cell) results in variant then cell order (see ``_finish``)."""
        warmups: dict[tuple, StackRun] = {}
        results = []
        for v in self.ctx.protocol.variants:
            warm = None
            if v.has_warmup:
                w = v.warmup
                if w.key not in warmups:
                    run = StackRun(self.ctx, f"warmup-{_fingerprint(w.key)[:8]}", "warmup", w.epochs,
                                   w.optimizer, w.schedule)
                    run.train()
                    warmups[w.key] = run
                warm = warmups[w.key]
            results += self._variant(v, warm)
        return results

    def _variant(self, v: VariantConfig, warm: StackRun | None) -> list[dict]:
        branch = warm.candidates[v.warmup.branch] if warm is not None else None
        run = StackRun(self.ctx, v.name, "main", v.epochs, v.optimizer, v.schedule, self.cells,
                       start_state=None if branch is None else branch["state"],
                       epoch0=v.warmup.epochs if warm is not None else 0)
        run.train(finish=lambda r: self._finish(r, v, warm, branch))
        return run.final

    def _finish(self, run: StackRun, v: VariantConfig, warm: StackRun | None, branch: dict | None) -> None:
        """A variant's per-cell results, computed once at its end (and kept in its checkpoint)."""
        d = self.ctx.data
        noisy = self.ctx.evaluate(run.model, d.x_train, d.y_train_noisy)["acc"].double().cpu().tolist()
        clean = self.ctx.evaluate(run.model, d.x_train, d.y_train_clean)["acc"].double().cpu().tolist()
        warm_rows = warm.history[0] if warm is not None else []
        warm_diverged = warm.diverged_epoch[0] if warm is not None else None
        out = []
        for i, c in enumerate(self.cells):
            own = run.history[i]
            diverged = warm_diverged if warm_diverged is not None else run.diverged_epoch[i]
            last = own[-1]
            out.append({
                "variant": v.name, "cell_id": c.id, "method": c.method, "rate": float(c.rate),
                "smooth_rate": c.smooth_rate, "flip_rate": c.flip_rate,
                "status": "ok" if diverged is None else "diverged", "diverged_epoch": diverged,
                "epochs": v.total_epochs,
                "branch": v.warmup.branch if warm is not None else None,
                "branch_epoch": None if branch is None else branch["epoch"],
                **selection.select(own),
                "clean_train_acc": clean[i], "noisy_train_acc": noisy[i],
                "test_nll": last["test_nll"], "ece": last["ece"], "train_loss": last["train_loss"],
                "curves": warm_rows + own,
            })
        run.final = out


def _read_labels(labels_path: str, ds) -> tuple[np.ndarray, str, str, int, int]:
    """The noisy labels of a group and its coordinates, checked against the dataset."""
    try:
        with np.load(labels_path, allow_pickle=False) as z:
            noisy = z["noisy_labels"].astype(np.int64)
            kind, rate, seed = str(z["kind"]), str(z["rate"]), int(z["seed"])
            noise_seed = int(z["noise_seed"]) if "noise_seed" in z else seed
            labels_hash = str(z["dataset_hash"]) if "dataset_hash" in z else None
    except FileNotFoundError:
        raise
    except Exception as exc:  # truncated, corrupted or not an .npz
        raise ValueError(f"{labels_path}: not a readable noisy-label file ({type(exc).__name__}); "
                         "remove it and rerun to remake it") from None
    if noisy.shape != ds.y_train.shape:
        raise ValueError(f"{labels_path}: {noisy.shape[0]} labels for {ds.y_train.shape[0]} training samples")
    if labels_hash is not None and labels_hash != ds.content_hash:
        raise ValueError(f"{labels_path}: made from another dataset file than {ds.name}'s (hash mismatch)")
    if noisy.min() < 0 or noisy.max() >= ds.num_classes:
        raise ValueError(f"{labels_path}: labels outside [0, {ds.num_classes - 1}]")
    return noisy, kind, rate, seed, noise_seed


def train_group(data_path: str, labels_path: str, cells: list[Cell], protocol: dict | Protocol,
                out_dir: str, checkpoint_dir: str | None = None, device: str = "auto",
                progress: bool = True) -> dict:
    """Train one group and write every cell's metrics and curves, then ``group.json``.

    Resumes from the checkpoints in ``checkpoint_dir`` written for the same inputs and
    settings (one file per run: the warm-up, each variant); holds the folder's lock
    while training; removes the checkpoints once ``group.json`` is written.
    """
    from tqdm import tqdm

    from . import data as data_mod

    proto = protocol if isinstance(protocol, Protocol) else Protocol.from_dict(protocol)
    if not cells:
        raise ValueError("no cells to train")
    if len({c.id for c in cells}) != len(cells):
        raise ValueError("cells: the same cell is listed twice")
    ds = data_mod.load_dataset(data_path)
    noisy, kind, rate, seed, noise_seed = _read_labels(labels_path, ds)
    gid = group_id(ds.name, kind, rate, seed)
    dev = resolve_device(device if device != "auto" else proto.device)
    set_determinism(dev)
    out = Path(out_dir)
    ckdir = CheckpointDir(checkpoint_dir if checkpoint_dir else out / ".checkpoint")
    fp = _fingerprint(ds.content_hash, hashlib.sha256(noisy.tobytes()).hexdigest(), gid,
                      [c.id for c in cells], proto.to_dict(), str(dev))
    data = prepare_data(ds, noisy, proto.val_fraction, derive_seed("holdout", gid), dev, proto.normalize)
    warm_epochs = sum({v.warmup.key: v.warmup.epochs for v in proto.variants if v.has_warmup}.values())
    total = warm_epochs + sum(v.epochs for v in proto.variants)
    with ckdir.lock(), tqdm(total=total, desc=gid, unit="ep", disable=not progress or None, leave=False,
                            file=sys.stderr) as bar:
        ctx = GroupContext(gid, proto, dev, data, ckdir, fp, bar)
        results = GroupTrainer(ctx, cells).run()
        metrics = []
        for res in results:
            res = dict(res)
            curves = res.pop("curves")
            cell_dir = out / "cells" / res["variant"] / res["cell_id"]
            io.write_json(cell_dir / "metrics.json", io.strict_json(res))
            io.write_rows(cell_dir / "curves.csv", CURVE_COLUMNS, curves)
            metrics.append(res)
        summary = {
            "group_id": gid, "dataset": ds.name, "noise_kind": kind, "noise_rate": fmt_rate(rate), "seed": seed,
            "noise_seed": noise_seed, "num_classes": int(ds.num_classes),
            "realised_noise_rate": float(np.mean(noisy != ds.y_train)),
            "protocol": proto.to_dict(), "device": dev.type, "cells": io.strict_json(metrics),
        }
        io.write_json(out / "group.json", summary)
        ckdir.remove()
    return summary
