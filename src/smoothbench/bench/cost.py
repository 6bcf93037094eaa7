"""What a study costs in GPU-hours, from epoch times measured with the engine itself
(``smoothbench bench cost``).

A training job is a setting (dataset, noise kind, noise rate) with all its S seeds
(``train.train_setting``): for each distinct warm-up, one CE model per seed, then for each
variant a stack of S seeds x C cells, in passes when the stack does not fit the device's
memory (``train.plan_passes``). So a study's cost is a sum over its jobs of
``epochs x seconds per epoch of each stack`` (all its passes), and that time is measured:
the engine trains the job's stack (the protocol's model, width, precision, batch size,
augmentation, held-out split and per-epoch evaluation; the job's seeds and cells; its own
passes at this device's memory budget) on synthetic images of the dataset's shape, ``images``
training images (test images in the dataset's proportion) for 3 epochs; per pass the median
of epochs 2 and 3 (read off the engine's per-epoch progress), summed over the passes, is one
epoch without start-up. An epoch scales with the number of images (training and test alike),
so it is scaled to the dataset's size (its registry entry's ``sizes``). Not counted:
checkpoint writes (every ``checkpoint_every`` epochs), data preparation, the end-of-training
evaluation.
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

from ..study import grid

# the measurement's optimizer: the same for every phase (its settings do not change the compute)
MEASURE_OPTIMIZER = {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}
EPOCHS = 3               # epochs of a measurement: the first warms up, the others are timed
TINY_WIDTH = 0.0625


@dataclass(frozen=True)
class Phase:
    """``epochs`` epochs of one job's stack: a warm-up (one CE model per seed, ``warmup``) or a
    variant's own phase (each seed x ``cells``), of a dataset's protocol, for ``seeds`` seeds."""

    dataset: str
    protocol: str          # the protocol's compute-relevant part, as key-sorted JSON
    seeds: int
    cells: str             # the job's cells spec (a warm-up's passes follow the variant's seeds per pass)
    epochs: int
    warmup: bool = False

    @property
    def key(self) -> tuple:
        """What the compute depends on: the cells' parameter values do not enter it, their
        methods do (each method family is its own loss call)."""
        from ..methods import parse_cells

        return (self.dataset, self.protocol, self.seeds, tuple(c.method for c in parse_cells(self.cells)),
                self.warmup)

    @property
    def num_models(self) -> int:
        return self.seeds * (1 if self.warmup else len(self.cells.split(",")))


def _compute_part(proto: dict) -> str:
    keep = ("model", "model_args", "init", "precision", "batch_size", "drop_last", "val_fraction", "augment",
            "ece_bins")
    return json.dumps({k: proto[k] for k in keep}, sort_keys=True)


def study_phases(params: dict) -> list[Phase]:
    """Every stack a study trains: per job, each distinct warm-up and each variant."""
    out = []
    for job in grid.expand_jobs(params):
        g = job.groups[0]
        proto = grid.protocol_for(params, g.dataset)
        part, seeds = _compute_part(proto), len(job.groups)
        warmups = {}
        for var in proto["variants"].values():
            w = var["warmup"]
            if w["epochs"]:
                warmups[json.dumps({k: v for k, v in w.items() if k != "branch"}, sort_keys=True)] = w["epochs"]
        out += [Phase(g.dataset, part, seeds, g.cells_spec, e, warmup=True) for e in warmups.values()]
        out += [Phase(g.dataset, part, seeds, g.cells_spec, var["epochs"]) for var in proto["variants"].values()]
    return out


def study_cost(params: dict, seconds_per_epoch: Callable[[Phase], float]) -> float:
    """GPU-hours: the sum over the study's stacks of epochs x seconds per epoch (at full size)."""
    return sum(p.epochs * seconds_per_epoch(p) for p in study_phases(params)) / 3600


# ----------------------------------------------------------------------------- measuring

