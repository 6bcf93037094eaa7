"""The training engine: all cells of a group trained together, on one set of batches.

A group shares dataset, noisy labels and seed; its cells differ by method and rate.
They are trained as ONE stacked model (``models.build_model(num_models=M)``): every
cell sees the same batches and augmentations (common random numbers), one
``gls_loss`` call applies each cell's smooth rate, and flip cells get their own
freshly flipped labels at every step. An optional CE warm-up is trained once (M = 1)
and then branched into the M cells.

Determinism: every random draw comes from a seed derived from the group and cell ids
(``grid.derive_seed``); a run killed at any point resumes from its last checkpoint and
ends with exactly the metrics of an uninterrupted run (same machine, same device).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import grid, io, models
from .losses import flip_labels, gls_loss

# ----------------------------------------------------------------------------- protocol

SCHEDULES = ("constant", "multistep", "cosine")
OPTIMIZERS = ("sgd",)


@dataclass(frozen=True)
class OptimizerConfig:
    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4


@dataclass(frozen=True)
class ScheduleConfig:
    name: str = "cosine"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1


@dataclass(frozen=True)
class PhaseConfig:
    epochs: int = 0
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)


@dataclass(frozen=True)
class AugmentConfig:
    crop_padding: int = 0
    hflip: bool = False


@dataclass(frozen=True)
class Protocol:
    """How a group is trained. ``epochs``/``optimizer``/``schedule`` describe the main
    (GLS) phase; ``warmup`` an optional CE phase shared by all cells before it."""

    model: str = "mlp"
    model_args: dict = field(default_factory=dict)
    batch_size: int = 128
    epochs: int = 30
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    warmup: PhaseConfig = field(default_factory=PhaseConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    val_fraction: float = 0.1
    checkpoint_every: int = 5
    ece_bins: int = 15
    device: str = "auto"
    precision: str = "auto"

    @classmethod
    def from_dict(cls, d: dict | None) -> "Protocol":
        d = dict(d or {})
        _no_unknown(d, cls, "protocol")
        kw: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in d:
                continue
            v = d[f.name]
            if f.name in ("optimizer", "schedule", "augment"):
                sub = {"optimizer": OptimizerConfig, "schedule": ScheduleConfig, "augment": AugmentConfig}[f.name]
                v = _sub(sub, v, f"protocol.{f.name}")
            elif f.name == "warmup":
                w = dict(v or {})
                _no_unknown(w, PhaseConfig, "protocol.warmup")
                v = PhaseConfig(
                    epochs=int(w.get("epochs", 0)),
                    optimizer=_sub(OptimizerConfig, w.get("optimizer"), "protocol.warmup.optimizer"),
                    schedule=_sub(ScheduleConfig, w.get("schedule"), "protocol.warmup.schedule"),
                )
            kw[f.name] = v
        p = cls(**kw)
        p.check()
        return p

    def check(self) -> None:
        def need(ok: bool, key: str, allowed: str) -> None:
            if not ok:
                raise ValueError(f"protocol.{key} = {_get(self, key)!r}: allowed {allowed}")

        need(self.batch_size >= 1, "batch_size", "an integer >= 1")
        need(self.epochs >= 0, "epochs", "an integer >= 0")
        need(self.warmup.epochs >= 0, "warmup.epochs", "an integer >= 0")
        need(self.epochs + self.warmup.epochs >= 1, "epochs", ">= 1 epoch in all (warm-up + main)")
        need(0 <= self.val_fraction < 0.5, "val_fraction", "[0, 0.5)")
        need(self.checkpoint_every >= 1, "checkpoint_every", "an integer >= 1")
        need(self.ece_bins >= 2, "ece_bins", "an integer >= 2")
        need(self.precision in ("auto", "fp32", "bf16"), "precision", "auto, fp32, bf16")
        need(self.augment.crop_padding >= 0, "augment.crop_padding", "an integer >= 0")
        for prefix, opt, sch in (("", self.optimizer, self.schedule),
                                 ("warmup.", self.warmup.optimizer, self.warmup.schedule)):
            need(opt.name in OPTIMIZERS, f"{prefix}optimizer.name", ", ".join(OPTIMIZERS))
            need(opt.lr > 0, f"{prefix}optimizer.lr", "> 0")
            need(0 <= opt.momentum < 1, f"{prefix}optimizer.momentum", "[0, 1)")
            need(opt.weight_decay >= 0, f"{prefix}optimizer.weight_decay", ">= 0")
            need(sch.name in SCHEDULES, f"{prefix}schedule.name", ", ".join(SCHEDULES))

    def to_dict(self) -> dict:
        d = asdict(self)
        for sch in (d["schedule"], d["warmup"]["schedule"]):
            sch["milestones"] = list(sch["milestones"])
        return d


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _no_unknown(d: dict, cls: type, where: str) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"{where}.{unknown[0]} is not a known key; allowed: {', '.join(sorted(known))}")


def _sub(cls: type, d: dict | None, where: str) -> Any:
    d = dict(d or {})
    _no_unknown(d, cls, where)
    if "milestones" in d:
        d["milestones"] = tuple(int(m) for m in d["milestones"])
    return cls(**d)


def learning_rate(opt: OptimizerConfig, sch: ScheduleConfig, epoch: int, step: int, steps_per_epoch: int,
                  epochs: int) -> float:
    """Learning rate at ``step`` (0-based) of ``epoch`` (0-based) of a phase of ``epochs`` epochs."""
    if sch.name == "constant":
        return opt.lr
    if sch.name == "multistep":
        return opt.lr * sch.gamma ** sum(1 for m in sch.milestones if epoch >= m)
    t = (epoch * steps_per_epoch + step) / max(1, epochs * steps_per_epoch)
    return 0.5 * opt.lr * (1.0 + math.cos(math.pi * t))


# ----------------------------------------------------------------------------- device

def resolve_device(requested: str) -> torch.device:
    if requested in ("auto", None):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(requested)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {requested!r} was asked for but CUDA is not available; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {requested!r}: allowed auto, cpu, cuda, cuda:N")
    return dev


def set_determinism(device: torch.device) -> None:
    """Deterministic kernels where they exist (CUDA: cuBLAS workspace, no cuDNN autotuning)."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    torch.use_deterministic_algorithms(True, warn_only=True)


