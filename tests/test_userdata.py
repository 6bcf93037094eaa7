"""Your own data and your own labels (smoothbench.data.userfiles, and where grid, data and noise
use it): a dataset given by an npz of arrays or by a folder of images per class,
and noisy labels given by a file of real annotations.

Every fixture is written here, in tmp_path (the current folder of each test, so that the
paths of params.yaml lie inside data-in/ as they must); the expected canonical arrays are
the arrays written, rearranged by hand, never by the code under test. Every bad file has
its own test, which checks the whole one-line error.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from smoothbench.core import schema
from smoothbench.data import datasets as data, userfiles as userdata
from smoothbench.study import grid
from smoothbench import noise

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- writers (also used by the slow study tests)


def blobs(n: int, k: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` learnable samples of ``k`` classes (every class present): a centre per class plus noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    rng.shuffle(y)
    centres = np.random.default_rng(1000 + k).normal(0, 2, size=(k, d))
    return centres[y] + rng.normal(0, 1, size=(n, d)), y


def write_npz_dataset(path: Path, n_train: int = 90, n_test: int = 30, k: int = 3, d: int = 8, seed: int = 0,
                      names: bool = True) -> dict:
    """An npz dataset of float64 vectors (converted to float32 by the data step); returns what it holds."""
    x_train, y_train = blobs(n_train, k, d, seed)
    x_test, y_test = blobs(n_test, k, d, seed + 1)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    if names:
        arrays["class_names"] = np.array([f"class {chr(97 + i)}" for i in range(k)])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays


def write_image_folder(root: Path, classes=("square", "circle", "cross"), per_class=(5, 2), size=(6, 4),
                       mode="L", seed=0) -> dict:
    """``root/train/<class>/NN.png`` and ``root/test/<class>/NN.png``: PNGs whose pixels are a
    class pattern plus noise; returns {split: [(class, file name, pixels (H, W) or (H, W, 3))]}."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    out: dict = {"train": [], "test": []}
    for split, count in zip(("train", "test"), per_class):
        for c, name in enumerate(classes):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                base = np.full((h, w) if mode == "L" else (h, w, 3), 40 + 80 * c)
                pixels = np.clip(base + rng.integers(-30, 30, size=base.shape), 0, 255).astype(np.uint8)
                Image.fromarray(pixels, mode=mode).save(root / split / name / f"{i:02d}.png")
                out[split].append((name, f"{i:02d}.png", pixels))
    return out


def write_labels(path: Path, labels: np.ndarray) -> Path:
    """An annotation file in the format its suffix names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, labels)
    elif path.suffix == ".npz":
        np.savez(path, labels=labels)
    else:
        path.write_text("label\n" + "".join(f"{int(v)}\n" for v in labels))
    return path


def study(**changes) -> dict:
    """A small study of the dataset of your own ``mine`` (data-in/mine.npz)."""
    params = {
        "datasets": ["mine"],
        "dataset_files": {"mine": {"format": "npz", "path": "data-in/mine.npz"}},
        "noise": {"symmetric": [0.2]},
        "methods": {"ce": [0.0], "ls": [0.4]},
        "seeds": [0],
    }
    params.update(changes)
    return params


def error_of(params: dict) -> str:
    with pytest.raises(ValueError) as info:
        grid.validate_params(params, source="params.yaml")
    text = str(info.value)
    assert "\n" not in text and text.startswith("params.yaml: "), text
    return text


@pytest.fixture
def here(tmp_path, monkeypatch):
    """tmp_path as the current folder: params.yaml's paths are relative to it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --------------------------------------------------------------------------- npz: what the canonical file holds


def test_npz_vectors_become_the_canonical_file(here):
    written = write_npz_dataset(here / "data-in" / "mine.npz")
    p = grid.validate_params(study())
    assert [g.id for g in grid.expand_groups(p)] == ["mine-symmetric-0.2-s0"]
    ds = data.build_dataset("mine", here / "data" / "mine.npz", fmt="npz", path="data-in/mine.npz")
    back = data.load_dataset(here / "data" / "mine.npz")
    assert back.name == "mine" and back.class_names == ("class a", "class b", "class c")
    assert back.x_train.dtype == np.float32 and back.y_train.dtype == np.int64
    np.testing.assert_array_equal(back.x_train, written["x_train"].astype(np.float32))
    np.testing.assert_array_equal(back.y_train, written["y_train"])
    np.testing.assert_array_equal(back.x_test, written["x_test"].astype(np.float32))
    np.testing.assert_array_equal(back.y_test, written["y_test"])
    assert back.content_hash == ds.content_hash == data.content_hash(
        written["x_train"].astype(np.float32), written["y_train"].astype(np.int64),
        written["x_test"].astype(np.float32), written["y_test"].astype(np.int64), ["class a", "class b", "class c"])
    first = (here / "data" / "mine.npz").read_bytes()
    data.build_dataset("mine", here / "data" / "again.npz", fmt="npz", path="data-in/mine.npz")
    assert (here / "data" / "again.npz").read_bytes() == first                   # deterministic bytes