def _synthetic(path: Path, dataset: str, images: int, seeds: int) -> list[Path]:
    """Random images of ``dataset``'s shape and classes, and one noisy-label file per seed."""
    import contextlib
    import io

    from .. import data
    from ..data import datasets
    from ..noise import labels as noise

    spec = data.get_spec(dataset)
    n_train, n_test = spec.sizes
    rng = np.random.default_rng(0)
    n_t = max(1, round(images * n_test / n_train))
    k = spec.num_classes
    if not path.exists():
        datasets.save_dataset(path, f"synthetic-{dataset}",
                          rng.integers(0, 256, (images, *spec.input_shape), dtype=np.uint8), rng.integers(0, k, images),
                          rng.integers(0, 256, (n_t, *spec.input_shape), dtype=np.uint8), rng.integers(0, k, n_t),
                          [f"c{i}" for i in range(k)])
    labels = [path.with_name(f"{path.stem}-s{s}.labels.npz") for s in range(seeds)]
    for s, out in enumerate(labels):
        if not out.exists():
            with contextlib.redirect_stderr(io.StringIO()):           # its one line per file
                noise.make_noisy_labels(str(path), "symmetric", 0.4, s, str(out))
    return labels


class _EpochClock:
    """Stands in for the engine's progress bar (``tqdm``): each stack's run advances it by 0 as
    it starts, then by 1 after each epoch (after the epoch's evaluation, which synchronises)."""

    def __init__(self, *args, **kwargs):
        self.marks: list[tuple[float, int]] = []

    def __enter__(self) -> "_EpochClock":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def update(self, n: int = 1) -> None:
        self.marks.append((time.perf_counter(), n))


def _seeds_per_pass(phase: Phase, proto: dict, device: str) -> tuple[int, int]:
    """(seeds per pass of the job's variant stack, bytes per model), as the engine plans them
    (``train.plan_passes`` at this device's memory budget)."""
    from .. import data
    from ..engine import training as train
    from ..engine.device import resolve_device
    from ..engine.models import measure

    dev = resolve_device(device)
    spec = data.get_spec(phase.dataset)
    bf16 = proto["precision"] == "bf16" or (proto["precision"] == "auto" and dev.type == "cuda")
    per_model = measure.memory_per_model(proto["model"], spec.input_shape, spec.num_classes, proto["batch_size"],
                                         2 if bf16 else 4, **proto["model_args"])
    seeds, _ = train.plan_passes(phase.seeds, len(phase.cells.split(",")), per_model, train.memory_budget(dev, None))
    return seeds, per_model


def measure_epoch(phase: Phase, images: int, device: str, workdir: Path, tiny: bool = False,
                  epochs: int = EPOCHS) -> tuple[float, int]:
    """(seconds per epoch of ``phase``'s stack on ``images`` synthetic training images, passes):
    per pass the median of epochs 2..``epochs`` of one engine run (the first epoch warms up),
    summed over the passes."""
    import tqdm

    from ..engine import training as train
    from ..methods import parse_cells

    proto = json.loads(phase.protocol)
    if tiny and proto["model"] != "mlp":
        proto["model_args"] = {**proto["model_args"], "width": TINY_WIDTH}
    labels = _synthetic(workdir / f"{phase.dataset}-{images}.npz", phase.dataset, images, phase.seeds)
    budget = None
    if phase.warmup:   # one CE model per seed, as many seeds per pass as the variant's stack has
        seeds, per_model = _seeds_per_pass(phase, proto, device)
        budget = None if seeds == phase.seeds else (seeds * per_model + 1) / 2**20
    cells = parse_cells("ce" if phase.warmup else phase.cells)
    proto.update(device=device, checkpoint_every=epochs + 1,
                 variants={"measure": {"epochs": epochs, "optimizer": dict(MEASURE_OPTIMIZER)}})
    clocks: list[_EpochClock] = []
    owners = [m for m in (tqdm, train) if hasattr(m, "tqdm")]      # the engine imports it where it runs
    real = [m.tqdm for m in owners]
    for m in owners:
        m.tqdm = lambda *a, **k: clocks.append(_EpochClock()) or clocks[-1]   # noqa: E731
    try:
        train.train_setting(str(workdir / f"{phase.dataset}-{images}.npz"), [str(p) for p in labels], cells, proto,
                            [str(workdir / f"run-s{s}") for s in range(phase.seeds)], str(workdir / "checkpoints"),
                            device, False, budget)
    finally:
        for m, r in zip(owners, real):
            m.tqdm = r
    marks = [mark for clock in clocks for mark in clock.marks]
    passes: list[list[float]] = []
    for t, n in marks:                     # each pass: an advance by 0 as it starts, then one per epoch
        if n == 0:
            passes.append([t])
        elif passes and n == 1:
            passes[-1].append(t)
    if len(clocks) != 1 or not passes or any(len(p) != epochs + 1 for p in passes) or \
            sum(n for _, n in marks) != epochs * len(passes):
        raise RuntimeError(f"bench cost: the engine's progress ({[n for _, n in marks]}) is not one start and one "
                           f"advance per epoch of each of its stacks; the measurement reads those")
    return sum(statistics.median(b - a for a, b in zip(p[1:], p[2:])) for p in passes), len(passes)


