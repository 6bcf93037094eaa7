"""The benchmarks' shared parts: one table printer (Markdown, right-aligned columns), the
devices a benchmark runs on, its timer, and the accelerator's name and dense bf16 peak.
"""

from __future__ import annotations

import platform
import statistics
import time

import torch


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



def devices(requested: str) -> list[torch.device]:
    """``auto``: the CPU, and CUDA when present; else the one device asked for."""
    if requested == "auto":
        return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    return [torch.device(requested)]


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def median_time(fn, dev: torch.device, repeats: int, warmup: int = 3) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after ``warmup`` untimed ones, the device
    waited for after each."""
    for _ in range(warmup):
        fn()
    sync(dev)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(dev)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def print_table(header: list[str], rows: list[list[str]]) -> None:
    """Print a Markdown table, every column right-aligned to its widest cell."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("| " + " | ".join(h.rjust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.rjust(w) for c, w in zip(r, widths)) + " |")


def percent(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{100 * fraction:.1f}%"