def test_npz_without_class_names_counts_classes_from_the_labels(here):
    write_npz_dataset(here / "data-in" / "mine.npz", k=4, names=False)
    s = userdata.describe("npz", "data-in/mine.npz")
    assert (s.num_classes, s.num_train, s.num_test, s.class_names, s.input_shape) == (4, 90, 30, ("0", "1", "2", "3"),
                                                                                       (8,))
    # K comes from the files: symmetric rates must stay below (K-1)/K = 0.75
    assert error_of(study(noise={"symmetric": [0.8]})) == (
        "params.yaml: noise.symmetric[0] = 0.8: symmetric noise rates must lie in [0, 0.75) for mine (K = 4 classes)")


def _image_arrays(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 5, 4, 3), dtype=np.uint8)  # (N, H, W, 3)


@pytest.mark.parametrize("layout", ["NHW", "N1HW", "NHW1", "N3HW", "NHW3"])
def test_npz_image_layouts(here, layout):
    """Each accepted image layout ends as uint8 (N, C, H, W): pixel (i, c, h, w) of the file is
    looked up by hand in the array as written."""
    hwc_train, hwc_test = _image_arrays(12, 0), _image_arrays(6, 1)
    def as_layout(a):
        grey = a[..., 0]
        return {"NHW": grey, "N1HW": grey[:, None], "NHW1": grey[..., None],
                "N3HW": np.stack([a[..., 0], a[..., 1], a[..., 2]], axis=1), "NHW3": a}[layout]
    y_train, y_test = np.arange(12) % 2, np.arange(6) % 2
    (here / "data-in").mkdir()
    np.savez(here / "data-in" / "img.npz", x_train=as_layout(hwc_train), y_train=y_train,
             x_test=as_layout(hwc_test), y_test=y_test)
    x_train, _, x_test, _, names = userdata.read_dataset("npz", "data-in/img.npz")
    channels = 3 if layout in ("N3HW", "NHW3") else 1
    assert x_train.shape == (12, channels, 5, 4) and x_test.shape == (6, channels, 5, 4)
    assert x_train.dtype == np.uint8 and names == ("0", "1")
    for x, ref in ((x_train, hwc_train), (x_test, hwc_test)):
        for i, c, h, w in np.ndindex(*x.shape):
            assert x[i, c, h, w] == ref[i, h, w, c], (layout, i, c, h, w)


def test_npz_uint8_vectors_keep_their_values(here):
    (here / "data-in").mkdir()
    x = np.arange(40, dtype=np.uint8).reshape(10, 4)
    np.savez(here / "data-in" / "u.npz", x_train=x, y_train=np.arange(10) % 2, x_test=x[:4], y_test=np.arange(4) % 2)
    x_train, *_ = userdata.read_dataset("npz", "data-in/u.npz")
    assert x_train.dtype == np.float32 and x_train.tolist() == x.astype(float).tolist()


# --------------------------------------------------------------------------- npz: one test per one-line error


def _npz(here, **arrays):
    (here / "data-in").mkdir(exist_ok=True)
    base = {"x_train": np.zeros((6, 3), np.float32), "y_train": np.array([0, 1, 2, 0, 1, 2]),
            "x_test": np.zeros((2, 3), np.float32), "y_test": np.array([0, 1])}
    base.update(arrays)
    np.savez(here / "data-in" / "mine.npz", **{k: v for k, v in base.items() if v is not None})


