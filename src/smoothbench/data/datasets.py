"""The canonical dataset file: its format, writing and loading it, and the ``smoothbench data`` step.

This module owns everything between a dataset's arrays and the file that training reads:

- ``build_dataset`` — the ``smoothbench data`` step: the arrays of a registered dataset (its
  registry entry's reader, after fetching its raw files into the cache folder when they are
  absent and the machine is online) or of a dataset of a researcher's own files
  (``userfiles.read_dataset``), written as the canonical file of ``docs/formats.md``
  atomically and byte-for-byte deterministically.
- ``load_dataset`` — read a canonical file back into a ``Dataset``, checking keys,
  dtypes, shapes, label range and the content hash; every problem is a one-line
  ``ValueError`` naming the file.
- ``content_hash`` and ``as_float`` — the hash recorded in the file and the one
  uint8 -> float32 conversion used by everyone.

The datasets themselves are the registry's (``registry.py``); ``DATASETS`` here is that registry.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from . import userfiles
from ..core.files import write_npz
from .registry import DATASETS, Arrays, DatasetSpec, embedded_names, get_spec, one_line

# --------------------------------------------------------------------------- the Dataset

@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset file loaded and checked by ``load_dataset``.

    ``x_*`` are uint8 ``(N, C, H, W)`` images or float32 ``(N, D)`` vectors as stored
    (use ``as_float`` to get float32 inputs); ``y_*`` are int64 clean labels in
    ``[0, num_classes)``.
    """

    name: str
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    class_names: tuple[str, ...]
    content_hash: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Per-sample shape: ``(C, H, W)`` for images, ``(D,)`` for vectors."""
        return tuple(self.x_train.shape[1:])

    @property
    def is_image(self) -> bool:
        return self.x_train.ndim == 4


def as_float(x: np.ndarray) -> np.ndarray:
    """Inputs as float32: uint8 images are scaled by 1/255, float vectors are cast."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    if x.dtype.kind == "f":
        return x.astype(np.float32, copy=False)
    raise ValueError(f"as_float takes uint8 or floating inputs, got {x.dtype}")


def content_hash(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                 class_names: Sequence[str] | np.ndarray) -> str:
    """SHA-256 (hex) of a dataset's content, as stored in its file's ``content_hash``.

    For each of ``x_train, y_train, x_test, y_test`` in this order: the header line
    ``"<key> <dtype.str> <d0,d1,...>\\n"`` (e.g. ``"x_train |u1 50000,3,32,32\\n"``),
    then the array's raw C-order bytes. Then ``"class_names str <K>\\n"`` and, for each
    name, ``"<byte length>\\n"`` followed by its UTF-8 bytes (so the hash does not depend
    on the width of a NumPy string dtype). The dataset ``name`` is not hashed.
    """
    h = hashlib.sha256()
    for key, arr in (("x_train", x_train), ("y_train", y_train), ("x_test", x_test), ("y_test", y_test)):
        a = np.asarray(arr, order="C")
        h.update(f"{key} {a.dtype.str} {','.join(map(str, a.shape))}\n".encode("ascii"))
        h.update(a.tobytes())
    names = [str(n) for n in np.asarray(class_names).reshape(-1)]
    h.update(f"class_names str {len(names)}\n".encode("ascii"))
    for n in names:
        b = n.encode("utf-8")
        h.update(f"{len(b)}\n".encode("ascii") + b)
    return h.hexdigest()


# --------------------------------------------------------------------------- checks

_ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test", "class_names")
REQUIRED_KEYS = ("name",) + _ARRAY_KEYS + ("content_hash",)


