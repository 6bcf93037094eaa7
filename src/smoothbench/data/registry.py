"""The dataset registry: one entry per dataset, holding everything the package knows about it.

A dataset is one ``register(DatasetSpec(...))`` call, written beside its reader in a module of
this folder: ``embedded.py`` (datasets that ship inside installed packages), ``published.py``
(datasets read from their published raw files, downloaded with torchvision), or a new module
of its own (``data/__init__`` imports every module of the folder). The params schema (its
``dataset`` enum), the study's checks, ``smoothbench data`` (``--list`` too), the cost estimates
and the noise kinds read the registry; nothing else lists datasets.

This module imports nothing of the package: the readers and the canonical file
(``datasets.py``) import it. ``one_line`` lives here, at the bottom of the
folder, because every reader writes its one-line errors with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

# the benchmark family a dataset belongs to: what per-dataset defaults (a method's literature
# setting, say) are keyed on; a dataset of a new kind picks the nearest family
FAMILIES = {
    "mnist": "28x28 grey images of 10 classes (MNIST-like)",
    "cifar10": "32x32 colour images of 10 classes (CIFAR-10-like)",
    "cifar100": "32x32 colour images of 100 classes (CIFAR-100-like)",
    "tabular": "feature vectors (an MLP's data)",
}
NAME_PATTERN = r"^[a-z][a-z0-9_]*$"  # a dataset's name: also a file name and a params.yaml key

# what a reader returns: (x_train, y_train, x_test, y_test, class_names), not yet checked or hashed
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]


@dataclass(frozen=True)
class DatasetSpec:
    """One registered dataset.

    - ``class_names`` — its K classes in label order; ``input_shape`` — the per-sample shape of
      the canonical file: ``(C, H, W)`` for uint8 images, ``(D,)`` for float32 vectors.
    - ``family`` — one of ``FAMILIES``; ``sizes`` — its (train, test) split sizes, for the cost
      estimates; ``source`` — where the data comes from, in words (``smoothbench data --list``).
    - ``read(spec, folder)`` — the arrays. An embedded dataset (no ``raw_folder``) builds them from
      an installed package and ignores ``folder`` (the cache folder). Any other reads its
      ``raw_files`` from ``folder`` = cache folder / ``raw_folder``, where each file may also carry
      one of ``raw_suffixes`` (``.gz``, say); when some are missing, ``download(cache_dir)`` fetches
      them (None: the user places them there).
    """

    name: str
    class_names: tuple[str, ...]
    input_shape: tuple[int, ...]
    family: str
    sizes: tuple[int, int]
    source: str
    read: Callable[["DatasetSpec", Path], Arrays]
    raw_folder: str | None = None
    raw_files: tuple[str, ...] = ()
    raw_suffixes: tuple[str, ...] = ("",)
    download: Callable[[Path], None] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_kind(self) -> str:
        """``image`` (uint8 ``(N, C, H, W)``) or ``vector`` (float32 ``(N, D)``)."""
        return "image" if len(self.input_shape) == 3 else "vector"

    @property
    def is_image(self) -> bool:
        return self.input_kind == "image"

    @property
    def embedded(self) -> bool:
        """Built from an installed package: no raw files, no network."""
        return self.raw_folder is None

    def raw_path(self, folder: Path, base: str) -> Path | None:
        """The file ``base`` in ``folder``, with the first of ``raw_suffixes`` that exists, or None."""
        for suffix in self.raw_suffixes:
            path = folder / f"{base}{suffix}"
            if path.is_file():
                return path
        return None

    def missing_raw_files(self, folder: Path) -> list[str]:
        return [f for f in self.raw_files if self.raw_path(folder, f) is None]


DATASETS: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to the registry (registry order is the order of ``--list`` and the schema's
    enum); a name taken or an entry that breaks the rules is a one-line ``ValueError``."""
    where = f"dataset {spec.name!r} (registered in {getattr(spec.read, '__module__', '?')})"

    def fail(problem: str) -> None:
        raise ValueError(f"{where}: {problem}")

    if not isinstance(spec.name, str) or not re.match(NAME_PATTERN, spec.name):
        fail(f"the name must match {NAME_PATTERN}")
    if spec.name in DATASETS:
        fail(f"the name is taken by the entry registered in {DATASETS[spec.name].read.__module__}")
    if spec.family not in FAMILIES:
        fail(f"family {spec.family!r} is unknown; allowed: {', '.join(FAMILIES)}")
    if len(spec.class_names) < 2 or len(set(spec.class_names)) != len(spec.class_names):
        fail("class_names must hold at least 2 distinct names")
    if len(spec.input_shape) not in (1, 3) or not all(isinstance(d, int) and d > 0 for d in spec.input_shape):
        fail(f"input_shape {spec.input_shape} must be (D,) for vectors or (C, H, W) for images, positive integers")
    if len(spec.sizes) != 2 or not all(isinstance(n, int) and n > 0 for n in spec.sizes):
        fail(f"sizes {spec.sizes} must be (train, test) sample counts > 0")
    if not callable(spec.read):
        fail("read must be a function (spec, folder) -> arrays")
    if spec.raw_folder is None and (spec.raw_files or spec.download is not None):
        fail("raw_files and download need a raw_folder (an embedded dataset has neither)")
    if spec.raw_folder is not None and not spec.raw_files:
        fail("a dataset read from raw files names them in raw_files")
    DATASETS[spec.name] = spec
    return spec


def names() -> tuple[str, ...]:
    """The registered dataset names, in registry order."""
    return tuple(DATASETS)


def embedded_names() -> tuple[str, ...]:
    """The datasets that need no network, in registry order."""
    return tuple(n for n, s in DATASETS.items() if s.embedded)


def get_spec(name: str) -> DatasetSpec:
    """The registry entry of ``name``; ``ValueError`` listing the registered names if unknown."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(
            f"dataset {name!r} is not registered; registered: {', '.join(DATASETS)} "
            f"(embedded, no network: {', '.join(embedded_names())})"
        ) from None


def describe() -> str:
    """``smoothbench data --list``: one line per registered dataset."""
    lines = []
    for s in DATASETS.values():
        where = "embedded" if s.embedded else f"{s.raw_folder}/ in the cache folder"
        shape = "x".join(map(str, s.input_shape))
        sizes = f"{s.sizes[0]}/{s.sizes[1]}"
        lines.append(f"{s.name:<14} K={s.num_classes:<4} {s.input_kind:<6} {shape:<8} {sizes:<12} {s.family:<9} "
                     f"{where}: {s.source}")
    return "\n".join(lines)


def schema_defs() -> dict:
    """The params schema's ``$defs.dataset`` (the registered names) and ``$defs.family`` (the families)."""
    return {"dataset": {"enum": list(DATASETS), "description": "a registered dataset (generated from smoothbench.data)"},
            "family": {"enum": list(FAMILIES), "description": "a dataset family (generated from smoothbench.data)"}}


def one_line(text: object, limit: int = 200) -> str:
    """``text`` (an exception, say) as one line of at most ``limit`` characters, for errors."""
    s = re.sub(r"\s+", " ", str(text)).strip()
    return s if len(s) <= limit else s[: limit - 3] + "..."
