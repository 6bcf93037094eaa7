"""The training engine: one job trains every group of a setting, as one stack of models.

A **setting** is (dataset, noise kind, noise rate); its **groups** are its seeds, each with
its own noisy labels. ``train_setting`` trains every protocol variant of the setting's
cells for all its seeds as ONE stack of S seeds x C cells (``phase.PhaseRun``), after a
CE warm-up per seed where the variant has one, and writes each group's outputs (its
``group.json`` and every cell's ``metrics.json`` and ``curves.csv``) into that group's
folder. A seed's results are those it would get trained alone. A cell of several models
(Co-teaching, JoCoR) reports its first model: its accuracies, selection, curves and
calibration are that model's (the second trains it). A cell that estimates the noise also
reports the mean absolute error of its T estimate against the seed's true T
(``transition_mae``) and the noise rate it implies (``noise_rate_hat``).

A stack too large for the device's memory (an estimate per model, ``models.measure.memory_per_model``,
against the free memory of the GPU or ``--memory-budget``) is trained in passes of fewer
cells (or seeds), said in one line; each pass is resumable on its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core import files as io, selection
from .models import measure
from ..core.vocabulary import CURVE_COLUMNS, TEST_CORRECT_FILE, Cell, derive_seed, fmt_rate, group_id
from .checkpoints import CheckpointDir
from .device import prepare_data, resolve_device, set_determinism
from ..methods import get
from .protocol import Protocol, VariantConfig
from .phase import HISTORY_KEYS, SettingContext, PhaseRun
from ..methods.stackloss import quantile_of

MEMORY_BUDGET_ENV = "SMOOTHBENCH_MEMORY_BUDGET_MIB"


def test_correct_arrays(cells: list[dict], packed: list[dict[str, bytes | None]], test_samples: int) -> dict:
    """The arrays of a group's ``test_correct.npz``: per cell (the order of group.json's
    ``cells``) and selection (``selections``), whether its prediction of each test sample is
    right at the epoch that selection chose, 8 samples a byte (``bits``, numpy's packbits in
    little bit order; ``has`` is False where the selection chose no epoch)."""
    sels = list(selection.SELECTIONS)
    width = -(-test_samples // 8)
    bits = np.zeros((len(cells), len(sels), width), dtype=np.uint8)
    has = np.zeros((len(cells), len(sels)), dtype=bool)
    for i, per_sel in enumerate(packed):
        for j, sel in enumerate(sels):
            if per_sel[sel] is not None:
                bits[i, j] = np.frombuffer(per_sel[sel], dtype=np.uint8)
                has[i, j] = True
    return {"variant": np.array([c["variant"] for c in cells]), "cell_id": np.array([c["cell_id"] for c in cells]),
            "selections": np.array(sels), "test_samples": np.array(test_samples, dtype=np.int64), "bits": bits,
            "has": has}


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _read_labels(labels_path: str, ds) -> dict:
    """The noisy labels of a group, their coordinates and transition matrix, checked against the dataset."""
    try:
        with np.load(labels_path, allow_pickle=False) as z:
            noisy = z["noisy_labels"].astype(np.int64)
            out = {"noisy": noisy, "kind": str(z["kind"]), "rate": str(z["rate"]), "seed": int(z["seed"]),
                   "transition": np.asarray(z["transition"], dtype=np.float64)}
            out["noise_seed"] = int(z["noise_seed"]) if "noise_seed" in z else out["seed"]
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
    if out["transition"].shape != (ds.num_classes, ds.num_classes):
        raise ValueError(f"{labels_path}: its transition matrix is not {ds.num_classes} x {ds.num_classes}")
    return out


def chunk_cells(cells: list[Cell], models_per_pass: int) -> list[list[Cell]]:
    """The cells in order, in chunks of at most ``models_per_pass`` models per seed (a cell of
    several models is never split; one that alone has more is a chunk of its own)."""
    chunks: list[list[Cell]] = [[]]
    used = 0
    for c in cells:
        width = get(c.method).models
        if chunks[-1] and used + width > models_per_pass:
            chunks.append([])
            used = 0
        chunks[-1].append(c)
        used += width
    return chunks


def plan_passes(num_seeds: int, num_cells: int, per_model: int, budget: int | None) -> tuple[int, int]:
    """(seeds, models per seed) per pass so that a pass's models fit ``budget`` bytes (None:
    one pass); ``num_cells`` counts the models of a seed."""
    if budget is None or num_seeds * num_cells * per_model <= budget:
        return num_seeds, num_cells
    fit = budget // per_model
    if fit < 1:
        raise ValueError(f"one model needs about {per_model / 2**20:.0f} MiB, more than the memory budget "
                         f"({budget / 2**20:.0f} MiB): use a smaller model, batch or precision")
    if fit >= num_cells:
        return min(num_seeds, fit // num_cells), num_cells
    return 1, int(fit)


def memory_budget(dev: torch.device, given_mib: float | None) -> int | None:
    """Bytes the stacks may use: ``given_mib`` (or the env SMOOTHBENCH_MEMORY_BUDGET_MIB), else
    90% of the GPU's free memory, else no limit (CPU)."""
    text = given_mib if given_mib is not None else os.environ.get(MEMORY_BUDGET_ENV)
    if text is not None:
        try:
            mib = float(text)
        except ValueError:
            raise ValueError(f"{MEMORY_BUDGET_ENV} = {text!r}: must be a number of MiB") from None
        if not mib > 0:
            raise ValueError(f"memory budget {mib:g} MiB: must be > 0")
        return int(mib * 2**20)
    if dev.type == "cuda":
        return int(0.9 * torch.cuda.mem_get_info(dev)[0])
    return None


