"""The CIFAR-N human label files (Wei et al., ICLR 2022): which file and key hold each
label set, and reading a published ``.pt`` file safely.

``CIFAR-10_human.pt`` / ``CIFAR-100_human.pt`` (github.com/UCSC-REAL/cifar-10-100n,
folder ``data/``) are pickled dicts of NumPy arrays; they are read with
``torch.load(weights_only=True)``, allowing only the NumPy types they hold, so a
tampered file cannot run code. The labels' checks (range, length, the clean labels
equal to the dataset's) are ``noise.load_human_labels``'s.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..core.vocabulary import HUMAN_LABEL_SETS

# CIFAR-N (Wei et al., ICLR 2022): label set -> (file, key in the file, number of classes).
CIFARN_URL = "https://github.com/UCSC-REAL/cifar-10-100n (folder data/)"
# CIFAR-N label files: the dataset each label set belongs to (cells.HUMAN_LABEL_SETS)
# -> its published file; label set -> its key in that file.
CIFARN_FILES = {"cifar10": ("CIFAR-10_human.pt", 10), "cifar100": ("CIFAR-100_human.pt", 100)}
CIFARN_KEYS = {
    "aggre": "aggre_label",
    "random1": "random_label1",
    "random2": "random_label2",
    "random3": "random_label3",
    "worst": "worse_label",
    "noisy100": "noisy_label",
}


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
    if label_set not in HUMAN_LABEL_SETS:
        raise ValueError(f"human label set {label_set!r} is unknown; allowed: {', '.join(HUMAN_LABEL_SETS)}")
    fname, k = CIFARN_FILES[HUMAN_LABEL_SETS[label_set]]
    key = CIFARN_KEYS[label_set]
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
