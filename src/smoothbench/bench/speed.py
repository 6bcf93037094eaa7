"""Speed benchmarks that print tables (``smoothbench bench loss|train``).

Speed is shown here, side by side in one run, never by timed tests.
"""

from __future__ import annotations

import gc
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..methods.gls import gls_loss

# dense bf16 tensor-core peak FLOP/s by device-name fragment (vendor datasheets, no sparsity);
# the longest fragment contained in the device's name wins ("H100 PCIe" before "H100", "A100" before "A10")
PEAK_BF16 = {"H200 NVL": 835e12, "H200": 989e12, "H100 NVL": 835e12, "H100 PCIe": 756e12, "H100": 989e12,
             "A100": 312e12, "L40S": 362e12, "A10": 125e12, "4090": 165e12}


def device_name(dev: torch.device) -> str:
    """The accelerator's name as the driver reports it (what PEAK_BF16 is matched against)."""
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return platform.processor() or platform.machine() or "cpu"


def peak_bf16(name: str) -> tuple[str, float] | None:
    """(fragment, dense bf16 peak FLOP/s) of the PEAK_BF16 entry naming this device, or None."""
    hits = [k for k in PEAK_BF16 if k in name]
    if not hits:
        return None
    key = max(hits, key=len)
    return key, PEAK_BF16[key]


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
    print()
    return results + bench_mixed_loss(device=device, repeats=repeats)


def bench_mixed_loss(device: str = "auto", repeats: int = 20, seeds: tuple[int, ...] = (1, 10),
                     batch: int = 128, classes: int = 10) -> list[dict]:
    """The step's loss of a stack that mixes every registered method (one cell each, at its
    defaults; S seeds x C cells): ONE ``StackLoss`` call (methods that share a loss function
    in one call on a view of the stack) against one call per method, forward + backward."""
    from ..core import draws
    from .. import methods as registry
    from ..methods.stackloss import StackLoss

    cells = registry.sort_cells(registry.cell(m, registry.get(m).defaults) for m in registry.names())
    c = len(cells)
    results = []
    for dev in _devices(device):
        for s in seeds:
            g = torch.Generator(device="cpu").manual_seed(0)
            base = torch.randn(s, c, batch, classes, generator=g).to(dev)
            labels = torch.randint(0, classes, (s, batch), generator=g).to(dev)
            index = torch.stack([torch.randperm(4 * batch, generator=g)[:batch] for _ in range(s)]).to(dev)
            t = torch.full((classes, classes), 0.3 / (classes - 1), dtype=torch.float64)
            t.fill_diagonal_(0.7)
            t = t.expand(s, classes, classes)
            keys = draws.keys(range(s * c), dev).view(s, c)
            mixed = StackLoss(cells, s, classes, dev, keys, t, num_train=4 * batch)
            singles = [StackLoss([cell], s, classes, dev, keys[:, j:j + 1], t, num_train=4 * batch)
                       for j, cell in enumerate(cells)]

            def one_call():
                x = base.clone().requires_grad_(True)
                mixed(x, labels, 0, index=index).sum().backward()

            def per_method():
                x = base.clone().requires_grad_(True)
                sum(loss(x[:, j:j + 1], labels, 0, index=index).sum() for j, loss in enumerate(singles)).backward()

            t_one = _median_time(one_call, dev, repeats)
            t_each = _median_time(per_method, dev, repeats)
            results.append({"device": dev.type, "S": s, "C": c, "B": batch, "K": classes, "calls": len(mixed.blocks),
                            "one_call_s": t_one, "per_method_s": t_each})
    print(f"mixed-method stack loss, forward+backward, median of {repeats}: every registered method once "
          f"(C = {c} cells, {results[0]['calls']} loss calls) x S seeds, B = {batch}, K = {classes}")
    _print_table(["device", "S", "C", "B", "K", "loss calls", "one call ms", "per method ms", "one call vs per method"],
                 [[r["device"], str(r["S"]), str(r["C"]), str(r["B"]), str(r["K"]), str(r["calls"]),
                   f"{1e3 * r['one_call_s']:.2f}", f"{1e3 * r['per_method_s']:.2f}",
                   f"{r['per_method_s'] / r['one_call_s']:.2f}x"] for r in results])
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
        for dev in _devices(device):
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
                t_group = _timed(_train_cmd(dpath, labels, spec, proto, tmp / f"g-{model}-{dev.type}", dev))
                t_each = sum(_timed(_train_cmd(dpath, labels, format_cells([c]), proto,
                                               tmp / f"s-{model}-{dev.type}-{c.id}", dev)) for c in cells)
                ds = data.load_dataset(dpath)
                samples = _samples_per_epoch(len(ds.y_train), val_fraction, batch) * epochs * len(cells)
                macs = models.count_flops_per_sample(
                    models.build_model(model, 1, ds.input_shape, ds.num_classes, seed=0, **margs), ds.input_shape)
                peak = peak_bf16(device_name(dev))
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
             f"{r['one_by_one_s'] / r['group_s']:.1f}x", _pct(r["peak_fraction"])] for r in results]
    _print_table(["device", "data", "model", "group s", "one-by-one s", "group cells/h", "one-by-one cells/h",
                  "group samples/s", "one-by-one samples/s", "speed-up", "of bf16 peak"], rows)
    return results


