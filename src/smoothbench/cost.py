"""What a study costs in GPU-hours, from epoch times measured with the engine itself
(``smoothbench bench cost``).

A group trains, for each distinct warm-up of its protocol, one model for the warm-up's
epochs, then for each variant a stack of one model per cell for the variant's epochs
(``train.GroupTrainer``). So a study's cost is a sum over its groups of
``epochs x seconds per epoch of a stack of M models``, and that time is measured: the
engine trains the protocol's model (its width, precision, batch size, augmentation,
held-out split and per-epoch evaluation) on CIFAR-shaped synthetic data of ``images``
training images (test images in the dataset's proportion), with cells of the group's
kinds, for 3 epochs; the median of epochs 2 and 3 (read off the engine's per-epoch
progress) is one epoch, without start-up. An epoch scales with the number of images
(training and test alike), so it is scaled to the dataset's size. Not counted: checkpoint
writes (every ``checkpoint_every`` epochs), data preparation, the end-of-training evaluation.
"""

from __future__ import annotations

import copy
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import grid

# training / test images of the datasets a cost can be computed for (the published splits)
SIZES = {"cifar10": (50_000, 10_000), "cifar100": (50_000, 10_000), "mnist": (60_000, 10_000),
         "fashion_mnist": (60_000, 10_000)}
# the measurement's optimizer: the same for every phase (its settings do not change the compute)
MEASURE_OPTIMIZER = {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}
EPOCHS = 3               # epochs of a measurement: the first warms up, the others are timed
TINY_WIDTH = 0.0625


@dataclass(frozen=True)
class Phase:
    """``epochs`` epochs of one group's stack of ``cells`` (one model each), of a dataset's protocol."""

    dataset: str
    protocol: str          # the protocol's compute-relevant part, as key-sorted JSON
    cells: str             # cells spec (the warm-up: one CE model)
    epochs: int

    @property
    def key(self) -> tuple:
        """What the compute depends on: the cells' rates do not enter it, their kinds do
        (flip cells draw labels each step, BCE cells take another loss)."""
        from .cells import parse_cells

        cells = parse_cells(self.cells)
        return (self.dataset, self.protocol, len(cells), sum(c.method == "flip" for c in cells),
                sum(c.is_bce for c in cells))

    @property
    def num_models(self) -> int:
        return len(self.cells.split(","))


def _compute_part(proto: dict) -> str:
    keep = ("model", "model_args", "init", "precision", "batch_size", "drop_last", "val_fraction", "augment",
            "ece_bins")
    return json.dumps({k: proto[k] for k in keep}, sort_keys=True)


def study_phases(params: dict) -> list[Phase]:
    """Every stack a study trains: per group, each distinct warm-up (one model) and each variant."""
    out = []
    for g in grid.expand_groups(params):
        proto = grid.protocol_for(params, g.dataset)
        part = _compute_part(proto)
        warmups = {}
        for var in proto["variants"].values():
            w = var["warmup"]
            if w["epochs"]:
                warmups[json.dumps({k: v for k, v in w.items() if k != "branch"}, sort_keys=True)] = w["epochs"]
        out += [Phase(g.dataset, part, "ce:0", e) for e in warmups.values()]
        out += [Phase(g.dataset, part, g.cells_spec, var["epochs"]) for var in proto["variants"].values()]
    return out


def study_cost(params: dict, seconds_per_epoch: Callable[[Phase], float]) -> float:
    """GPU-hours: the sum over the study's stacks of epochs x seconds per epoch (at full size)."""
    return sum(p.epochs * seconds_per_epoch(p) for p in study_phases(params)) / 3600


# ----------------------------------------------------------------------------- measuring

def _synthetic(path: Path, dataset: str, images: int, seed: int = 0) -> None:
    import contextlib
    import io

    from . import data, noise

    spec = data.get_spec(dataset)
    n_train, n_test = SIZES[dataset]
    rng = np.random.default_rng(seed)
    n_t = max(1, round(images * n_test / n_train))
    k = spec.num_classes
    data.save_dataset(path, f"synthetic-{dataset}", rng.integers(0, 256, (images, *spec.input_shape), dtype=np.uint8),
                      rng.integers(0, k, images), rng.integers(0, 256, (n_t, *spec.input_shape), dtype=np.uint8),
                      rng.integers(0, k, n_t), [f"c{i}" for i in range(k)])
    with contextlib.redirect_stderr(io.StringIO()):           # its one line per file
        noise.make_noisy_labels(str(path), "symmetric", 0.4, 0, str(path.with_suffix(".labels.npz")))


class _EpochClock:
    """Stands in for the engine's progress bar (``tqdm``), which it advances once per epoch:
    records when each advance happens (after the epoch's evaluation, which synchronises)."""

    def __init__(self, *args, **kwargs):
        self.marks: list[tuple[float, int]] = []

    def __enter__(self) -> "_EpochClock":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def update(self, n: int = 1) -> None:
        self.marks.append((time.perf_counter(), n))