NPZ_ERRORS = {
    "x_train and y_train lengths differ": (dict(y_train=np.array([0, 1, 2, 0, 1])),
                                           "x_train has 6 samples but y_train has 5 labels"),
    "wrong shape": (dict(x_train=np.zeros((6,), np.float32)),
                    "x_train has shape (6,); accepted: float or uint8 vectors (N, D); uint8 images (N, H, W), "
                    "(N, C, H, W) or (N, H, W, C) with C = 1 (grey) or 3 (RGB)"),
    "no channel axis": (dict(x_train=np.zeros((6, 5, 5, 5), np.uint8), x_test=np.zeros((2, 5, 5, 5), np.uint8)),
                        "x_train has shape (6, 5, 5, 5), which has no channel axis; accepted: float or uint8 vectors"),
    "ambiguous channel axis": (dict(x_train=np.zeros((6, 3, 4, 3), np.uint8), x_test=np.zeros((2, 3, 4, 3), np.uint8)),
                               "x_train has shape (6, 3, 4, 3), which is ambiguous (both axis 1 and axis 3 could be "
                               "channels)"),
    "float images": (dict(x_test=np.zeros((2, 1, 4, 4), np.float32)),
                     "x_test is float32 with shape (2, 1, 4, 4): float arrays must be vectors (N, D); give images "
                     "as uint8 (e.g. np.round(x * 255).astype(np.uint8)) or flatten them"),
    "wrong x dtype": (dict(x_train=np.zeros((6, 3), np.int64)), "x_train has dtype int64; accepted: float or uint8"),
    "dtypes differ": (dict(x_test=np.zeros((2, 3), np.float64)),
                      "x_train is float32 but x_test is float64; give both the same dtype"),
    "per-sample shapes differ": (dict(x_test=np.zeros((2, 4), np.float32)),
                                 "per-sample shapes differ: x_train (3,) vs x_test (4,)"),
    "missing key": (dict(y_test=None), "missing y_test; an npz dataset holds x_train, y_train, x_test, y_test and "
                                       "optionally class_names"),
    "unknown key": (dict(X_val=np.zeros(3)), "unknown key(s) X_val; an npz dataset holds x_train, y_train, x_test, "
                                             "y_test and optionally class_names"),
    "float labels": (dict(y_train=np.array([0.0, 1, 2, 0, 1, 2])),
                     "y_train must be a 1-D integer array, got float64 with shape (6,)"),
    "labels out of range": (dict(class_names=np.array(["a", "b"])),
                            "y_train holds label 2, outside 0..1 (2 class_names)"),
    "negative label": (dict(y_test=np.array([0, -1])), "y_test holds label -1, outside 0..2 (K = 3)"),
    "labels not 0..K-1": (dict(y_train=np.array([1, 2, 3, 1, 2, 3]), y_test=np.array([1, 3])),
                          "labels must be 0..K-1 with every class in y_train: class 0 has no training sample "
                          "(K = 4; labels are class indices counted from 0)"),
    "a class in the test set only": (dict(y_test=np.array([3, 0])),
                                     "class 3 is in the test set only: y_test has 1 sample(s) of it and y_train none, "
                                     "and a model cannot learn a class it never sees; add training samples of class 3 "
                                     "or leave its test samples out"),
    "a named class in the test set only": (dict(y_test=np.array([3, 3]), class_names=np.array(["a", "b", "c", "d"])),
                                           "class 3 (d) is in the test set only: y_test has 2 sample(s) of it"),
    "fewer than 2 classes": (dict(y_train=np.zeros(6, np.int64), y_test=np.zeros(2, np.int64)),
                             "fewer than 2 classes (K = 1); a dataset needs at least 2"),
    "duplicate class names": (dict(class_names=np.array(["a", "b", "a"])),
                              "class_names must be distinct, non-empty names"),
    "pickled class names": (dict(class_names=np.array(["a", "b", "c"], dtype=object)),
                            "class_names is an object array (pickled); save it as a plain array"),
    "empty split": (dict(x_test=np.zeros((0, 3), np.float32), y_test=np.zeros(0, np.int64)),
                    "the test split is empty"),
}


@pytest.mark.parametrize("case", sorted(NPZ_ERRORS))
def test_bad_npz_dataset_gives_one_line(here, case):
    arrays, problem = NPZ_ERRORS[case]
    _npz(here, **arrays)
    assert error_of(study()).startswith(f'params.yaml: dataset_files.mine.path = "data-in/mine.npz": {problem}')


def test_missing_and_unreadable_npz(here):
    (here / "data-in").mkdir()
    assert error_of(study()) == 'params.yaml: dataset_files.mine.path = "data-in/mine.npz": no such file'
    (here / "data-in" / "mine.npz").write_bytes(b"not a zip")
    assert error_of(study()) == ('params.yaml: dataset_files.mine.path = "data-in/mine.npz": not a readable .npz '
                                 "(File is not a zip file)")