def _pct(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{100 * fraction:.1f}%"


# ----------------------------------------------------------------------------- training step benchmark

STEP_MODELS = ("fastnet", "resnet18", "resnet34")
STEP_VARIANTS = ("stacked", "loop")                     # the default pair; stepvariants.VARIANTS has them all
CIFAR_SHAPE, CIFAR_CLASSES = (3, 32, 32), 10


def _sgd(params) -> torch.optim.Optimizer:
    """The engine's default optimizer (protocol.OptimizerConfig)."""
    from ..engine.protocol import OptimizerConfig

    o = OptimizerConfig()
    return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov, weight_decay=o.weight_decay)


def _step_fn(variant: str, name: str, num_models: int, model_args: dict, x: torch.Tensor, y: torch.Tensor,
             rates: torch.Tensor, dev: torch.device, compile_: bool, amp_dtype: torch.dtype | None = None):
    """One training step of M models on batch (x, y) as the engine takes it: autocast to
    ``amp_dtype`` (None: fp32), one GLS loss per model, SGD; ``variant`` is one of
    ``stepvariants.VARIANTS`` (``stacked``: one M-model stack, one loss call, one backward,
    one optimizer; ``loop``: M separate one-model stacks stepped one after another; ...)."""
    from . import stepvariants

    return stepvariants.build_step(variant, name, num_models, model_args, x, y, rates, dev, compile_, amp_dtype,
                                   _sgd, CIFAR_SHAPE, CIFAR_CLASSES)


def _release(dev: torch.device) -> None:
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()


