"""``smoothbench bench step``: one training step of M models on CIFAR-shaped batches, stacked
against a loop over separate models and the other ways of ``stepvariants``, with peak memory and
the fraction of the device's bf16 peak from counted FLOPs.
"""

from __future__ import annotations

import gc

import torch

from . import table
from .table import median_time, percent, print_table, sync

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
    ``fast_kernels`` (cuDNN autotuning, TF32, non-deterministic algorithms; oneDNN on the CPU). ``repeatable``: is
    the state after two steps of two more builds bit-identical? Rows say OOM, "n/a on CPU" (CUDA
    graphs), or "error: ..." (an alternative variant that fails), and the table goes on.
    """
    from ..engine import models, training as train
    from ..engine.models import measure
    from . import stepvariants

    model_names = list(model_names or STEP_MODELS)
    num_models = list(num_models or ((1, 2) if quick else (1, 4, 18)))
    variants = list(variants or STEP_VARIANTS)
    batch = batch or (16 if quick else 128)
    steps = steps or (3 if quick else 10)
    warmup = (1 if quick else 3) if warmup is None else warmup
    model_args = {"width": 0.125} if quick else {}
    for name in model_names:
        # image models whose channels scale with a width (the quick configuration's)
        image_models = [n for n in models.names() if "image" in models.get(n).inputs
                        and "width" in {a.name for a in models.get(n).args}]
        if name not in image_models:
            others = [n for n in image_models if n not in STEP_MODELS]
            raise ValueError(f"bench step: model {name!r}; allowed: {', '.join(STEP_MODELS)}"
                             + (f" (or {', '.join(others)})" if others else ""))
    for v in variants:
        if v not in stepvariants.VARIANTS:
            raise ValueError(f"bench step: variant {v!r}; allowed: {', '.join(stepvariants.VARIANTS)}")
    if compile_ and "graphs" in variants:
        raise ValueError("bench step: variant graphs does not combine with --compile (capture the eager step)")
    if min(num_models) < 1 or batch < 1 or steps < 1 or warmup < 0:
        raise ValueError("bench step: M, --batch and --steps must be >= 1, --warmup >= 0")
    # auto: the GPU when there is one, else the CPU (a full-size CPU run of these models is of no use)
    devices = table.devices(device)[-1:] if device == "auto" else table.devices(device)
    amp_of = {dev: stepvariants.amp_dtypes(precision, dev) for dev in devices}
    results = []
    for dev in devices:
        if fast_kernels:
            torch.use_deterministic_algorithms(False)
            torch.backends.mkldnn.enabled = True
            if dev.type == "cuda":
                torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = True, False
                torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        else:
            train.set_determinism(dev)
        name_of_dev = table.device_name(dev)
        peak = table.peak_bf16(name_of_dev)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch, *CIFAR_SHAPE, generator=g).to(dev)   # each variant takes its layout
        y = torch.randint(0, CIFAR_CLASSES, (batch,), generator=g).to(dev)
        for name in model_names:
            macs = measure.count_flops_per_sample(
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
                            t = median_time(step, dev, steps, warmup=warmup)
                            row["peak_bytes"] = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None
                            step = None
                            if repeatable:
                                row["repeatable"] = stepvariants.repeatable(build, lambda: (sync(dev), _release(dev)))
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
    names = sorted({f"{r['device_name']} ({table.peak_bf16(r['device_name'])[0]}: "
                    f"{table.peak_bf16(r['device_name'])[1] / 1e12:.0f} TFLOP/s)" if table.peak_bf16(r["device_name"])
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
                            f"{r['flops_per_s'] / 1e12:.3f}", percent(r["peak_fraction"]),
                            "n/a" if r["speedup_vs_loop"] is None else f"{r['speedup_vs_loop']:.2f}x",
                            "-" if r["repeatable"] is None else "yes" if r["repeatable"] else "no"])
    print_table(STEP_HEADER, rows)
    return results


STEP_HEADER = ["device", "model", "variant", "precision", "M", "B", "step ms", "model-samples/s", "peak MiB",
               "TFLOP/s", "of bf16 peak", "vs loop", "repeatable"]
