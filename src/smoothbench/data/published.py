"""Datasets read from their published raw files, downloaded with torchvision when absent.

Each is one registry entry beside its reader: MNIST and Fashion-MNIST from their IDX files
(plain or ``.gz``), CIFAR-10 and CIFAR-100 from their python pickles, each in the folder
torchvision uses under the cache folder. A reader takes its entry and that folder and returns
the arrays, not yet checked or hashed (``datasets.build_dataset`` does that).

Raw files are read by the small readers here, not by torchvision's dataset classes, because
those refuse files whose MD5 differs from the published one — and the tests exercise this
code on small fixtures in the real format. torchvision is used only to download, and is
imported only then.
"""

from __future__ import annotations

import codecs
import gzip
import pickle
import struct
from pathlib import Path
from typing import Callable

import numpy as np

from .embedded import MNIST_NAMES
from .registry import Arrays, DatasetSpec, one_line, register

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",  # MNIST-like raw files (each may be .gz)
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

FASHION_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck")

CIFAR100_NAMES = (
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


def torchvision_download(class_name: str) -> Callable[[Path], None]:
    """The download of a dataset that torchvision's ``class_name`` fetches: its raw files land in
    the cache folder in torchvision's layout. For MNIST, Fashion-MNIST and CIFAR one call brings
    both splits, whatever its ``train`` argument (a dataset whose class takes ``split=`` or
    fetches one split per call writes its own download)."""

    def download(cache_dir: Path) -> None:
        import torchvision.datasets

        getattr(torchvision.datasets, class_name)(root=str(cache_dir), train=False, download=True)

    return download


# --------------------------------------------------------------------------- MNIST-like IDX files

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


def _read_mnist_like(spec: DatasetSpec, folder: Path) -> Arrays:
    """MNIST / Fashion-MNIST from the four IDX files in ``folder`` -> uint8 (N, 1, 28, 28)."""
    out = []
    for split in ("train", "t10k"):
        img_path = spec.raw_path(folder, f"{split}-images-idx3-ubyte")
        lab_path = spec.raw_path(folder, f"{split}-labels-idx1-ubyte")
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


register(DatasetSpec(
    name="mnist", class_names=MNIST_NAMES, input_shape=(1, 28, 28), family="mnist", sizes=(60_000, 10_000),
    source="https://ossci-datasets.s3.amazonaws.com/mnist/ (torchvision's MNIST mirror)",
    read=_read_mnist_like, raw_folder="MNIST/raw", raw_files=IDX_FILES, raw_suffixes=("", ".gz"),
    download=torchvision_download("MNIST")))

register(DatasetSpec(
    name="fashion_mnist", class_names=FASHION_NAMES, input_shape=(1, 28, 28), family="mnist",
    sizes=(60_000, 10_000), source="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    read=_read_mnist_like, raw_folder="FashionMNIST/raw", raw_files=IDX_FILES, raw_suffixes=("", ".gz"),
    download=torchvision_download("FashionMNIST")))


# --------------------------------------------------------------------------- CIFAR python pickles

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


def _read_cifar10(spec: DatasetSpec, folder: Path) -> Arrays:
    """CIFAR-10 from ``cifar-10-batches-py``: data_batch_1..5 (train, in order), test_batch,
    and class names from batches.meta."""
    parts = [_cifar_batch(folder / f"data_batch_{i}", "labels", spec.num_classes) for i in range(1, 6)]
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    x_test, y_test = _cifar_batch(folder / "test_batch", "labels", spec.num_classes)
    names = _cifar_names(folder / "batches.meta", "label_names", spec.num_classes)
    return x_train, y_train, x_test, y_test, names


register(DatasetSpec(
    name="cifar10", class_names=CIFAR10_NAMES, input_shape=(3, 32, 32), family="cifar10", sizes=(50_000, 10_000),
    source="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    read=_read_cifar10, raw_folder="cifar-10-batches-py",
    raw_files=tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta"),
    download=torchvision_download("CIFAR10")))


def _read_cifar100(spec: DatasetSpec, folder: Path) -> Arrays:
    """CIFAR-100 (fine labels) from ``cifar-100-python``: train, test, and class names from meta."""
    x_train, y_train = _cifar_batch(folder / "train", "fine_labels", spec.num_classes)
    x_test, y_test = _cifar_batch(folder / "test", "fine_labels", spec.num_classes)
    names = _cifar_names(folder / "meta", "fine_label_names", spec.num_classes)
    return x_train, y_train, x_test, y_test, names


register(DatasetSpec(
    name="cifar100", class_names=CIFAR100_NAMES, input_shape=(3, 32, 32), family="cifar100",
    sizes=(50_000, 10_000), source="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    read=_read_cifar100, raw_folder="cifar-100-python", raw_files=("train", "test", "meta"),
    download=torchvision_download("CIFAR100")))
