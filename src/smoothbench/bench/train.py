"""``smoothbench bench train``: the group-vectorised engine against one process per cell, the
same cells on the same device, wall time including process start.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from . import table
from .step import STEP_MODELS
from .table import devices, percent, print_table

DEFAULT_CELLS = "ce:0,ls:0.2,ls:0.4,ls:0.6,nls:-0.2,nls:-0.4,nls:-1,nls:-2,flip:0.18,flip:0.36,flip:0.54"


def timed_train(data: Path, labels: list[Path], cells: str, proto: dict, outs: list[Path], device: str,
                threads: int | None = None) -> float:
    """Seconds one ``smoothbench train`` process takes (start to exit) to train ``cells`` for each
    labels file into its output folder."""
    cmd = [sys.executable, "-m", "smoothbench.cli", "train", "--data", str(data), "--labels", *map(str, labels),
           "--cells", cells, "--protocol", json.dumps(proto), "--out", *map(str, outs), "--device", device,
           "--no-progress", *(["--threads", str(threads)] if threads is not None else [])]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"benchmark run failed: {r.stderr.strip().splitlines()[-1] if r.stderr else r.returncode}")
    return time.perf_counter() - t0


def _synthetic_cifar(path: Path, n_train: int, n_test: int) -> None:
    from ..data import datasets as data

    rng = np.random.default_rng(0)
    data.save_dataset(path, "cifar10", rng.integers(0, 256, (n_train, 3, 32, 32), dtype=np.uint8),
                      rng.integers(0, 10, n_train), rng.integers(0, 256, (n_test, 3, 32, 32), dtype=np.uint8),
                      rng.integers(0, 10, n_test), [f"class{i}" for i in range(10)])


def _samples_per_epoch(n: int, val_fraction: float, batch: int) -> int:
    """Training samples the engine steps through per epoch (held-out split removed, last partial batch dropped)."""
    n_train = n - int(round(val_fraction * n))
    return n_train // min(batch, n_train) * min(batch, n_train)


def bench_train(device: str = "auto", epochs: int = 3, quick: bool = False, model_names: list[str] | None = None,
                num_cells: int | None = None, train_size: int | None = None) -> list[dict]:
    """Group-vectorised engine vs one process per cell, same cells, same device.

    ``model_names``: ``mlp`` trains on the embedded digits data; ``fastnet``, ``resnet18``,
    ``resnet34`` on synthetic CIFAR-shaped data (3x32x32, K=10, crop+flip augmentation) of
    ``train_size`` training images. Default: ``mlp`` on the CPU; ``mlp`` and the three image
    models on CUDA. ``quick``: 4 cells, image models at width 0.125 on 1,024 images (256 test).
    """
    from ..data import datasets as data
    from ..engine import models
    from ..engine.models import measure
    from ..noise import labels as noise
    from ..methods import format_cells, parse_cells

    cells = parse_cells(DEFAULT_CELLS)
    if num_cells is not None and not 1 <= num_cells <= len(cells):
        raise ValueError(f"bench train: --cells {num_cells}; allowed 1 to {len(cells)}")
    cells = cells[:num_cells] if num_cells else cells[:4] if quick else cells
    for name in model_names or ():
        if name not in ("mlp", *STEP_MODELS):
            raise ValueError(f"bench train: model {name!r}; allowed: mlp, {', '.join(STEP_MODELS)}")
    spec = format_cells(cells)
    n_images = train_size or (1_024 if quick else 20_000)
    image_args = {"width": 0.125} if quick else {}
    batch, val_fraction = 128, 0.1
    results = []
    with tempfile.TemporaryDirectory(prefix="smoothbench-bench-") as tmp:
        tmp = Path(tmp)
        for dev in devices(device):
            todo = model_names or (["mlp"] if dev.type == "cpu" else ["mlp", *STEP_MODELS])
            for model in todo:
                if model == "mlp":
                    dname, margs, aug, dpath = "digits", {"hidden": [256, 256]}, {}, tmp / "digits.npz"
                    if not dpath.exists():
                        data.build_dataset("digits", dpath)
                else:
                    dname, margs, aug = "cifar-shaped", image_args, {"crop_padding": 4, "hflip": True}
                    dpath = tmp / "cifar.npz"
                    if not dpath.exists():
                        _synthetic_cifar(dpath, n_images, 256 if quick else 1_000)
                labels = tmp / f"{dname}-labels.npz"
                if not labels.exists():
                    noise.make_noisy_labels(str(dpath), "symmetric", 0.4, 0, str(labels))
                proto = {"model": model, "model_args": margs, "variants": {"direct": {"epochs": epochs}},
                         "batch_size": batch, "val_fraction": val_fraction, "checkpoint_every": max(1, epochs),
                         "augment": aug}
                t_group = timed_train(dpath, [labels], spec, proto, [tmp / f"g-{model}-{dev.type}"], str(dev))
                t_each = sum(timed_train(dpath, [labels], format_cells([c]), proto,
                                         [tmp / f"s-{model}-{dev.type}-{c.id}"], str(dev)) for c in cells)
                ds = data.load_dataset(dpath)
                samples = _samples_per_epoch(len(ds.y_train), val_fraction, batch) * epochs * len(cells)
                macs = measure.count_flops_per_sample(
                    models.build_model(model, 1, ds.input_shape, ds.num_classes, seed=0, **margs), ds.input_shape)
                peak = table.peak_bf16(table.device_name(dev))
                flops = samples * macs * 2 * 3
                results.append({
                    "device": dev.type, "data": dname, "model": model, "cells": len(cells), "epochs": epochs,
                    "group_s": t_group, "one_by_one_s": t_each,
                    "group_cells_per_h": len(cells) / t_group * 3600,
                    "one_by_one_cells_per_h": len(cells) / t_each * 3600,
                    "group_samples_per_s": samples / t_group, "one_by_one_samples_per_s": samples / t_each,
                    "flops": flops, "peak_flops": peak[1] if peak else None,
                    "peak_fraction": flops / t_group / peak[1] if peak else None,
                })
    print(f"training engine: {len(cells)} cells x {epochs} epochs, batch {batch}; wall time including process "
          f"start; one-by-one = one process per cell, one after another (torch {torch.__version__})")
    rows = [[r["device"], r["data"], r["model"], f"{r['group_s']:.1f}", f"{r['one_by_one_s']:.1f}",
             f"{r['group_cells_per_h']:.0f}", f"{r['one_by_one_cells_per_h']:.0f}",
             f"{r['group_samples_per_s']:.0f}", f"{r['one_by_one_samples_per_s']:.0f}",
             f"{r['one_by_one_s'] / r['group_s']:.1f}x", percent(r["peak_fraction"])] for r in results]
    print_table(["device", "data", "model", "group s", "one-by-one s", "group cells/h", "one-by-one cells/h",
                 "group samples/s", "one-by-one samples/s", "speed-up", "of bf16 peak"], rows)
    return results