# ----------------------------------------------------------------------------- data on device

@dataclass
class DeviceData:
    """Training/held-out/test tensors on the training device, inputs normalised."""

    x_train: torch.Tensor
    y_train_noisy: torch.Tensor
    y_train_clean: torch.Tensor
    x_val: torch.Tensor
    y_val_noisy: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    is_image: bool


def prepare_data(ds, noisy: np.ndarray, val_fraction: float, holdout_seed: int, device: torch.device) -> DeviceData:
    """Split off the held-out part of the NOISY training labels and move everything to ``device``.

    Normalisation statistics come from the training split only (per channel for
    images, per feature for vectors).
    """
    n = len(ds.y_train)
    perm = np.random.Generator(np.random.PCG64(holdout_seed)).permutation(n)
    n_val = int(round(val_fraction * n))
    val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    from .data import as_float

    x = as_float(ds.x_train)
    xt = as_float(ds.x_test)
    axes = (0, 2, 3) if x.ndim == 4 else (0,)
    mean = x[train_idx].mean(axis=axes, keepdims=True, dtype=np.float64)
    std = np.maximum(x[train_idx].std(axis=axes, keepdims=True, dtype=np.float64), 1e-3)
    norm = lambda a: torch.from_numpy(((a - mean) / std).astype(np.float32)).to(device)  # noqa: E731
    lab = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64)).to(device)  # noqa: E731
    return DeviceData(
        x_train=norm(x[train_idx]), y_train_noisy=lab(noisy[train_idx]), y_train_clean=lab(ds.y_train[train_idx]),
        x_val=norm(x[val_idx]), y_val_noisy=lab(noisy[val_idx]), x_test=norm(xt), y_test=lab(ds.y_test),
        num_classes=int(ds.num_classes), is_image=x.ndim == 4,
    )