@pytest.mark.parametrize("path", ["mine.npz", "/data/mine.npz", "data-in/../mine.npz", "data-in"])
def test_a_path_outside_data_in_is_refused(here, path):
    _npz(here)
    params = study(dataset_files={"mine": {"format": "npz", "path": path}})
    assert error_of(params).startswith(
        f"params.yaml: dataset_files.mine.path = {json.dumps(path)}: must be a relative path inside data-in/ "
        "(the folder the DVC stages depend on, so that a changed file reruns them)")


def test_nan_inputs_stop_the_data_step(here):
    _npz(here, x_train=np.full((6, 3), np.nan, np.float32))
    with pytest.raises(ValueError) as info:
        data.build_dataset("mine", here / "data" / "mine.npz", fmt="npz", path="data-in/mine.npz")
    assert str(info.value) == "data-in/mine.npz: x_train holds NaN or infinite values (as float32)"
    assert not (here / "data").exists() or not list((here / "data").iterdir())


# --------------------------------------------------------------------------- the names of your own datasets


@pytest.mark.parametrize("change, expected", [
    (dict(dataset_files={"mnist5k": {"format": "npz", "path": "data-in/mine.npz"}}),
     'params.yaml: dataset_files.mnist5k: key "mnist5k" is taken; it must not be one of digits, mnist1d, mnist5k, '
     "breast_cancer, mnist, fashion_mnist, cifar10, cifar100"),
    (dict(dataset_files={"Mine": {"format": "npz", "path": "data-in/mine.npz"}}),
     'params.yaml: dataset_files.Mine: key "Mine" must match ^[a-z][a-z0-9_]*$'),
    (dict(dataset_files={"mine": {"format": "zip", "path": "data-in/mine.npz"}}),
     'params.yaml: dataset_files.mine.format = "zip": allowed: npz, image_folder'),
    (dict(dataset_files={"mine": {"format": "npz"}}), "params.yaml: dataset_files.mine.path: missing; this key is "
                                                      "required"),
    (dict(datasets=["mine", "yours"]),
     'params.yaml: datasets[1] = "yours": allowed: digits, mnist1d, mnist5k, breast_cancer, mnist, fashion_mnist, '
     "cifar10, cifar100, or a dataset of your own files named in dataset_files (mine)"),
    (dict(protocol={"yours": {}}),
     "params.yaml: protocol.yours: unknown key; allowed: default, digits, mnist1d, mnist5k, breast_cancer, mnist, "
     "fashion_mnist, cifar10, cifar100, or a dataset of your own files named in dataset_files (mine)"),
])
def test_names_of_your_own_datasets(here, change, expected):
    _npz(here)
    assert error_of(study(**change)) == expected


def test_your_own_dataset_takes_protocol_overrides_and_its_own_noise_grid(here):
    _npz(here)
    p = grid.validate_params(study(datasets=["digits", "mine"], protocol={"mine": {"batch_size": 7}},
                                   dataset_noise={"mine": {"symmetric": [0.6]}}))
    assert grid.protocol_for(p, "mine")["batch_size"] == 7
    assert [g.id for g in grid.expand_groups(p)] == ["digits-symmetric-0.2-s0", "mine-symmetric-0.6-s0"]
    assert error_of(study(dataset_noise={"mine": {"symmetric": [0.7]}})) == (
        "params.yaml: dataset_noise.mine.symmetric[0] = 0.7: symmetric noise rates must lie in [0, 0.666667) "
        "for mine (K = 3 classes)")


# --------------------------------------------------------------------------- image folders


