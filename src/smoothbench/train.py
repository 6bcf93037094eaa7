"""The training engine: all cells of a group trained together, on one set of batches.

A group shares dataset, noisy labels and seed; its cells differ by method and rate.
They are trained as ONE stacked model (``models.build_model(num_models=M)``): every
cell sees the same batches and augmentations (common random numbers), one
``gls_loss`` call applies each cell's smooth rate, and flip cells get their own
freshly flipped labels at every step. An optional CE warm-up is trained once (M = 1)
and then branched into the M cells.

Determinism: every random draw comes from a seed derived from the group and cell ids
(``cells.derive_seed``); a run killed at any point resumes from its last checkpoint and
ends with exactly the metrics of an uninterrupted run (same machine, same device).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import io, models, selection
from .cells import CURVE_COLUMNS, Cell, derive_seed, fmt_rate, group_id
from .losses import flip_labels, gls_loss
from .device import augment, evaluate, prepare_data, resolve_device, set_determinism
from .protocol import OptimizerConfig, Protocol, ScheduleConfig, learning_rate
from .stacked import assign_model, replicate_state, select_state

# ----------------------------------------------------------------------------- the engine

def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _per_model_finite(state: dict[str, torch.Tensor], m: int) -> torch.Tensor:
    ok = torch.ones(m, dtype=torch.bool, device=next(iter(state.values())).device)
    for t in state.values():
        if t.is_floating_point() and t.dim() and t.shape[0] == m:
            ok &= torch.isfinite(t.reshape(m, -1)).all(dim=1)
    return ok


class GroupTrainer:
    """Holds the state of one group's training; ``run()`` trains to the end, resuming if it can."""

    def __init__(self, ds, noisy: np.ndarray, gid: str, cells: list[Cell], protocol: Protocol,
                 device: torch.device, checkpoint_dir: Path, fingerprint: str, progress: bool = True):
        self.gid, self.cells, self.p, self.device = gid, cells, protocol, device
        self.M = len(cells)
        self.K = int(ds.num_classes)
        self.progress = progress
        self.checkpoint_dir = checkpoint_dir
        self.fingerprint = fingerprint
        self.data = prepare_data(ds, noisy, protocol.val_fraction, derive_seed("holdout", gid), device)
        self.input_shape = tuple(self.data.x_train.shape[1:])
        use_bf16 = protocol.precision == "bf16" or (protocol.precision == "auto" and device.type == "cuda")
        self.amp_dtype = torch.bfloat16 if use_bf16 else None
        self.channels_last = device.type == "cuda" and self.data.is_image
        self.smooth = torch.tensor([c.smooth_rate for c in cells], dtype=torch.float32, device=device)
        self.flip_index = [i for i, c in enumerate(cells) if c.method == "flip"]
        self.warm_epochs = protocol.warmup.epochs
        self.total_epochs = protocol.warmup.epochs + protocol.epochs
        # random streams
        self.batch_gen = torch.Generator().manual_seed(derive_seed("batches", gid))
        self.aug_gen = torch.Generator(device=device).manual_seed(derive_seed("augment", gid))
        self.flip_gens = {i: torch.Generator(device=device).manual_seed(derive_seed("flip", gid, cells[i].id))
                          for i in self.flip_index}
        # state
        self.epoch = 0
        self.history: list[list[dict]] = [[] for _ in cells]
        self.diverged_epoch: list[int | None] = [None] * self.M
        self.model = None
        self.optimizer = None
        self._build_phase_model(single=self.warm_epochs > 0)

    # -- model and optimizer per phase
    def _phase(self, epoch: int) -> str:
        return "warmup" if epoch < self.warm_epochs else "main"

    def _phase_cfg(self, phase: str) -> tuple[OptimizerConfig, ScheduleConfig, int]:
        if phase == "warmup":
            w = self.p.warmup
            return w.optimizer, w.schedule, w.epochs
        return self.p.optimizer, self.p.schedule, self.p.epochs

    def _build_phase_model(self, single: bool, state: dict | None = None) -> None:
        m = 1 if single else self.M
        model = models.build_model(self.p.model, m, self.input_shape, self.K,
                                        seed=derive_seed("init", self.gid), **self.p.model_args)
        if state is not None:
            model.load_state_dict(state)
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        model.train()
        self.model = model
        self.single = single
        opt, _, _ = self._phase_cfg("warmup" if single else "main")
        self.optimizer = torch.optim.SGD(model.parameters(), lr=opt.lr, momentum=opt.momentum,
                                         nesterov=opt.nesterov and opt.momentum > 0, weight_decay=opt.weight_decay)

    def _branch(self) -> None:
        """End of the CE warm-up: copy the single warm model into every cell's slot."""
        state = replicate_state({k: v.detach().cpu() for k, v in self.model.state_dict().items()}, self.M)
        self._build_phase_model(single=False, state=state)

    def _autocast(self):
        if self.amp_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # -- checkpoints
    def _ckpt_path(self) -> Path:
        return self.checkpoint_dir / "last.pt"

    def save_checkpoint(self) -> None:
        state = {
            "fingerprint": self.fingerprint,
            "epoch": self.epoch,
            "single": self.single,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "batch_gen": self.batch_gen.get_state(),
            "aug_gen": self.aug_gen.get_state(),
            "flip_gens": {i: g.get_state() for i, g in self.flip_gens.items()},
            "history": self.history,
            "diverged_epoch": self.diverged_epoch,
        }
        with io.atomic_path(self._ckpt_path()) as tmp:
            torch.save(state, tmp)

    def try_resume(self) -> bool:
        path = self._ckpt_path()
        if not path.exists():
            return False
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("fingerprint") != self.fingerprint:
            print(f"smoothbench train: {path} belongs to other inputs or settings; starting afresh", file=sys.stderr)
            return False
        self._build_phase_model(single=state["single"], state=state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.batch_gen.set_state(state["batch_gen"])
        self.aug_gen.set_state(state["aug_gen"])
        for i, g in self.flip_gens.items():
            g.set_state(state["flip_gens"][i])
        self.epoch = state["epoch"]
        self.history = state["history"]
        self.diverged_epoch = state["diverged_epoch"]
        return True

    # -- one epoch
    def _train_epoch(self) -> dict[str, torch.Tensor]:
        d, p = self.data, self.p
        phase = self._phase(self.epoch)
        opt_cfg, sch_cfg, phase_epochs = self._phase_cfg(phase)
        phase_epoch = self.epoch if phase == "warmup" else self.epoch - self.warm_epochs
        single = phase == "warmup"
        m = 1 if single else self.M
        n = len(d.x_train)
        bs = min(p.batch_size, n)
        steps = n // bs                      # drop the last partial batch: every step has B samples
        perm = torch.randperm(n, generator=self.batch_gen).to(self.device)
        rates = torch.zeros(1, device=self.device) if single else self.smooth
        loss_sum = torch.zeros(m, device=self.device)
        noisy_hits = torch.zeros(m, device=self.device)
        clean_hits = torch.zeros(m, device=self.device)
        lr = opt_cfg.lr
        for step in range(steps):
            lr = learning_rate(opt_cfg, sch_cfg, phase_epoch, step, steps, phase_epochs)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            idx = perm[step * bs:(step + 1) * bs]
            x = augment(d.x_train[idx], p.augment, self.aug_gen)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = d.y_train_noisy[idx]
            if not single and self.flip_index:
                rows = [y] * m
                for i in self.flip_index:
                    rows[i] = flip_labels(y, self.K, self.cells[i].flip_rate, generator=self.flip_gens[i])
                labels = torch.stack(rows)
            else:
                labels = y
            with self._autocast():
                logits = self.model(x)
            loss = gls_loss(logits, labels, rates, check=False)          # (m,)
            finite = torch.isfinite(loss)
            self.optimizer.zero_grad(set_to_none=True)
            torch.where(finite, loss, torch.zeros_like(loss)).sum().backward()
            self.optimizer.step()
            with torch.no_grad():
                pred = logits.argmax(-1)
                loss_sum += torch.where(finite, loss.detach(), torch.full_like(loss, float("nan")))
                noisy_hits += (pred == y).sum(-1)
                clean_hits += (pred == d.y_train_clean[idx]).sum(-1)
        denom = max(1, steps * bs)
        return {"lr": lr, "train_loss": loss_sum / max(1, steps), "noisy_train_acc": noisy_hits / denom,
                "clean_train_acc": clean_hits / denom}

    def _record(self, stats: dict, phase: str) -> None:
        d, p = self.data, self.p
        eval_bs = max(512, p.batch_size * 4)
        test = evaluate(self.model, d.x_test, d.y_test, p.ece_bins, eval_bs, self._autocast)
        val = evaluate(self.model, d.x_val, d.y_val_noisy, p.ece_bins, eval_bs, self._autocast)
        cols = {
            "train_loss": stats["train_loss"], "noisy_train_acc": stats["noisy_train_acc"],
            "clean_train_acc": stats["clean_train_acc"], "val_acc": val["acc"], "test_acc": test["acc"],
            "test_nll": test["nll"], "ece": test["ece"],
        }
        cols = {k: v.double().cpu().tolist() for k, v in cols.items()}
        for i in range(self.M):
            j = 0 if len(cols["test_acc"]) == 1 else i
            row = {"epoch": self.epoch, "phase": phase, "lr": float(stats["lr"])}
            if self.diverged_epoch[i] is not None and self.diverged_epoch[i] < self.epoch:
                # frozen: repeat the figures of its last finite epoch, no new training loss
                last = dict(self.history[i][-1])
                last.update(epoch=self.epoch, phase=phase, lr=float(stats["lr"]), train_loss=float("nan"))
                self.history[i].append(last)
                continue
            row.update({k: float(v[j]) for k, v in cols.items()})
            self.history[i].append(row)

    def _check_divergence(self) -> None:
        """Freeze every cell whose loss or weights became non-finite this epoch.

        A diverged slice is put back to its state at the start of the epoch (its
        last finite state) and marked; the other slices are untouched.
        """
        if self.single:
            return
        state = self.model.state_dict()
        finite = _per_model_finite(state, self.M).cpu().tolist()
        newly = [i for i in range(self.M) if self.diverged_epoch[i] is None and
                 (not finite[i] or not math.isfinite(self._last_loss[i]))]
        frozen = [i for i in range(self.M) if self.diverged_epoch[i] is not None]
        if not newly and not frozen:
            return
        with torch.no_grad():
            for i in newly + frozen:
                assign_model(self.model, i, select_state(self._snapshot, i))
            for buf in self.optimizer.state.values():
                mom = buf.get("momentum_buffer")
                if mom is not None:
                    mom[newly + frozen] = 0
        for i in newly:
            self.diverged_epoch[i] = self.epoch

    def run(self) -> None:
        from tqdm import tqdm

        resumed = self.try_resume()
        bar = tqdm(total=self.total_epochs, initial=self.epoch, desc=self.gid, unit="ep",
                   disable=not self.progress or None, leave=False, file=sys.stderr)
        if resumed:
            print(f"{self.gid}: resumed from epoch {self.epoch}", file=sys.stderr)
        while self.epoch < self.total_epochs:
            phase = self._phase(self.epoch)
            if phase == "main" and self.single:
                self._branch()
            # snapshot of the (finite) state at the start of the epoch, to freeze diverging cells
            self._snapshot = {k: v.detach().clone() for k, v in self.model.state_dict().items()} \
                if phase == "main" else None
            stats = self._train_epoch()
            self._last_loss = stats["train_loss"].double().cpu().tolist()
            self.epoch += 1
            if phase == "main":
                self._check_divergence()
            self._record(stats, phase)
            best = max(r["test_acc"] for h in self.history for r in h)
            bar.set_postfix(best_test_acc=f"{best:.3f}")
            bar.update(1)
            last = self.epoch == self.total_epochs
            if last or self.epoch % self.p.checkpoint_every == 0 or self.epoch == self.warm_epochs:
                self.save_checkpoint()
        bar.close()
        if self.single:      # warm-up only: the cells are the warm model, branched
            self._branch()

    # -- results
    def final_metrics(self) -> list[dict]:
        d, p = self.data, self.p
        eval_bs = max(512, p.batch_size * 4)
        noisy = evaluate(self.model, d.x_train, d.y_train_noisy, p.ece_bins, eval_bs, self._autocast)["acc"]
        clean = evaluate(self.model, d.x_train, d.y_train_clean, p.ece_bins, eval_bs, self._autocast)["acc"]
        noisy, clean = noisy.double().cpu().tolist(), clean.double().cpu().tolist()
        out = []
        for i, c in enumerate(self.cells):
            h = self.history[i]
            last = h[-1]
            out.append({
                "cell_id": c.id, "method": c.method, "rate": float(c.rate),
                "smooth_rate": c.smooth_rate, "flip_rate": c.flip_rate,
                "status": "ok" if self.diverged_epoch[i] is None else "diverged",
                "diverged_epoch": self.diverged_epoch[i],
                "epochs": self.total_epochs,
                **selection.select(h),
                "clean_train_acc": clean[i], "noisy_train_acc": noisy[i],
                "test_nll": last["test_nll"], "ece": last["ece"],
                "train_loss": last["train_loss"],
            })
        return out


def _write_curves(path: Path, rows: list[dict]) -> None:
    with io.atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(CURVE_COLUMNS)
        for r in rows:
            w.writerow([_fmt(r[c]) for c in CURVE_COLUMNS])


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if v != v else format(v, ".9g")
    return str(v)


def _clean_json(obj: Any) -> Any:
    """Non-finite floats become null so the JSON is strict."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean_json(v) for v in obj]
    return obj


def train_group(data_path: str, labels_path: str, cells: list[Cell], protocol: dict | Protocol,
                out_dir: str, checkpoint_dir: str | None = None, device: str = "auto",
                progress: bool = True) -> dict:
    """Train one group and write its per-cell metrics and curves, then ``group.json``.

    Resumes from ``checkpoint_dir/last.pt`` when it was written for the same inputs
    and settings; removes the checkpoint once ``group.json`` is written.
    """
    from . import data as data_mod

    proto = protocol if isinstance(protocol, Protocol) else Protocol.from_dict(protocol)
    if not cells:
        raise ValueError("no cells to train")
    if len({c.id for c in cells}) != len(cells):
        raise ValueError("cells: the same cell is listed twice")
    ds = data_mod.load_dataset(data_path)
    with np.load(labels_path, allow_pickle=False) as z:
        noisy = z["noisy_labels"].astype(np.int64)
        kind, rate, seed = str(z["kind"]), str(z["rate"]), int(z["seed"])
        labels_hash = str(z["dataset_hash"]) if "dataset_hash" in z else None
    if noisy.shape != ds.y_train.shape:
        raise ValueError(f"{labels_path}: {noisy.shape[0]} labels for {ds.y_train.shape[0]} training samples")
    if labels_hash is not None and labels_hash != ds.content_hash:
        raise ValueError(f"{labels_path}: made from another dataset file than {data_path} (hash mismatch)")
    if noisy.min() < 0 or noisy.max() >= ds.num_classes:
        raise ValueError(f"{labels_path}: labels outside [0, {ds.num_classes - 1}]")
    gid = group_id(ds.name, kind, rate, seed)
    dev = resolve_device(device if device != "auto" else proto.device)
    set_determinism(dev)
    out = Path(out_dir)
    ckdir = Path(checkpoint_dir) if checkpoint_dir else out / ".checkpoint"
    fp = _fingerprint(ds.content_hash, hashlib.sha256(noisy.tobytes()).hexdigest(), gid,
                      [c.id for c in cells], proto.to_dict(), str(dev))
    trainer = GroupTrainer(ds, noisy, gid, cells, proto, dev, ckdir, fp, progress=progress)
    trainer.run()
    metrics = trainer.final_metrics()
    for cell, met, hist in zip(cells, metrics, trainer.history):
        io.write_json(out / "cells" / cell.id / "metrics.json", _clean_json(met))
        _write_curves(out / "cells" / cell.id / "curves.csv", hist)
    summary = {
        "group_id": gid, "dataset": ds.name, "noise_kind": kind, "noise_rate": fmt_rate(rate), "seed": seed,
        "num_classes": int(ds.num_classes),
        "realised_noise_rate": float(np.mean(noisy != ds.y_train)),
        "protocol": proto.to_dict(), "device": dev.type, "cells": _clean_json(metrics),
    }
    io.write_json(out / "group.json", summary)
    shutil.rmtree(ckdir, ignore_errors=True)
    return summary
