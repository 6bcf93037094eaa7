"""``smoothbench bench train --study [FILE]``: a study's training job against the ways to run
the same cells without it, side by side in one run, wall time including process start.

- **job**: one ``smoothbench train`` process for the setting, every seed and cell in one stack
  (what the workflow runs);
- **per group**: one process per seed, its cells stacked (a group at a time);
- **per cell**: one process per seed and cell (how a script that trains one model at a time
  runs them).

All three train the same cells under the study's own protocol on the CPU (one thread each),
on the study's own data and noise; each prints cells per hour.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from .table import print_table
from .train import timed_train


def bench_study(study: str | Path | None = None, setting: str | None = None, seeds: int | None = 3) -> list[dict]:
    """Time the training job of one setting of ``study`` (default: the checkout's params.yaml;
    the setting ``DATASET/KIND/RATE`` default: the study's first job) for its first ``seeds``
    seeds (None: all) as one job, one process per group, and one process per cell."""
    import torch

    from ..data import datasets as data
    from ..study import grid
    from ..noise import labels as noise
    from ..methods import format_cells

    path = Path(study) if study else Path("params.yaml")
    params = grid.load_params(path)
    jobs = grid.expand_jobs(params)
    if setting:
        by = {"/".join((j.dataset, j.noise_kind, j.noise_rate)): j for j in jobs}
        if setting not in by:
            raise ValueError(f"bench train: --setting {setting!r} is not a setting of {path}; its settings: "
                             f"{', '.join(by)}")
        job = by[setting]
    else:
        job = jobs[0]
    groups = list(job.groups[:seeds] if seeds else job.groups)
    if seeds is not None and seeds < 1:
        raise ValueError(f"bench train: --seeds {seeds}: must be >= 1")
    cells = list(groups[0].cells)
    proto = dict(grid.protocol_for(params, job.dataset), device="cpu")
    spec = format_cells(cells)
    with tempfile.TemporaryDirectory(prefix="smoothbench-bench-") as tmp:
        tmp = Path(tmp)
        dpath = tmp / f"{job.dataset}.npz"
        data.build_dataset(job.dataset, dpath, cache_dir=params["data"]["cache_dir"])
        labels = []
        for g in groups:
            labels.append(tmp / f"labels-s{g.seed}.npz")
            noise.make_noisy_labels(str(dpath), job.noise_kind, job.noise_rate, g.seed, str(labels[-1]),
                                    noise_seed=params["noise_seed"])
        t_job = timed_train(dpath, labels, spec, proto, [tmp / "job" / f"s{g.seed}" for g in groups], "cpu", 1)
        t_group = sum(timed_train(dpath, [lab], spec, proto, [tmp / "group" / f"s{g.seed}"], "cpu", 1)
                      for g, lab in zip(groups, labels))
        t_cell = sum(timed_train(dpath, [lab], format_cells([c]), proto, [tmp / "cell" / f"s{g.seed}-{c.id}"],
                                 "cpu", 1)
                     for g, lab in zip(groups, labels) for c in cells)
    n = len(groups) * len(cells)
    rows = [("job (one stack)", 1, t_job), ("per group (one per seed)", len(groups), t_group),
            ("per cell", n, t_cell)]
    results = [{"how": how, "processes": procs, "seconds": t, "cells": n, "cells_per_h": n / t * 3600,
                "speedup": t / t_job} for how, procs, t in rows]
    print(f"training job of {job.id} ({path.name}): {len(groups)} seeds x {len(cells)} cells, the study's "
          f"protocol ({proto['model']} {proto['model_args']}), CPU, one thread per process; wall time including "
          f"process start (torch {torch.__version__})")
    print_table(["how", "processes", "s", "cells/h", "job's speed-up"],
                [[r["how"], str(r["processes"]), f"{r['seconds']:.1f}", f"{r['cells_per_h']:.0f}",
                  f"{r['speedup']:.1f}x"] for r in results])
    return results