def bench_step(device: str = "auto", model_names: list[str] | None = None, num_models: list[int] | None = None,
               batch: int | None = None, steps: int | None = None, variants: list[str] | None = None,
               quick: bool = False, compile_: bool = False, fast_kernels: bool = False,
               warmup: int | None = None, precision: str = "auto", repeatable: bool = False) -> list[dict]:
    """Median time of one training step (forward + backward + SGD) of M models on CIFAR-shaped
    batches (3x32x32, K=10), stacked (grouped convolutions) vs a loop over M separate models and
    the other ``stepvariants.VARIANTS``; samples/s, peak memory, and the fraction of the device's
    dense bf16 peak from counted FLOPs (forward MACs x 2 x 3 per sample per model).

    Defaults: fastnet, resnet18, resnet34; M = 1, 4, 18; batch 128; 10 timed steps after 3;
    stacked, loop; ``precision`` auto (the engine's: bf16 on CUDA, fp32 on the CPU), bf16, fp32
    or both; device ``auto`` = CUDA when available, else the CPU. ``quick`` (a CPU smoke run):
    width 0.125, M = 1, 2, batch 16, 3 steps after 1. The engine's deterministic kernels unless
    ``fast_kernels`` (cuDNN autotuning, TF32, non-deterministic algorithms). ``repeatable``: is
    the state after two steps of two more builds bit-identical? Rows say OOM, "n/a on CPU" (CUDA
    graphs), or "error: ..." (an alternative variant that fails), and the table goes on.
    """
    from ..engine import models, training as train
    from . import stepvariants

    model_names = list(model_names or STEP_MODELS)
    num_models = list(num_models or ((1, 2) if quick else (1, 4, 18)))
    variants = list(variants or STEP_VARIANTS)
    batch = batch or (16 if quick else 128)
    steps = steps or (3 if quick else 10)
    warmup = (1 if quick else 3) if warmup is None else warmup
    model_args = {"width": 0.125} if quick else {}
    for name in model_names:
        if name not in models.MODELS or name == "mlp":
            raise ValueError(f"bench step: model {name!r}; allowed: {', '.join(STEP_MODELS)} (or cnn)")
    for v in variants:
        if v not in stepvariants.VARIANTS:
            raise ValueError(f"bench step: variant {v!r}; allowed: {', '.join(stepvariants.VARIANTS)}")
    if compile_ and "graphs" in variants:
        raise ValueError("bench step: variant graphs does not combine with --compile (capture the eager step)")
    if min(num_models) < 1 or batch < 1 or steps < 1 or warmup < 0:
        raise ValueError("bench step: M, --batch and --steps must be >= 1, --warmup >= 0")
    # auto: the GPU when there is one, else the CPU (a full-size CPU run of these models is of no use)
    devices = _devices(device)[-1:] if device == "auto" else _devices(device)
    amp_of = {dev: stepvariants.amp_dtypes(precision, dev) for dev in devices}
    results = []
    for dev in devices:
        if fast_kernels:
            torch.use_deterministic_algorithms(False)
            if dev.type == "cuda":
                torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = True, False
                torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        else:
            train.set_determinism(dev)
        name_of_dev = device_name(dev)
        peak = peak_bf16(name_of_dev)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch, *CIFAR_SHAPE, generator=g).to(dev)   # each variant takes its layout
        y = torch.randint(0, CIFAR_CLASSES, (batch,), generator=g).to(dev)
        for name in model_names:
            macs = models.count_flops_per_sample(
                models.build_model(name, 1, CIFAR_SHAPE, CIFAR_CLASSES, seed=0, **model_args), CIFAR_SHAPE)
            for m in num_models:
                rates = torch.linspace(-2.0, 0.8, m).to(dev)
                for amp_dtype in amp_of[dev]:
                    for variant in variants:
                        label = variant + ("+compile" if compile_ else "")
                        row = {"device": dev.type, "device_name": name_of_dev, "model": name, "variant": label,
                               "precision": "fp32" if amp_dtype is None else "bf16", "M": m, "B": batch,
                               "macs_per_sample": macs, "status": "ok", "repeatable": None}
                        _release(dev)
                        if dev.type == "cuda":
                            torch.cuda.reset_peak_memory_stats(dev)
                        build = lambda: _step_fn(variant, name, m, model_args, x, y, rates, dev,  # noqa: E731
                                                 compile_, amp_dtype)
                        try:
                            step = build()
                            t = _median_time(step, dev, steps, warmup=warmup)
                            row["peak_bytes"] = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None
                            step = None
                            if repeatable:
                                row["repeatable"] = stepvariants.repeatable(build, lambda: (_sync(dev), _release(dev)))
                        except stepvariants.NotOnThisDevice as exc:
                            row["status"] = str(exc)
                        except Exception as exc:
                            if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc):
                                row["status"] = "OOM"
                            elif variant in STEP_VARIANTS:     # the engine's own way: a bug, not a row
                                raise
                            else:                              # an alternative that fails here: its row says so
                                row["status"] = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:60]}"
                        step = None
                        if row["status"] == "ok":
                            flops = 2 * 3 * macs * m * batch
                            row.update(step_s=t, samples_per_s=m * batch / t, flops_per_step=flops,
                                       flops_per_s=flops / t,
                                       peak_flops=peak[1] if peak else None,
                                       peak_fraction=flops / t / peak[1] if peak else None)
                        results.append(row)
                        _release(dev)
    for r in results:   # each variant against the loop over separate models, same model/M/precision/device
        loop = next((o for o in results if o["variant"].startswith("loop") and o["status"] == "ok" and
                     (o["device"], o["model"], o["M"], o["precision"]) ==
                     (r["device"], r["model"], r["M"], r["precision"])), None)
        r["speedup_vs_loop"] = loop["step_s"] / r["step_s"] if loop and r["status"] == "ok" else None
    names = sorted({f"{r['device_name']} ({peak_bf16(r['device_name'])[0]}: "
                    f"{peak_bf16(r['device_name'])[1] / 1e12:.0f} TFLOP/s)" if peak_bf16(r["device_name"])
                    else f"{r['device_name']} (no bf16 peak known)" for r in results})
    print(f"training step (forward + backward + SGD) of M models, CIFAR-shaped 3x32x32, K={CIFAR_CLASSES}, "
          f"batch {batch}{', width 0.125' if quick else ''}; median of {steps} steps after {warmup}; "
          f"precision {precision} (auto: bf16 autocast on CUDA, fp32 on CPU); layout channels-last on CUDA, "
          f"NCHW on CPU unless the variant names one; "
          f"{'autotuned kernels' if fast_kernels else 'deterministic kernels (as the engine)'} "
          f"(torch {torch.__version__})")
    print(f"FLOPs counted: forward MACs x 2 x 3 per sample per model; peak: {'; '.join(names)}")
    if repeatable:
        print("repeatable: two more builds, two steps each: trained state bit-identical (yes) or not (no)")
    rows = []
    for r in results:
        head = [r["device"], r["model"], r["variant"], r["precision"], str(r["M"]), str(r["B"])]
        if r["status"] != "ok":
            rows.append(head + [r["status"]] + ["-"] * 6)
            continue
        rows.append(head + [f"{1e3 * r['step_s']:.1f}", f"{r['samples_per_s']:.0f}",
                            "n/a" if r["peak_bytes"] is None else f"{r['peak_bytes'] / 2**20:.0f}",
                            f"{r['flops_per_s'] / 1e12:.3f}", _pct(r["peak_fraction"]),
                            "n/a" if r["speedup_vs_loop"] is None else f"{r['speedup_vs_loop']:.2f}x",
                            "-" if r["repeatable"] is None else "yes" if r["repeatable"] else "no"])
    _print_table(STEP_HEADER, rows)
    return results


STEP_HEADER = ["device", "model", "variant", "precision", "M", "B", "step ms", "model-samples/s", "peak MiB",
               "TFLOP/s", "of bf16 peak", "vs loop", "repeatable"]