def cost_tables(presets: list[str], device: str = "auto", images: int | None = None, tiny: bool = False) -> list[dict]:
    """Measure every distinct stack of the presets once, then print the measurements and each
    preset's GPU-hours. ``tiny``: a smoke run (models at width 1/16, 32 images, 2 epochs)."""
    import torch

    from .table import device_name, print_table
    from .. import data
    from ..engine.device import resolve_device

    images = (32 if tiny else 256) if images is None else images
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
    measurable = [name for name, spec in data.DATASETS.items() if spec.is_image]  # the synthetic data are images
    for p, study in studies.items():
        for ds in study["datasets"]:
            if ds not in measurable:
                why = "holds vectors, and the cost is measured on synthetic images" if ds in data.DATASETS else \
                    "is not registered, so its size is not known"
                raise ValueError(f"bench cost: {p}: dataset {ds} {why}; allowed: {', '.join(measurable)}")
    per_epoch: dict[tuple, float] = {}
    smoke = "CPU smoke run, NOT the presets' cost" if dev.type != "cuda" else "tiny smoke run, NOT the presets' cost"
    label = f"{smoke + ': ' if tiny or dev.type != 'cuda' else ''}{device_name(dev)}, torch {torch.__version__}"
    print(f"measured epochs ({label}); synthetic {images} training images per measurement"
          f"{f', models at width {TINY_WIDTH}' if tiny else ''}, scaled to the dataset's size; s/epoch: per pass "
          f"{'epoch 2' if epochs == 2 else f'the median of epochs 2-{epochs}'} of one engine run (training and "
          f"per-epoch evaluation), summed over the passes", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="smoothbench-cost-") as tmp:
        for study in studies.values():
            for phase in study_phases(study):
                if phase.key in per_epoch:
                    continue
                work = Path(tmp) / f"m{len(per_epoch)}"
                work.mkdir()
                if dev.type == "cuda":     # the engine plans its passes on the free memory: free the cache
                    import gc

                    gc.collect()
                    torch.cuda.empty_cache()
                t, passes = measure_epoch(phase, images, str(dev), work, tiny, epochs)
                scale = data.get_spec(phase.dataset).sizes[0] / images
                per_epoch[phase.key] = t * scale
                print(f"measured: {phase.dataset}, {phase.num_models} models in {passes} pass(es): {t:.3f} s per "
                      f"epoch of {images} images", file=sys.stderr, flush=True)
                proto = json.loads(phase.protocol)
                rows.append([phase.dataset, proto["model"], proto["precision"], "warm-up" if phase.warmup else "variant",
                             f"{phase.seeds} x {phase.num_models // phase.seeds}", str(passes),
                             f"{proto['val_fraction']:g}", f"{t:.3f}", f"{t * scale:.1f}",
                             f"{t * scale / phase.num_models:.2f}"])
    print_table(["dataset", "model", "precision", "stack", "seeds x cells", "passes", "val_fraction",
                 f"s/epoch ({images} images)", "s/epoch (full size)", "s per model-epoch"], rows)
    out = []
    for path, study in studies.items():
        hours = study_cost(study, lambda p: per_epoch[p.key])
        groups = grid.expand_groups(study)
        out.append({"preset": path, "jobs": len(grid.expand_jobs(study)), "groups": len(groups),
                    "cells": sum(g.n_cells for g in groups), "model_epochs": grid.model_epochs(study),
                    "gpu_hours": hours})
    print()
    print(f"GPU-hours per preset ({label}): the sum over its jobs of epochs x measured s/epoch of each stack")
    print_table(["preset", "jobs", "groups", "cells", "model-epochs", "GPU-hours", "days on one GPU",
                 "s per model-epoch"],
                [[Path(r["preset"]).stem, str(r["jobs"]), str(r["groups"]), str(r["cells"]), f"{r['model_epochs']:,}",
                  f"{r['gpu_hours']:.1f}", f"{r['gpu_hours'] / 24:.1f}",
                  f"{r['gpu_hours'] * 3600 / r['model_epochs']:.2f}"] for r in out])
    return out