def measure_epoch(phase: Phase, images: int, device: str, workdir: Path, tiny: bool = False,
                  epochs: int = EPOCHS) -> float:
    """Seconds per epoch of ``phase``'s stack on ``images`` synthetic training images: the
    median of epochs 2..``epochs`` of one engine run (the first epoch warms up)."""
    import tqdm

    from . import train
    from .cells import parse_cells

    data_path = workdir / f"{phase.dataset}-{images}.npz"
    if not data_path.exists():
        _synthetic(data_path, phase.dataset, images)
    proto = json.loads(phase.protocol)
    if tiny and proto["model"] != "mlp":
        proto["model_args"] = {**proto["model_args"], "width": TINY_WIDTH}
    proto.update(device=device, checkpoint_every=epochs + 1,
                 variants={"measure": {"epochs": epochs, "optimizer": dict(MEASURE_OPTIMIZER)}})
    clocks: list[_EpochClock] = []
    owners = [m for m in (tqdm, train) if hasattr(m, "tqdm")]      # the engine imports it where it runs
    real = [m.tqdm for m in owners]
    for m in owners:
        m.tqdm = lambda *a, **k: clocks.append(_EpochClock()) or clocks[-1]   # noqa: E731
    try:
        train.train_group(str(data_path), str(data_path.with_suffix(".labels.npz")), parse_cells(phase.cells),
                          proto, str(workdir / "run"), progress=False)
    finally:
        for m, r in zip(owners, real):
            m.tqdm = r
    ends = [t for clock in clocks for t, n in clock.marks if n == 1]
    if len(clocks) != 1 or len(ends) != epochs:
        raise RuntimeError(f"bench cost: the engine advanced its progress {len(ends)} times for {epochs} epochs; "
                           f"the measurement needs one advance per epoch")
    return statistics.median(b - a for a, b in zip(ends, ends[1:]))


def cost_tables(presets: list[str], device: str = "auto", images: int | None = None, tiny: bool = False) -> list[dict]:
    """Measure every distinct stack of the presets once, then print the measurements and each
    preset's GPU-hours. ``tiny``: a smoke run (models at width 1/16, 32 images, 2 epochs)."""
    import torch

    from .bench import _print_table, device_name
    from .device import resolve_device

    images = (32 if tiny else 384) if images is None else images
    epochs = 2 if tiny else EPOCHS
    if images < 1:
        raise ValueError(f"bench cost: --images {images}; allowed >= 1")
    if not presets:
        raise ValueError("bench cost: no preset given (e.g. --presets config/paper-cifar10.yaml)")
    dev = resolve_device(device)
    if dev.type != "cuda" and not tiny:
        raise ValueError("bench cost: the presets' full-size stacks on the CPU take hours and tens of GiB; "
                         "use --device cuda, or --quick for a smoke run")
    studies = {p: grid.validate_params(grid.read_study(p), source=p) for p in presets}
    for p, study in studies.items():
        for ds in study["datasets"]:
            if ds not in SIZES:
                raise ValueError(f"bench cost: {p}: dataset {ds}: its size is not known; allowed: {', '.join(SIZES)}")
    per_epoch: dict[tuple, float] = {}
    smoke = "CPU smoke run, NOT the presets' cost" if dev.type != "cuda" else "tiny smoke run, NOT the presets' cost"
    label = f"{smoke + ': ' if tiny or dev.type != 'cuda' else ''}{device_name(dev)}, torch {torch.__version__}"
    print(f"measured epochs ({label}); synthetic {images} training images per measurement"
          f"{f', models at width {TINY_WIDTH}' if tiny else ''}, scaled to the dataset's size; s/epoch: "
          f"{'epoch 2' if epochs == 2 else f'the median of epochs 2-{epochs}'} of one engine run (training and "
          f"per-epoch evaluation)", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="smoothbench-cost-") as tmp:
        for study in studies.values():
            for phase in study_phases(study):
                if phase.key in per_epoch:
                    continue
                work = Path(tmp) / f"m{len(per_epoch)}"
                work.mkdir()
                t = measure_epoch(phase, images, str(dev), work, tiny, epochs)
                scale = SIZES[phase.dataset][0] / images
                print(f"measured: {phase.dataset}, M = {phase.num_models}: {t:.3f} s per epoch of {images} images",
                      file=sys.stderr, flush=True)
                per_epoch[phase.key] = t * scale
                proto = json.loads(phase.protocol)
                rows.append([phase.dataset, proto["model"], proto["precision"], str(phase.num_models),
                             f"{proto['val_fraction']:g}", f"{t:.3f}", f"{t * scale:.1f}",
                             f"{t * scale / phase.num_models:.2f}"])
    _print_table(["dataset", "model", "precision", "M", "val_fraction", f"s/epoch ({images} images)",
                  "s/epoch (full size)", "s per model-epoch"], rows)
    out = []
    for path, study in studies.items():
        hours = study_cost(study, lambda p: per_epoch[p.key])
        groups = grid.expand_groups(study)
        out.append({"preset": path, "groups": len(groups), "cells": sum(g.n_cells for g in groups),
                    "model_epochs": grid.model_epochs(study), "gpu_hours": hours})
    print()
    print(f"GPU-hours per preset ({label}): the sum over its groups of epochs x measured s/epoch of each stack")
    _print_table(["preset", "groups", "cells", "model-epochs", "GPU-hours", "days on one GPU", "s per model-epoch"],
                 [[Path(r["preset"]).stem, str(r["groups"]), str(r["cells"]), f"{r['model_epochs']:,}",
                   f"{r['gpu_hours']:.1f}", f"{r['gpu_hours'] / 24:.1f}",
                   f"{r['gpu_hours'] * 3600 / r['model_epochs']:.2f}"] for r in out])
    return out
