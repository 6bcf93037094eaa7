"""Human noise: the CIFAR-N label sets (Wei et al., ICLR 2022), the registry entry ``human``.

CIFAR-10N and CIFAR-100N are real human annotations of the CIFAR training images. A label set
(``aggre``, ``random1``..``3``, ``worst`` for CIFAR-10; ``noisy100`` for CIFAR-100) is the
kind's "rate"; its labels are read from the published file, not drawn, so the seeds are only
recorded. ``CIFAR-10_human.pt`` / ``CIFAR-100_human.pt`` (github.com/UCSC-REAL/cifar-10-100n,
folder ``data/``) are pickled dicts of NumPy arrays; they are read with
``torch.load(weights_only=True)``, allowing only the NumPy types they hold, so a tampered file
cannot run code. ``load_human_labels`` checks the labels (range, length, the file's clean
labels equal to the dataset's).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .registry import NoiseJob, NoiseKind, Option, register
from .sampling import check_labels, empirical_transition

CIFARN_URL = "https://github.com/UCSC-REAL/cifar-10-100n (folder data/)"
# the dataset each CIFAR-N file labels -> (the published file, its number of classes)
CIFARN_FILES = {"cifar10": ("CIFAR-10_human.pt", 10), "cifar100": ("CIFAR-100_human.pt", 100)}
# label set -> (the dataset it belongs to, its key in that dataset's file)
LABEL_SETS = {
    "aggre": ("cifar10", "aggre_label"),
    "random1": ("cifar10", "random_label1"),
    "random2": ("cifar10", "random_label2"),
    "random3": ("cifar10", "random_label3"),
    "worst": ("cifar10", "worse_label"),
    "noisy100": ("cifar100", "noisy_label"),
}
HUMAN_DIR = "cache/cifarn"  # where the files are looked for when the human_dir option is unset


def _torch_load_arrays(path: Path) -> Any:
    """``torch.load`` with weights_only=True, allowing just what pickled NumPy arrays need."""
    import torch

    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy 1.x
        from numpy.core.multiarray import _reconstruct

    allowed = [_reconstruct, (_reconstruct, "numpy.core.multiarray._reconstruct"), np.ndarray, np.dtype]
    allowed += [type(np.dtype(f"{s}int{b}")) for s in ("", "u") for b in (8, 16, 32, 64)]
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, weights_only=True)


def read_label_file(path: str | os.PathLike, label_set: str, num_classes: int) -> tuple[Path, str, int, dict]:
    """(file, key of the label set, K, the file's dict) for one CIFAR-N label set. ``path`` is
    the folder holding the files (or a file itself). One-line errors for an unknown set, a
    wrong K, a missing or unreadable file, or a dict without the keys."""
    if label_set not in LABEL_SETS:
        raise ValueError(f"human label set {label_set!r} is unknown; allowed: {', '.join(LABEL_SETS)}")
    dataset, key = LABEL_SETS[label_set]
    fname, k = CIFARN_FILES[dataset]
    if num_classes != k:
        raise ValueError(f"human label set {label_set} has {k} classes, the dataset has {num_classes}")
    path = Path(path)
    file = path if path.suffix == ".pt" else path / fname
    if not file.is_file():
        raise FileNotFoundError(f"CIFAR-N file {file} not found: put {fname} there, from {CIFARN_URL}")
    try:
        obj = _torch_load_arrays(file)
    except Exception as exc:  # unreadable, or holds objects beyond NumPy arrays: refuse to unpickle them
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{file}: not a readable CIFAR-N label file ({first[:160]})") from None
    if not isinstance(obj, dict) or key not in obj or "clean_label" not in obj:
        raise ValueError(f"{file} is not a CIFAR-N file: expected a dict with keys clean_label and {key}")
    return file, key, k, obj


def load_human_labels(path: str | os.PathLike, label_set: str, num_classes: int,
                      train_labels: Any = None) -> np.ndarray:
    """One CIFAR-N label set (int64) from its published ``.pt`` file.

    ``path`` is the folder holding ``CIFAR-10_human.pt`` / ``CIFAR-100_human.pt`` (or the
    file itself). With ``train_labels`` the file's ``clean_label`` must equal them
    (same images in the same order), else ValueError. The file is read with
    ``weights_only=True``, allowing only the NumPy array types it holds.
    """
    file, key, k, obj = read_label_file(path, label_set, num_classes)
    noisy = check_labels(np.asarray(obj[key]), k, f"{file}:{key}")
    clean = check_labels(np.asarray(obj["clean_label"]), k, f"{file}:clean_label")
    if noisy.shape != clean.shape:
        raise ValueError(f"{file}: {key} and clean_label differ in length")
    if train_labels is not None and not np.array_equal(clean, np.asarray(train_labels)):
        raise ValueError(f"{file}: clean_label does not equal the dataset's training labels (wrong file or image order)")
    return noisy


def _corrupt(job: NoiseJob) -> tuple[np.ndarray, np.ndarray]:
    noisy = load_human_labels(job.options.get("human_dir") or HUMAN_DIR, str(job.rate), job.num_classes,
                              train_labels=job.labels)
    return noisy, empirical_transition(job.labels, noisy, job.num_classes)


def _check_label_set(study: dict, name: str, datasets: list, where: str) -> str | None:
    owner = LABEL_SETS[name][0]
    if owner not in study["datasets"]:
        sets = ", ".join(f"{k} ({d})" for k, (d, _) in LABEL_SETS.items())
        return f"the label set {name} belongs to {owner}, which is not in datasets; human label sets: {sets}"
    return None


register(NoiseKind(
    name="human", description="real human annotations: a CIFAR-N label set (Wei et al. 2022)",
    rates="a CIFAR-N label set - " + "; ".join(
        f"{d}: {', '.join(n for n, (o, _) in LABEL_SETS.items() if o == d)}" for d in CIFARN_FILES),
    label_sets=lambda study: {n: d for n, (d, _) in LABEL_SETS.items()},
    grid_schema={"type": "array", "minItems": 1, "items": {"enum": list(LABEL_SETS)}},
    check_label_set=_check_label_set, corrupt=_corrupt,
    options=(Option("human_dir", {"type": "string", "minLength": 1}, metavar="DIR",
                    meaning=f"folder holding {', '.join(f for f, _ in CIFARN_FILES.values())} (default {HUMAN_DIR})"),),
    needs=f"the CIFAR-N files {', '.join(f for f, _ in CIFARN_FILES.values())} in human_dir, from {CIFARN_URL}"))