def _check_arrays(where: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                  y_test: np.ndarray, class_names: Sequence[str]) -> None:
    """Raise a one-line ``ValueError`` starting with ``where`` if the arrays break the format."""

    def fail(problem: str) -> None:
        raise ValueError(f"{where}: {problem}")

    k = len(class_names)
    if k < 2:
        fail(f"class_names must hold at least 2 names, got {k}")
    if len(set(class_names)) != k:
        fail("class_names contains duplicates")
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if x.dtype not in (np.uint8, np.float32):
            fail(f"x_{split} has dtype {x.dtype}; expected uint8 images or float32 vectors")
        if x.dtype == np.uint8 and x.ndim != 4:
            fail(f"x_{split} is uint8 with shape {x.shape}; images must have rank 4 (N, C, H, W)")
        if x.dtype == np.float32 and x.ndim != 2:
            fail(f"x_{split} is float32 with shape {x.shape}; vectors must have rank 2 (N, D)")
        if y.dtype != np.int64:
            fail(f"y_{split} has dtype {y.dtype}; expected int64")
        if y.ndim != 1:
            fail(f"y_{split} has shape {y.shape}; expected (N,)")
        if len(x) != len(y):
            fail(f"x_{split} has {len(x)} samples but y_{split} has {len(y)}")
        if len(y) == 0:
            fail(f"{split} split is empty")
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= k:
            bad = lo if lo < 0 else hi
            fail(f"label out of range in y_{split}: found {bad}, expected [0, {k}) for {k} class_names")
        if x.dtype == np.float32 and not np.isfinite(x).all():
            fail(f"x_{split} contains NaN or infinite values")
    if x_train.dtype != x_test.dtype:
        fail(f"x_train is {x_train.dtype} but x_test is {x_test.dtype}")
    if x_train.shape[1:] != x_test.shape[1:]:
        fail(f"per-sample shapes differ: x_train {x_train.shape[1:]} vs x_test {x_test.shape[1:]}")


# --------------------------------------------------------------------------- writing

def save_dataset(out: str | os.PathLike, name: str, x_train: np.ndarray, y_train: np.ndarray,
                 x_test: np.ndarray, y_test: np.ndarray, class_names: Sequence[str]) -> str:
    """Check the arrays and write a canonical dataset file atomically; return its content hash.

    Owns the file layout of docs/formats.md: keys ``name, class_names, x_train, y_train,
    x_test, y_test, content_hash``, no pickles, deterministic bytes. Also handy for
    writing small dataset fixtures in tests.
    """
    names = [str(n) for n in class_names]
    arrays = {k: np.asarray(v) for k, v in
              (("x_train", x_train), ("y_train", y_train), ("x_test", x_test), ("y_test", y_test))}
    _check_arrays(f"dataset {name!r}", arrays["x_train"], arrays["y_train"], arrays["x_test"],
                  arrays["y_test"], names)
    digest = content_hash(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], names)
    payload = {"name": np.array(name), "class_names": np.array(names), **arrays,
               "content_hash": np.array(digest)}
    write_npz(out, payload)
    return digest


# --------------------------------------------------------------------------- loading