def test_image_folder_becomes_the_canonical_file_in_the_documented_order(here):
    """Classes are train/'s folders sorted by name, files sorted by name within a class (here
    "10.png" < "9.png" < "a.png"); the expected order is written out by hand."""
    from PIL import Image

    rng = np.random.default_rng(0)
    pix = {}
    for split, cls, name in [("train", "zebra", "9.png"), ("train", "zebra", "10.png"), ("train", "apple", "a.png"),
                             ("train", "apple", "10.png"), ("train", "mango", "b.png"), ("test", "zebra", "x.png"),
                             ("test", "apple", "y.png")]:
        (here / "data-in" / "pics" / split / cls).mkdir(parents=True, exist_ok=True)
        pix[split, cls, name] = rng.integers(0, 256, size=(3, 5), dtype=np.uint8)  # H = 3, W = 5
        Image.fromarray(pix[split, cls, name], mode="L").save(here / "data-in" / "pics" / split / cls / name)
    (here / "data-in" / "pics" / "train" / "apple" / ".DS_Store").write_bytes(b"ignored")
    params = study(dataset_files={"mine": {"format": "image_folder", "path": "data-in/pics"}})
    grid.validate_params(params)
    data.build_dataset("mine", here / "mine.npz", fmt="image_folder", path="data-in/pics")
    ds = data.load_dataset(here / "mine.npz")
    assert ds.class_names == ("apple", "mango", "zebra")
    train_order = [("apple", "10.png"), ("apple", "a.png"), ("mango", "b.png"), ("zebra", "10.png"), ("zebra", "9.png")]
    assert ds.y_train.tolist() == [0, 0, 1, 2, 2] and ds.y_test.tolist() == [0, 2]
    assert ds.x_train.shape == (5, 1, 3, 5) and ds.x_train.dtype == np.uint8
    for i, (cls, name) in enumerate(train_order):
        np.testing.assert_array_equal(ds.x_train[i, 0], pix["train", cls, name])
    np.testing.assert_array_equal(ds.x_test[1, 0], pix["test", "zebra", "x.png"])
    assert userdata.input_files("image_folder", "data-in/pics") == [
        f"data-in/pics/train/{c}/{n}" for c, n in train_order] + ["data-in/pics/test/apple/y.png",
                                                                  "data-in/pics/test/zebra/x.png"]


def test_image_folder_mixed_grey_and_colour_is_rgb(here):
    from PIL import Image

    shapes = write_image_folder(here / "data-in" / "pics", classes=("a", "b"), per_class=(2, 1), mode="L")
    colour = np.random.default_rng(1).integers(0, 256, size=(4, 6, 3), dtype=np.uint8)
    Image.fromarray(colour, mode="RGB").save(here / "data-in" / "pics" / "train" / "b" / "99.png")
    x_train, y_train, x_test, _, names = userdata.read_dataset("image_folder", "data-in/pics")
    assert x_train.shape == (5, 3, 4, 6) and names == ("a", "b") and y_train.tolist() == [0, 0, 1, 1, 1]
    grey = shapes["train"][0][2]
    for c in range(3):                                                         # a grey image in all 3 channels
        np.testing.assert_array_equal(x_train[0, c], grey)
    np.testing.assert_array_equal(x_train[4], colour.transpose(2, 0, 1))      # "99.png" sorts after "00", "01"


def _folder(here, **kw) -> Path:
    root = here / "data-in" / "pics"
    write_image_folder(root, **kw)
    return root


IMAGE_ERRORS = {
    "test image of another size": (
        lambda root: _save(root / "test" / "circle" / "big.png", (8, 6)),
        "test/circle/big.png is 8x6 pixels but train/circle/00.png is 6x4: all images must have the same size"),
    "fewer than 2 classes": (
        lambda root: _only_one_class(root),
        "fewer than 2 classes: train/ has 1 class folder(s) (circle); a dataset needs at least 2"),
    "not an image file": (lambda root: (root / "train" / "cross" / "notes.txt").write_text("x"),
                          "train/cross/notes.txt is not an image file; accepted: .png, .jpg, .jpeg (names starting "
                          "with '.' are ignored)"),
    "stray file in train/": (lambda root: _save(root / "train" / "loose.png", (6, 4)),
                             "train/loose.png is not a class folder; images go in train/<class>/"),
    "unreadable image": (lambda root: (root / "train" / "cross" / "zz.png").write_bytes(b"no png"),
                         "train/cross/zz.png is not a readable image (cannot identify image file"),
    "alpha channel": (lambda root: _save(root / "test" / "cross" / "rgba.png", (6, 4), "RGBA"),
                      "test/cross/rgba.png has image mode RGBA; accepted: grey (L, 1) or colour (RGB, P) (drop an "
                      "alpha channel, e.g. Image.convert('RGB'))"),
    "16-bit image": (lambda root: _save(root / "train" / "cross" / "deep.png", (6, 4), "I;16"),
                     "train/cross/deep.png has image mode I;16; accepted: grey (L, 1) or colour (RGB, P) (a 16-bit "
                     "image: 16-bit images are not supported, save it with 8 bits per pixel, e.g. "
                     "Image.fromarray((np.asarray(im) >> 8).astype(np.uint8)) with Pillow or `convert IN -depth 8 "
                     "OUT` with ImageMagick)"),
    "test class not in train": (lambda root: _save(root / "test" / "star" / "0.png", (6, 4)),
                                "test/star: no class star in train/ (classes: circle, cross, square)"),
    "empty class folder": (lambda root: (root / "train" / "empty").mkdir(),
                           "train/empty holds no images (.png, .jpg, .jpeg)"),
    "no test folder": (lambda root: _rmtree(root / "test"),
                       "no test/ folder; an image_folder dataset is DIR/train/<class>/*.png and DIR/test/<class>/*.png"),
}


