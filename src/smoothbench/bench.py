"""Speed benchmarks that print tables (``smoothbench bench loss|train``).

Speed is shown here, side by side in one run, never by timed tests.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from .losses import gls_loss

# dense bf16 tensor-core peak FLOP/s by device-name fragment (vendor datasheets, no sparsity)
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "4090": 165e12}


def _devices(requested: str) -> list[torch.device]:
    if requested == "auto":
        return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    return [torch.device(requested)]


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _median_time(fn, dev: torch.device, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    _sync(dev)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(dev)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("| " + " | ".join(h.rjust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.rjust(w) for c, w in zip(r, widths)) + " |")


def bench_loss(device: str = "auto", repeats: int = 20) -> list[dict]:
    """Forward+backward throughput of ``gls_loss`` over a stack of M models vs
    (a) a Python loop calling it once per model and (b) explicit one-hot soft-target CE."""
    configs = [(1, 128, 10), (8, 128, 10), (16, 128, 10), (32, 512, 10), (8, 256, 100), (16, 128, 1000)]
    results = []
    for dev in _devices(device):
        for m, b, k in configs:
            g = torch.Generator(device="cpu").manual_seed(0)
            base = torch.randn(m, b, k, generator=g).to(dev)
            labels = torch.randint(0, k, (b,), generator=g).to(dev)
            rates = torch.linspace(-2.0, 0.8, m).to(dev)
            rates_list = rates.tolist()

            def vectorised():
                x = base.clone().requires_grad_(True)
                gls_loss(x, labels, rates, check=False).sum().backward()

            def loop():
                x = base.clone().requires_grad_(True)
                total = sum(gls_loss(x[i], labels, rates_list[i], check=False) for i in range(m))
                total.backward()

            def onehot():
                x = base.clone().requires_grad_(True)
                r = rates[:, None, None]
                onehot_labels = torch.nn.functional.one_hot(labels, k).float()
                target = (1 - r) * onehot_labels + r / k              # materialised (M, B, K) soft targets
                (-(target * torch.log_softmax(x, -1)).sum(-1).mean(-1)).sum().backward()

            t_vec = _median_time(vectorised, dev, repeats)
            t_loop = _median_time(loop, dev, repeats)
            t_hot = _median_time(onehot, dev, repeats)
            results.append({"device": dev.type, "M": m, "B": b, "K": k, "vectorised_s": t_vec, "loop_s": t_loop,
                            "onehot_s": t_hot})
    rows = [[r["device"], str(r["M"]), str(r["B"]), str(r["K"]),
             f"{r['M'] * r['B'] / r['vectorised_s'] / 1e6:.2f}", f"{r['M'] * r['B'] / r['loop_s'] / 1e6:.2f}",
             f"{r['M'] * r['B'] / r['onehot_s'] / 1e6:.2f}",
             f"{r['loop_s'] / r['vectorised_s']:.1f}x", f"{r['onehot_s'] / r['vectorised_s']:.2f}x"] for r in results]
    print(f"gls_loss forward+backward, median of {repeats} (torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads)")
    _print_table(["device", "M", "B", "K", "gls Msamples/s", "loop Msamples/s", "one-hot Msamples/s",
                  "gls vs loop", "gls vs one-hot"], rows)
    return results


# ----------------------------------------------------------------------------- training benchmark

DEFAULT_CELLS = "ce:0,ls:0.2,ls:0.4,ls:0.6,nls:-0.2,nls:-0.4,nls:-1,nls:-2,flip:0.18,flip:0.36,flip:0.54"


def _train_cmd(data: Path, labels: Path, cells: str, proto: dict, out: Path, dev: torch.device) -> list[str]:
    return [sys.executable, "-m", "smoothbench.cli", "train", "--data", str(data), "--labels", str(labels),
            "--cells", cells, "--protocol", json.dumps(proto), "--out", str(out), "--device", str(dev),
            "--no-progress"]


def _timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"benchmark run failed: {r.stderr.strip().splitlines()[-1] if r.stderr else r.returncode}")
    return time.perf_counter() - t0


def _synthetic_cifar(path: Path, n_train: int, n_test: int) -> None:
    from . import data

    rng = np.random.default_rng(0)
    data.save_dataset(path, "cifar10", rng.integers(0, 256, (n_train, 3, 32, 32), dtype=np.uint8),
                      rng.integers(0, 10, n_train), rng.integers(0, 256, (n_test, 3, 32, 32), dtype=np.uint8),
                      rng.integers(0, 10, n_test), [f"class{i}" for i in range(10)])


def bench_train(device: str = "auto", epochs: int = 3, quick: bool = False) -> list[dict]:
    """Group-vectorised engine vs one process per cell, same cells, same device."""
    from . import data, models, noise
    from .cells import format_cells, parse_cells

    cells = parse_cells(DEFAULT_CELLS)
    if quick:
        cells = cells[:4]
    spec = format_cells(cells)
    results = []
    with tempfile.TemporaryDirectory(prefix="smoothbench-bench-") as tmp:
        tmp = Path(tmp)
        setups = []
        digits = tmp / "digits.npz"
        data.build_dataset("digits", digits)
        setups.append(("digits", "mlp", {"hidden": [256, 256]}, digits, {}))
        cuda_setups = []
        if torch.cuda.is_available() and device in ("auto", "cuda"):
            cifar = tmp / "cifar.npz"
            _synthetic_cifar(cifar, 5_000 if quick else 20_000, 1_000)
            cuda_setups = [("cifar-shaped", "resnet18", {}, cifar, {"crop_padding": 4, "hflip": True}),
                           ("cifar-shaped", "fastnet", {}, cifar, {"crop_padding": 4, "hflip": True})]
        for dev in _devices(device):
            todo = setups if dev.type == "cpu" else setups + cuda_setups
            for dname, model, margs, dpath, aug in todo:
                if dev.type == "cpu" and model != "mlp":
                    continue
                labels = tmp / f"{dname}-labels.npz"
                if not labels.exists():
                    noise.make_noisy_labels(str(dpath), "symmetric", 0.4, 0, str(labels))
                proto = {"model": model, "model_args": margs, "epochs": epochs, "batch_size": 128,
                         "val_fraction": 0.1, "checkpoint_every": max(1, epochs), "augment": aug}
                t_group = _timed(_train_cmd(dpath, labels, spec, proto, tmp / f"g-{model}-{dev.type}", dev))
                t_each = sum(_timed(_train_cmd(dpath, labels, format_cells([c]), proto,
                                               tmp / f"s-{model}-{dev.type}-{c.id}", dev)) for c in cells)
                ds = data.load_dataset(dpath)
                n_train = int(round(len(ds.y_train) * 0.9)) // 128 * 128
                samples = n_train * epochs * len(cells)
                row = {"device": dev.type, "data": dname, "model": model, "cells": len(cells), "epochs": epochs,
                       "group_s": t_group, "one_by_one_s": t_each,
                       "group_cells_per_h": len(cells) / t_group * 3600,
                       "one_by_one_cells_per_h": len(cells) / t_each * 3600,
                       "group_samples_per_s": samples / t_group, "one_by_one_samples_per_s": samples / t_each}
                if dev.type == "cuda":
                    flops = 3 * models.count_flops_per_sample(
                        models.build_model(model, 1, ds.input_shape, 10, seed=0, **margs), ds.input_shape) * 2
                    name = torch.cuda.get_device_name(dev)
                    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
                    row["peak_fraction"] = samples * flops / t_group / peak if peak else None
                results.append(row)
    print(f"training engine: {len(cells)} cells x {epochs} epochs; wall time including process start "
          f"(torch {torch.__version__})")
    rows = [[r["device"], r["data"], r["model"], f"{r['group_s']:.1f}", f"{r['one_by_one_s']:.1f}",
             f"{r['group_cells_per_h']:.0f}", f"{r['one_by_one_cells_per_h']:.0f}",
             f"{r['group_samples_per_s']:.0f}", f"{r['one_by_one_samples_per_s']:.0f}",
             f"{r['one_by_one_s'] / r['group_s']:.1f}x",
             "n/a" if r.get("peak_fraction") is None else f"{100 * r['peak_fraction']:.1f}%"] for r in results]
    _print_table(["device", "data", "model", "group s", "one-by-one s", "group cells/h", "one-by-one cells/h",
                  "group samples/s", "one-by-one samples/s", "speed-up", "of bf16 peak"], rows)
    return results