def load_dataset(path: str | os.PathLike) -> Dataset:
    """Read and check a dataset file written by ``build_dataset`` / ``save_dataset``.

    Raises ``FileNotFoundError`` if the file is missing and ``ValueError`` — one line
    naming the file and the problem — if it is not a readable ``.npz``, lacks a key, has
    a wrong dtype or shape, a label outside ``[0, K)``, or a content hash that does not
    match its arrays ("checksum mismatch").
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: dataset file not found (write it with `smoothbench data NAME --out {path}`)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in REQUIRED_KEYS if k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a readable dataset .npz ({one_line(exc)})") from None
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{path}: missing key(s) {', '.join(missing)}; a dataset file holds "
                         f"{', '.join(REQUIRED_KEYS)}")

    for key in ("name", "content_hash"):
        a = arrays[key]
        if a.dtype.kind != "U" or a.ndim != 0:
            raise ValueError(f"{path}: {key} must be a str scalar, got {a.dtype} with shape {a.shape}")
    names_arr = arrays["class_names"]
    if names_arr.dtype.kind != "U" or names_arr.ndim != 1:
        raise ValueError(f"{path}: class_names must be str (K,), got {names_arr.dtype} with shape {names_arr.shape}")
    class_names = tuple(str(n) for n in names_arr)
    x_train, y_train, x_test, y_test = (arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    _check_arrays(str(path), x_train, y_train, x_test, y_test, class_names)

    stored = str(arrays["content_hash"])
    actual = content_hash(x_train, y_train, x_test, y_test, class_names)
    if stored != actual:
        raise ValueError(f"{path}: checksum mismatch: content_hash says {stored[:12]}..., "
                         f"arrays hash to {actual[:12]}... (file corrupted or edited; rebuild it)")
    return Dataset(str(arrays["name"]), x_train, y_train, x_test, y_test, class_names, stored)


# --------------------------------------------------------------------------- building

def _unavailable(spec: DatasetSpec, folder: Path, missing: list[str], why: str) -> FileNotFoundError:
    """The one-line error for raw files that are neither on disk nor downloadable."""
    also = [s for s in spec.raw_suffixes if s]
    may = f" (each may be {' or '.join(also)})" if also else ""
    partial = f" (missing: {', '.join(missing)})" if len(missing) < len(spec.raw_files) else ""
    return FileNotFoundError(
        f"{spec.name}: raw files not found in {folder}/{partial} and download failed ({one_line(why, 120)}); "
        f"place {', '.join(spec.raw_files)}{may} in {folder}/ (from {spec.source}), "
        f"or use an embedded dataset that needs no network: {', '.join(embedded_names())}"
    )


def read_registered(spec: DatasetSpec, cache_dir: str | os.PathLike = "cache") -> Arrays:
    """The arrays of a registry entry, not yet checked or hashed: an embedded one built, any
    other read from ``cache_dir / raw_folder`` after its ``download`` fetched what is missing."""
    cache_dir = Path(cache_dir)
    if spec.embedded:
        return spec.read(spec, cache_dir)
    folder = cache_dir / spec.raw_folder
    missing = spec.missing_raw_files(folder)
    if missing:
        if spec.download is None:
            raise _unavailable(spec, folder, missing, "this dataset has no download")
        try:
            spec.download(cache_dir)
        except Exception as exc:  # offline, proxy, HTTP or checksum errors all end the same way
            raise _unavailable(spec, folder, missing, f"{type(exc).__name__}: {exc}") from None
        still = spec.missing_raw_files(folder)
        if still:
            raise _unavailable(spec, folder, still, "the download did not produce them")
    return spec.read(spec, folder)


def training_labels(name: str, cache_dir: str | os.PathLike = "cache", fmt: str | None = None,
                    path: str | os.PathLike | None = None) -> np.ndarray | None:
    """The clean training labels (int64) that ``build_dataset`` will write for a dataset, read
    without writing anything and without the network: a dataset of your own files (``fmt``,
    ``path``: its labels only), an embedded one, or a registered one whose raw files are in the
    cache folder; None where they are not there yet (``smoothbench data`` downloads them). The
    study's validation reads them to know the realised transition of a label file of its own."""
    if fmt is not None and path is not None:
        return userfiles.train_labels(fmt, path)
    spec = get_spec(name)
    folder = Path(cache_dir) if spec.embedded else Path(cache_dir) / spec.raw_folder
    if not spec.embedded and spec.missing_raw_files(folder):
        return None
    return np.asarray(spec.read(spec, folder)[1], dtype=np.int64)


def build_dataset(name: str, out: str | os.PathLike, cache_dir: str | os.PathLike = "cache",
                  fmt: str | None = None, path: str | os.PathLike | None = None) -> Dataset:
    """``smoothbench data NAME --out OUT --cache-dir DIR``: write the canonical dataset file.

    Unknown ``name`` -> ``ValueError`` listing the registered names. Embedded datasets
    ignore ``cache_dir``. Others are read from ``cache_dir`` in their published layout,
    downloaded there if absent; offline, a one-line ``FileNotFoundError`` says which files
    to place where. With ``fmt`` and ``path`` (``--format``, ``--path``) ``name`` is a
    dataset of your own files instead (``userfiles``: an npz of arrays or a folder of images
    per class; the name must not be a registered one). The file is written atomically; the
    same source gives byte-identical output. Returns the dataset as ``load_dataset`` would.
    """
    if fmt is not None or path is not None:
        if fmt is None or path is None:
            raise ValueError(f"{name}: a dataset of your own files needs both a format and a path")
        if name in DATASETS:
            raise ValueError(f"{name} is a registered dataset; a dataset of your own files needs another name")
        x_train, y_train, x_test, y_test, class_names = userfiles.read_dataset(fmt, path)
        digest = save_dataset(out, name, x_train, y_train, x_test, y_test, class_names)
        return Dataset(name, x_train, y_train, x_test, y_test, tuple(class_names), digest)
    spec = get_spec(name)
    x_train, y_train, x_test, y_test, class_names = read_registered(spec, cache_dir)
    if tuple(x_train.shape[1:]) != spec.input_shape:
        raise ValueError(f"{name}: samples have shape {tuple(x_train.shape[1:])}, registry says {spec.input_shape}")
    digest = save_dataset(out, name, x_train, y_train, x_test, y_test, class_names)
    return Dataset(name, x_train, y_train, x_test, y_test, tuple(class_names), digest)