def _save(path: Path, size, mode="L"):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size).save(path)


def _rmtree(path: Path):
    import shutil

    shutil.rmtree(path)


def _only_one_class(root: Path):
    for split in ("train", "test"):
        for name in ("square", "cross"):
            _rmtree(root / split / name)


@pytest.mark.parametrize("case", sorted(IMAGE_ERRORS))
def test_bad_image_folder_gives_one_line(here, case):
    spoil, problem = IMAGE_ERRORS[case]
    spoil(_folder(here))
    params = study(dataset_files={"mine": {"format": "image_folder", "path": "data-in/pics"}})
    assert error_of(params).startswith(f'params.yaml: dataset_files.mine.path = "data-in/pics": {problem}')


def test_missing_image_folder(here):
    params = study(dataset_files={"mine": {"format": "image_folder", "path": "data-in/pics"}})
    assert error_of(params) == 'params.yaml: dataset_files.mine.path = "data-in/pics": no such folder'


# --------------------------------------------------------------------------- annotations


def _annotated(here, suffix=".npy", labels=None, **changes) -> tuple[dict, np.ndarray, dict]:
    written = write_npz_dataset(here / "data-in" / "mine.npz")
    if labels is None:                                  # 20 of the 90 training labels changed, by hand
        labels = written["y_train"].copy()
        labels[:20] = (labels[:20] + 1) % 3
    write_labels(here / "data-in" / f"crowd{suffix}", labels)
    params = study(noise={"symmetric": [0.2], "annotations": ["crowd"]},
                   noise_options={"annotations": {"files": {"crowd": {"dataset": "mine",
                                                                      "path": f"data-in/crowd{suffix}"}}}})
    params.update(changes)
    return params, labels, written


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv"])
def test_annotation_file_gives_the_noisy_labels_and_their_statistics(here, suffix):
    params, labels, written = _annotated(here, suffix)
    p = grid.validate_params(params)
    assert [g.id for g in grid.expand_groups(p)] == ["mine-symmetric-0.2-s0", "mine-annotations-crowd-s0"]
    data.build_dataset("mine", here / "data" / "mine.npz", fmt="npz", path="data-in/mine.npz")
    out = here / "noisy" / "mine" / "annotations-crowd-s0.npz"
    stats = noise.make_noisy_labels(here / "data" / "mine.npz", "annotations", "crowd", 0, out,
                                    options=p["noise_options"]["annotations"])
    with np.load(out) as z:
        assert z["noisy_labels"].tolist() == labels.tolist()
        assert str(z["kind"]) == "annotations" and str(z["rate"]) == "crowd"
    assert json.loads(out.with_suffix(".json").read_text()) == stats
    clean = written["y_train"]
    assert stats["kind"] == "annotations" and stats["rate"] == "crowd" and stats["num_samples"] == 90
    assert stats["realised_rate"] == pytest.approx(20 / 90)
    counts = np.zeros((3, 3))
    for c, n in zip(clean, labels):
        counts[c, n] += 1
    np.testing.assert_allclose(stats["empirical_transition"], counts / counts.sum(axis=1, keepdims=True))