class SettingTrainer:
    """A setting's training: the shared warm-up(s), then every variant's cells, in passes."""

    def __init__(self, ctx: SettingContext, cells: list[Cell], seeds_per_pass: int, cells_per_pass: int):
        self.ctx, self.cells = ctx, cells
        n = len(ctx.gids)
        self.seed_chunks = [list(range(i, min(n, i + seeds_per_pass))) for i in range(0, n, seeds_per_pass)]
        self.cell_chunks = chunk_cells(cells, cells_per_pass)
        self.members = max(get(c.method).models for c in cells)   # models per seed of the warm-up

    def _suffix(self, si: int, ci: int | None = None) -> str:
        s = f"-s{si}" if len(self.seed_chunks) > 1 else ""
        return s + (f"-c{ci}" if ci is not None and len(self.cell_chunks) > 1 else "")

    def _warmup(self, v: VariantConfig, si: int, rows: list[int], warmups: dict) -> PhaseRun:
        """The warm-up of variant ``v`` for seed chunk ``si``: trained once, shared by the variants
        whose warm-ups are the same run."""
        w = v.warmup
        wkey = (w.key, si)
        if wkey not in warmups:
            name = f"warmup-{_fingerprint(w.key)[:8]}"
            run = PhaseRun(self.ctx, name + self._suffix(si), "warmup", w.epochs, w.optimizer, w.schedule, rows,
                           stream=name, members=self.members)
            run.train()
            warmups[wkey] = run
        return warmups[wkey]

    def _branches(self, warm: PhaseRun, branch: str) -> list[list[dict]]:
        """Per seed, the states of its warm-up models at the branch point."""
        states = [c["state"] for c in warm.candidates[branch]]
        return [states[i:i + self.members] for i in range(0, len(states), self.members)]

    def run(self) -> list[list[dict]]:
        """Per seed, its (variant, cell) results in variant then cell order (see ``_finish``).

        Cells that estimate T take it from the warm-up model they start from; in a variant
        without a warm-up, from the warm-up of the protocol's first variant that has one (Patrini
        et al.'s two stages: a CE model first, then the corrected model from scratch)."""
        out: list[list[dict]] = [[] for _ in self.ctx.gids]
        warmups: dict[tuple, PhaseRun] = {}
        estimating = any(get(c.method).estimated for c in self.cells)
        source = next((v for v in self.ctx.protocol.variants if v.has_warmup), None)
        for v in self.ctx.protocol.variants:
            for si, rows in enumerate(self.seed_chunks):
                warm = self._warmup(v, si, rows, warmups) if v.has_warmup else None
                start = None if warm is None else self._branches(warm, v.warmup.branch)
                estimate_from = start
                if estimating and warm is None and source is not None:
                    estimate_from = self._branches(self._warmup(source, si, rows, warmups), source.warmup.branch)
                per_seed: list[list[dict]] = [[] for _ in rows]
                for ci, chunk in enumerate(self.cell_chunks):
                    run = PhaseRun(self.ctx, f"{v.name}{self._suffix(si, ci)}", "main", v.epochs, v.optimizer,
                                   v.schedule, rows, chunk, start=start, epoch0=v.warmup.epochs if warm else 0,
                                   stream=v.name, estimate_from=estimate_from)
                    run.train(finish=lambda r, v=v, warm=warm: self._finish(r, v, warm))
                    for i, res in enumerate(run.final):
                        per_seed[i // len(chunk)].append(res)
                for pos, row in enumerate(rows):
                    out[row] += per_seed[pos]
        return out

    def _finish(self, run: PhaseRun, v: VariantConfig, warm: PhaseRun | None) -> None:
        """A run's per-model results, computed once at its end (and kept in its checkpoint)."""
        d = run.data
        noisy, clean = run.evaluate(d.x_train, [d.y_noisy.gather(1, d.train_idx), d.y_clean[d.train_idx]],
                                    index=d.train_idx)
        noisy, clean = noisy["acc"].double().cpu().tolist(), clean["acc"].double().cpu().tolist()
        out = []
        for s in range(run.s):
            for c, cell in enumerate(run.cells):
                i, method = run.model_of(s, c), get(cell.method)
                w = s * self.members                                  # the seed's first warm-up model
                own = run.history[i]
                warm_rows = warm.history[w] if warm is not None else []
                warm_diverged = warm.diverged_epoch[w] if warm is not None else None
                diverged = warm_diverged if warm_diverged is not None else run.diverged_epoch[i]
                branch = warm.candidates[v.warmup.branch][w] if warm is not None else None
                failure = run.loss.failed.get((s, c))
                if failure is not None:
                    out.append(_failed_cell(run, v, warm, cell, s, w, own, failure))
                    continue
                last = own[-1]
                estimate = run.estimates.get(quantile_of(cell)) if method.estimated else None
                out.append({
                    "variant": v.name, "cell_id": cell.id, "method": cell.method,
                    "params": method.params_text(cell.values), "rate": cell.rate,
                    "status": "ok" if diverged is None else "diverged", "diverged_epoch": diverged,
                    "epochs": v.total_epochs,
                    "branch": v.warmup.branch if warm is not None else None,
                    "branch_epoch": None if branch is None else branch["epoch"],
                    **selection.select(own),
                    "clean_train_acc": clean[i], "noisy_train_acc": noisy[i],
                    "test_nll": last["test_nll"], "ece": last["ece"], "train_loss": last["train_loss"],
                    "transition_mae": None if estimate is None else
                    float((estimate[0][s] - d.transition[s].to(estimate[0].device)).abs().mean()),
                    "noise_rate_hat": None if estimate is None else float(estimate[1][s]),
                    "curves": warm_rows + own, "test_correct": run.test_correct.packed(i),
                })
        run.final = out


def _failed_cell(run: PhaseRun, v: VariantConfig, warm: PhaseRun | None, cell: Cell, s: int, w: int,
                 history: list[dict], failure: str) -> dict:
    """The result of a cell that could not be trained (its method refused the seed's inputs:
    ``StackLoss.failed``): status ``failed`` with the reason, no figures; its curves are the
    shared warm-up's rows (model ``w``: seed ``s``'s first) and its own epochs (``history``) with no
    values, since it did not train."""
    print(f"{run.ctx.gids[run.rows[s]]}: cell {v.name}/{cell.id} failed, the others of its group go on: {failure}",
          file=sys.stderr)
    own = [{"epoch": row["epoch"], "phase": row["phase"], "lr": row["lr"],
            **{key: float("nan") for key in HISTORY_KEYS}} for row in history]
    return {
        "variant": v.name, "cell_id": cell.id, "method": cell.method, "params": get(cell.method).params_text(cell.values),
        "rate": cell.rate, "status": "failed", "failure": failure, "diverged_epoch": None, "epochs": v.total_epochs,
        "branch": v.warmup.branch if warm is not None else None, "branch_epoch": None,
        **{key: None for key in selection.select(own)},
        "clean_train_acc": None, "noisy_train_acc": None, "test_nll": None, "ece": None, "train_loss": None,
        "transition_mae": None, "noise_rate_hat": None,
        "curves": (warm.history[w] if warm is not None else []) + own,
        "test_correct": {sel: None for sel in selection.SELECTIONS},
    }


def train_setting(data_path: str, labels_paths: list[str], cells: list[Cell], protocol: dict | Protocol,
                  out_dirs: list[str], checkpoint_dir: str | None = None, device: str = "auto",
                  progress: bool = True, memory_budget_mib: float | None = None) -> list[dict]:
    """Train every group of a setting (one noisy-label file and one output folder per seed)
    and write each group's cells' metrics and curves, then its ``group.json``.

    Resumes from the checkpoints in ``checkpoint_dir`` written for the same inputs and
    settings (one file per run: each warm-up, each variant, each pass); holds the folder's
    lock while training; removes the checkpoints once every ``group.json`` is written.
    """
    from tqdm import tqdm

    from ..data import datasets as data_mod

    proto = protocol if isinstance(protocol, Protocol) else Protocol.from_dict(protocol)
    if not cells:
        raise ValueError("no cells to train")
    if len({c.id for c in cells}) != len(cells):
        raise ValueError("cells: the same cell is listed twice")
    if len(labels_paths) != len(out_dirs) or not labels_paths:
        raise ValueError(f"give one output folder per labels file ({len(labels_paths)} labels, {len(out_dirs)} outputs)")
    ds = data_mod.load_dataset(data_path)
    labels = [_read_labels(p, ds) for p in labels_paths]
    if len({(lab["kind"], lab["rate"]) for lab in labels}) != 1:
        raise ValueError("the labels files of one job must share the noise kind and rate (one setting)")
    if len({lab["seed"] for lab in labels}) != len(labels):
        raise ValueError("the labels files of one job must be of different seeds")
    for c in cells:
        why = get(c.method).dataset_check and get(c.method).dataset_check(c.values, ds.num_classes)
        if why:
            raise ValueError(f"cell {c.id} on {ds.name}: {why}")
    estimated = next((c for c in cells if get(c.method).estimated), None)
    if estimated is not None and not any(v.has_warmup for v in proto.variants):
        raise ValueError(f"cell {estimated.id}: {estimated.method} estimates T from a CE warm-up model, and no "
                         f"protocol variant has a warm-up (warmup.epochs 0)")
    gids = [group_id(ds.name, lab["kind"], lab["rate"], lab["seed"]) for lab in labels]
    dev = resolve_device(device if device != "auto" else proto.device)
    set_determinism(dev)
    ckdir = CheckpointDir(checkpoint_dir if checkpoint_dir else Path(out_dirs[0]) / ".checkpoint")
    fp = _fingerprint(ds.content_hash, [hashlib.sha256(lab["noisy"].tobytes()).hexdigest() for lab in labels],
                      gids, [c.id for c in cells], proto.to_dict(), str(dev))
    data = prepare_data(ds, [lab["noisy"] for lab in labels], [lab["transition"] for lab in labels],
                        proto.val_fraction, [derive_seed("holdout", g) for g in gids], dev, proto.normalize)
    per_model = measure.memory_per_model(proto.model, tuple(data.x_train.shape[1:]), ds.num_classes,
                                         proto.batch_size, 2 if proto.precision == "bf16" or (
                                             proto.precision == "auto" and dev.type == "cuda") else 4,
                                         **proto.model_args)
    budget = memory_budget(dev, memory_budget_mib)
    slots = sum(get(c.method).models for c in cells)
    n_seeds, n_cells = plan_passes(len(gids), slots, per_model, budget)
    cell_passes = len(chunk_cells(cells, n_cells))
    passes = -(-len(gids) // n_seeds) * cell_passes
    if passes > 1:
        print(f"{gids[0].rsplit('-s', 1)[0]}: {len(gids) * len(cells)} models need about "
              f"{len(gids) * len(cells) * per_model / 2**20:.0f} MiB, more than the budget of "
              f"{budget / 2**20:.0f} MiB: training in {passes} passes of {n_seeds} seed(s) x {n_cells} model(s)",
              file=sys.stderr)
    warm_epochs = sum({v.warmup.key: v.warmup.epochs for v in proto.variants if v.has_warmup}.values())
    total = (warm_epochs + sum(v.epochs for v in proto.variants) * cell_passes) * -(-len(gids) // n_seeds)
    with ckdir.lock(), tqdm(total=total, desc=gids[0].rsplit("-s", 1)[0], unit="ep",
                            disable=not progress or None, leave=False, file=sys.stderr) as bar:
        ctx = SettingContext(gids, proto, dev, data, ckdir, fp, bar)
        results = SettingTrainer(ctx, cells, n_seeds, n_cells).run()
        summaries = []
        for lab, gid, out_dir, metrics_rows in zip(labels, gids, out_dirs, results):
            summaries.append(_write_group(Path(out_dir), gid, ds, lab, proto, dev, metrics_rows))
        ckdir.remove()
    return summaries


def _write_group(out: Path, gid: str, ds, lab: dict, proto: Protocol, dev: torch.device, rows: list[dict]) -> dict:
    metrics, correct = [], []
    for res in rows:
        res = dict(res)
        curves = res.pop("curves")
        correct.append(res.pop("test_correct"))
        cell_dir = out / "cells" / res["variant"] / res["cell_id"]
        io.write_json(cell_dir / "metrics.json", io.strict_json(res))
        io.write_rows(cell_dir / "curves.csv", CURVE_COLUMNS, curves)
        metrics.append(res)
    io.write_npz(out / TEST_CORRECT_FILE, test_correct_arrays(metrics, correct, int(ds.y_test.shape[0])))
    summary = {
        "group_id": gid, "dataset": ds.name, "noise_kind": lab["kind"], "noise_rate": fmt_rate(lab["rate"]),
        "seed": lab["seed"], "noise_seed": lab["noise_seed"], "num_classes": int(ds.num_classes),
        "realised_noise_rate": float(np.mean(lab["noisy"] != ds.y_train)),
        "protocol": proto.to_dict(), "device": dev.type, "cells": io.strict_json(metrics),
    }
    io.write_json(out / "group.json", summary)
    return summary


def train_group(data_path: str, labels_path: str, cells: list[Cell], protocol: dict | Protocol, out_dir: str,
                checkpoint_dir: str | None = None, device: str = "auto", progress: bool = True) -> dict:
    """Train one group (a setting with one seed): ``train_setting`` for one labels file."""
    return train_setting(data_path, [labels_path], cells, protocol, [out_dir], checkpoint_dir, device, progress)[0]
