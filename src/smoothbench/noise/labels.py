"""The noise step (``smoothbench noise``): corrupt a dataset file's training labels with a
registered noise kind, and write the noisy labels (``.npz``) and their realised statistics
(``.json``) atomically.

What each kind does is its registry entry's (``registry.py`` and the kind modules); this
module turns a dataset file and a setting into the kind's ``NoiseJob`` and its result into
the two files of docs/formats.md.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..core import files
from ..core.vocabulary import derive_seed, fmt_rate
from ..data.datasets import load_dataset
from .registry import NoiseJob, check_rate, get, with_defaults
from .sampling import empirical_transition


def noise_stats(clean: Any, noisy: Any, num_classes: int, kind: str, rate: float | str, seed: int) -> dict:
    """JSON-ready realised statistics of a corruption (the ``.json`` beside the labels).

    ``per_class_rate`` is 1 - the diagonal of ``empirical_transition``: 0 for absent classes.
    """
    t = empirical_transition(clean, noisy, num_classes)
    c, n = np.asarray(clean), np.asarray(noisy)
    return {
        "kind": kind,
        "rate": fmt_rate(rate),
        "seed": int(seed),
        "num_samples": int(c.size),
        "num_classes": int(num_classes),
        "realised_rate": float(np.mean(c != n)) if c.size else 0.0,
        "per_class_rate": [float(1.0 - v) for v in np.diag(t)],
        "empirical_transition": t.tolist(),
    }


def make_noisy_labels(data_path: str | os.PathLike, kind: str, rate: float | str, seed: int,
                      out: str | os.PathLike, options: dict | None = None, noise_seed: int | None = None) -> dict:
    """``smoothbench noise``: corrupt a dataset file's training labels; write ``out`` (.npz) and its .json stats.

    ``seed`` is the study's seed (recorded: it names the group). The draw's seed comes
    from ``noise_seed`` (default: ``seed``): ``derive_seed("noise", dataset, kind,
    fmt_rate(rate), noise_seed)`` for a numeric kind (its ``inverse_cdf`` sampler, instance
    noise), ``noise_seed`` itself for the ``reference`` sampler (the reference code's
    ``random_state``). ``options`` are the kind's (its registry entry's, defaults filled in);
    an option it does not take is a one-line error. For a named kind (``human``,
    ``annotations``) the rate is the label set and the seeds are only recorded. Returns the stats.
    """
    entry = get(kind)
    options = with_defaults(kind, options)
    noise_seed = seed if noise_seed is None else int(noise_seed)
    out = Path(out)
    if out.suffix != ".npz":
        raise ValueError(f"--out {out} must end with .npz")

    ds = load_dataset(data_path)
    k, y = int(ds.num_classes), np.asarray(ds.y_train, dtype=np.int64)
    if entry.numeric:
        r: float | str = check_rate(kind, rate, k)
        rate_text = fmt_rate(r)
        draw_seed: int | None = derive_seed("noise", ds.name, kind, rate_text, noise_seed)
    else:
        r = rate_text = str(rate)
        draw_seed = None
    job = NoiseJob(dataset=ds.name, features=ds.x_train, labels=y, num_classes=k, rate=r, options=options,
                   draw_seed=draw_seed, noise_seed=noise_seed)
    noisy, t = entry.corrupt_job(job)

    stats = noise_stats(y, noisy, k, kind, rate_text, seed)
    stats["noise_seed"] = noise_seed
    stats["options"] = {key: value for key, value in sorted(options.items()) if value is not None}
    files.write_json(out.with_suffix(".json"), stats)
    arrays = {"noisy_labels": noisy.astype(np.int64), "clean_labels": y, "transition": t.astype(np.float64),
              "kind": np.array(kind), "rate": np.array(rate_text), "seed": np.array(seed, dtype=np.int64),
              "noise_seed": np.array(noise_seed, dtype=np.int64), "dataset_hash": np.array(str(ds.content_hash))}
    files.write_npz(out, arrays)
    print(f"noise: {ds.name} {kind} {rate_text} seed {seed}: realised rate {stats['realised_rate']:.4f} "
          f"on {stats['num_samples']} labels -> {out}", file=sys.stderr)
    return stats