def test_annotations_for_a_registered_dataset(here, tmp_path):
    """Any dataset takes annotations. Its length is checked before any job where the dataset's
    training labels are on this machine (an embedded one; a downloaded one whose raw files are
    in the cache folder), else by the noise step."""
    (here / "data-in").mkdir()
    write_labels(here / "data-in" / "d.csv", np.zeros(10, np.int64))
    params = dict(study(datasets=["digits"], noise={"annotations": ["dig"]}), dataset_files={},
                  noise_options={"annotations": {"files": {"dig": {"dataset": "digits", "path": "data-in/d.csv"}}}})
    line = ("holds 10 labels but digits has 1297 training samples (one label per training sample, in training "
            "order)")
    assert error_of(params) == f'params.yaml: noise_options.annotations.files.dig.path = "data-in/d.csv": {line}'
    data.build_dataset("digits", here / "digits.npz")
    with pytest.raises(ValueError) as info:                    # the noise step, run by hand, says the same
        noise.make_noisy_labels(here / "digits.npz", "annotations", "dig", 0, here / "n.npz",
                                options=params["noise_options"]["annotations"])
    assert str(info.value) == f"data-in/d.csv: {line}"
    assert not (here / "n.npz").exists()
    write_labels(here / "data-in" / "d.csv", np.full(1297, 10, np.int64))
    assert error_of(params) == ('params.yaml: noise_options.annotations.files.dig.path = "data-in/d.csv": label 10 of '
                                "sample 0 is outside 0..9 (digits has K = 10 classes)")
    write_labels(here / "data-in" / "d.csv", np.zeros(1297, np.int64))
    p = grid.validate_params(params)
    assert [g.id for g in grid.expand_groups(p)] == ["digits-annotations-dig-s0"]
    # CIFAR-10 whose raw files are not in the cache folder yet: its size is the noise step's to check
    write_labels(here / "data-in" / "c.csv", np.zeros(10, np.int64))
    grid.validate_params(dict(study(datasets=["cifar10"], noise={"annotations": ["cif"]}), dataset_files={},
                              noise_options={"annotations": {"files": {"cif": {"dataset": "cifar10",
                                                                               "path": "data-in/c.csv"}}}}))


def test_backward_with_a_label_file_whose_realised_t_is_singular_stops_before_any_job(here):
    """The realised T of a label file of your own is known before any job (the file and the
    dataset's clean labels): where no sample carries the noisy label 2, T's column 2 is zero and
    T has no inverse, so backward correction stops the study at its key; forward takes it."""
    clean = write_npz_dataset(here / "data-in" / "mine.npz")["y_train"]
    params, _, _ = _annotated(here, labels=np.where(clean == 2, 0, clean))
    params["methods"] = {"ce": [0.0], "forward": ["default"], "backward": ["default"]}
    text = error_of(params)
    assert re.fullmatch(r'params\.yaml: methods\.backward\[0\] = "default": backward correction needs an invertible '
                        r"transition matrix, and this T is singular \(condition number (inf|\d\.\d+e\+\d+), above "
                        r"1e\+12\): drop backward for this noise \(the realised T of annotations crowd on mine\)", text), text
    params["methods"] = {"ce": [0.0], "forward": ["default"]}
    grid.validate_params(params)
    params, _, _ = _annotated(here)                          # 20 of 90 labels changed: an invertible T
    params["methods"] = {"ce": [0.0], "backward": ["default"]}
    grid.validate_params(params)


ANNOTATION_ERRORS = {
    "length differs": (dict(labels=np.zeros(89, np.int64)), "noise_options.annotations.files.crowd.path = "
                       '"data-in/crowd.npy": holds 89 labels but mine has 90 training samples (one label per '
                       "training sample, in training order)"),
    "label outside 0..K-1": (dict(labels=np.r_[np.zeros(89, np.int64), 3]), "noise_options.annotations.files.crowd."
                             'path = "data-in/crowd.npy": label 3 of sample 89 is outside 0..2 (mine has K = 3 classes)'),
    "float labels": (dict(labels=np.zeros(90)), 'noise_options.annotations.files.crowd.path = "data-in/crowd.npy": '
                     "must hold a non-empty 1-D integer array of labels, got float64 with shape (90,)"),
    "npz without labels": (dict(suffix=".npz", labels=None, npz_key="y"), "noise_options.annotations.files.crowd.path"
                           ' = "data-in/crowd.npz": an annotation .npz holds one array, labels; found y'),
    "csv line": (dict(suffix=".csv", csv="label\n0\n1,2\n"), "noise_options.annotations.files.crowd.path = "
                 "\"data-in/crowd.csv\": line 3 is '1,2', not one label per line"),
    "unknown label set": (dict(noise={"annotations": ["crowd", "experts"]}), 'noise.annotations[1] = "experts": '
                          "unknown label set; give its file in noise_options.annotations.files (crowd)"),
    "missing file": (dict(path="data-in/absent.npy"), "noise_options.annotations.files.crowd.path = "
                     '"data-in/absent.npy": no such file'),
    "outside data-in": (dict(path="crowd.npy"), 'noise_options.annotations.files.crowd.path = "crowd.npy": must be a '
                        "relative path inside data-in/"),
    "wrong suffix": (dict(path="data-in/crowd.txt"), 'noise_options.annotations.files.crowd.path = "data-in/crowd.txt":'
                     " an annotation file ends with .npy, .npz, .csv"),
    "dataset not in datasets": (dict(datasets=["digits"]), 'noise.annotations[0] = "crowd": the label set crowd '
                                "belongs to mine (noise_options.annotations.files.crowd.dataset), which is not in "
                                "datasets"),
    "unknown dataset": (dict(owner="yours"), 'noise_options.annotations.files.crowd.dataset = "yours": allowed: '
                        "digits, mnist1d"),
    "name reads as a number": (dict(name="inf"), "noise_options.annotations.files.inf: key 'inf' reads as a number; "
                               "give the label set another name"),
    "bad name": (dict(name="Crowd"), 'noise.annotations[0] = "Crowd": must match ^[a-z][a-z0-9]*$'),
}