def augment(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Batched random crop (zero padding) and horizontal flip, on the batch's device."""
    if x.dim() != 4 or (cfg.crop_padding == 0 and not cfg.hflip):
        return x
    b, _, h, w = x.shape
    if cfg.crop_padding:
        p = cfg.crop_padding
        xp = torch.nn.functional.pad(x, (p, p, p, p))
        off = torch.randint(0, 2 * p + 1, (2, b), generator=gen, device=x.device)
        rows = (off[0][:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (off[1][:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        bidx = torch.arange(b, device=x.device)[:, None, None, None]
        cidx = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = xp[bidx, cidx, rows, cols]
    if cfg.hflip:
        flip = torch.rand(b, generator=gen, device=x.device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x


# ----------------------------------------------------------------------------- evaluation

@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, ece_bins: int, batch: int,
             autocast: Callable) -> dict[str, torch.Tensor]:
    """Per-model accuracy, NLL and ECE on (x, y) in eval mode; tensors of shape (M,)."""
    if len(x) == 0:
        nan = torch.full((model.num_models,), float("nan"), device=x.device)
        return {"acc": nan, "nll": nan, "ece": nan}
    model.eval()
    logps = []
    for i in range(0, len(x), batch):
        with autocast():
            out = model(x[i:i + batch])
        logps.append(torch.log_softmax(out.float(), dim=-1))
    model.train()
    logp = torch.cat(logps, dim=1)                                   # (M, N, K)
    m, n, _ = logp.shape
    conf, pred = logp.max(dim=-1)
    conf = conf.exp()
    correct = (pred == y).float()
    nll = -logp.gather(-1, y.expand(m, n).unsqueeze(-1)).squeeze(-1).mean(-1)
    bins = (conf * ece_bins).ceil().long().clamp_(1, ece_bins) - 1
    # per-bin sums through a one-hot matmul rather than scatter_add (atomic, so not deterministic on CUDA)
    onehot = torch.nn.functional.one_hot(bins, ece_bins).float()              # (M, N, bins)
    gap_sum = torch.einsum("mnb,mn->mb", onehot, conf - correct)
    ece = gap_sum.abs().sum(-1) / n
    return {"acc": correct.mean(-1), "nll": nll, "ece": ece}


# ----------------------------------------------------------------------------- the engine

CURVE_COLUMNS = ("epoch", "phase", "lr", "train_loss", "noisy_train_acc", "clean_train_acc",
                 "val_acc", "test_acc", "test_nll", "ece")


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

    def __init__(self, ds, noisy: np.ndarray, gid: str, cells: list[grid.Cell], protocol: Protocol,
                 device: torch.device, checkpoint_dir: Path, fingerprint: str, progress: bool = True):
        self.gid, self.cells, self.p, self.device = gid, cells, protocol, device
        self.M = len(cells)
        self.K = int(ds.num_classes)
        self.progress = progress
        self.checkpoint_dir = checkpoint_dir
        self.fingerprint = fingerprint
        self.data = prepare_data(ds, noisy, protocol.val_fraction, grid.derive_seed("holdout", gid), device)
        self.input_shape = tuple(self.data.x_train.shape[1:])
        use_bf16 = protocol.precision == "bf16" or (protocol.precision == "auto" and device.type == "cuda")
        self.amp_dtype = torch.bfloat16 if use_bf16 else None
        self.channels_last = device.type == "cuda" and self.data.is_image
        self.smooth = torch.tensor([c.smooth_rate for c in cells], dtype=torch.float32, device=device)
        self.flip_index = [i for i, c in enumerate(cells) if c.method == "flip"]
        self.warm_epochs = protocol.warmup.epochs
        self.total_epochs = protocol.warmup.epochs + protocol.epochs
        # random streams
        self.batch_gen = torch.Generator().manual_seed(grid.derive_seed("batches", gid))
        self.aug_gen = torch.Generator(device=device).manual_seed(grid.derive_seed("augment", gid))
        self.flip_gens = {i: torch.Generator(device=device).manual_seed(grid.derive_seed("flip", gid, cells[i].id))
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
                                        seed=grid.derive_seed("init", self.gid), **self.p.model_args)
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
        state = models.replicate_state({k: v.detach().cpu() for k, v in self.model.state_dict().items()}, self.M)
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
                models.assign_model(self.model, i, models.select_state(self._snapshot, i))
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
            best = max(range(len(h)), key=lambda e: (h[e]["test_acc"], -e))
            # honest selection: first epoch with the best held-out NOISY accuracy (none without a held-out split)
            finite_val = [e for e in range(len(h)) if math.isfinite(h[e]["val_acc"])]
            sel = max(finite_val, key=lambda e: (h[e]["val_acc"], -e)) if finite_val else None
            last = h[-1]
            out.append({
                "cell_id": c.id, "method": c.method, "rate": float(c.rate),
                "smooth_rate": c.smooth_rate, "flip_rate": c.flip_rate,
                "status": "ok" if self.diverged_epoch[i] is None else "diverged",
                "diverged_epoch": self.diverged_epoch[i],
                "epochs": self.total_epochs,
                "test_acc_final": last["test_acc"],
                "test_acc_best": h[best]["test_acc"], "best_epoch": h[best]["epoch"],
                "test_acc_selected": None if sel is None else h[sel]["test_acc"],
                "selected_epoch": None if sel is None else h[sel]["epoch"],
                "val_acc_selected": None if sel is None else h[sel]["val_acc"],
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


def train_group(data_path: str, labels_path: str, cells: list[grid.Cell], protocol: dict | Protocol,
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
    gid = grid.group_id(ds.name, kind, rate, seed)
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
        "group_id": gid, "dataset": ds.name, "noise_kind": kind, "noise_rate": grid.fmt_rate(rate), "seed": seed,
        "num_classes": int(ds.num_classes),
        "realised_noise_rate": float(np.mean(noisy != ds.y_train)),
        "protocol": proto.to_dict(), "device": dev.type, "cells": _clean_json(metrics),
    }
    io.write_json(out / "group.json", summary)
    shutil.rmtree(ckdir, ignore_errors=True)
    return summary