@pytest.mark.parametrize("case", sorted(ANNOTATION_ERRORS))
def test_bad_annotations_give_one_line(here, case):
    change, expected = ANNOTATION_ERRORS[case]
    change = dict(change)
    suffix, csv, key = change.pop("suffix", ".npy"), change.pop("csv", None), change.pop("npz_key", None)
    path, owner, name = change.pop("path", None), change.pop("owner", None), change.pop("name", None)
    labels = change.pop("labels", None)
    params, _, _ = _annotated(here, suffix, labels, **{k: v for k, v in change.items() if k != "datasets"})
    if csv is not None:
        (here / "data-in" / "crowd.csv").write_text(csv)
    if key is not None:
        np.savez(here / "data-in" / "crowd.npz", **{key: np.zeros(90, np.int64)})
    entry = params["noise_options"]["annotations"]["files"]["crowd"]
    entry.update({k: v for k, v in (("path", path), ("dataset", owner)) if v is not None})
    if name is not None:
        params["noise_options"]["annotations"]["files"] = {name: entry}
        params["noise"]["annotations"] = [name]
    if "datasets" in change:
        params["datasets"] = change["datasets"]
    assert error_of(params).startswith(f"params.yaml: {expected}")


def test_a_label_set_goes_only_with_its_dataset(here):
    params, _, _ = _annotated(here)
    params["datasets"] = ["digits", "mine"]
    ids = [g.id for g in grid.expand_groups(grid.validate_params(params))]
    assert ids == ["digits-symmetric-0.2-s0", "mine-symmetric-0.2-s0", "mine-annotations-crowd-s0"]
    params["dataset_noise"] = {"digits": {"annotations": ["crowd"]}}
    assert error_of(params) == ('params.yaml: dataset_noise.digits.annotations[0] = "crowd": the label set crowd '
                                "belongs to mine (noise_options.annotations.files.crowd.dataset), not to digits")


# --------------------------------------------------------------------------- command line, registries, DVC


def _smoothbench() -> str:
    exe = Path(sys.executable).parent / "smoothbench"
    return str(exe) if exe.exists() else "smoothbench"


def test_cli_data_of_your_own_files(here):
    write_npz_dataset(here / "data-in" / "mine.npz")
    ok = subprocess.run([_smoothbench(), "data", "mine", "--format", "npz", "--path", "data-in/mine.npz",
                         "--out", "data/mine.npz"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert data.load_dataset(here / "data" / "mine.npz").num_classes == 3
    bad = subprocess.run([_smoothbench(), "data", "digits", "--format", "npz", "--path", "data-in/mine.npz",
                          "--out", "data/digits.npz"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "smoothbench data: error: digits is a registered dataset; a dataset of your own files needs another name"]


def test_registries_and_the_schema_agree():
    root = schema.load_schema()
    files = root["properties"]["dataset_files"]["additionalProperties"]["properties"]
    assert files["format"]["enum"] == list(userdata.FORMATS)
    assert "annotations" in noise.names() and not noise.get("annotations").numeric
    assert root["$defs"]["own_dataset"]["not"] == {"$ref": "#/$defs/dataset"}
    assert noise.option_defaults("annotations") == {"files": None}


def test_dvc_stages_depend_on_data_in():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for stage in stages.values():
        # every stage tracks the whole params.yaml (dataset_files included) and the folder of your files
        assert userdata.INPUT_DIR in stage["deps"] and stage["params"] == [{"params.yaml": None}]
    assert (ROOT / userdata.INPUT_DIR / "README.md").is_file()
