"""A researcher's own files: a dataset given by files, and noisy labels given by a file of
real annotations (docs/formats.md, "Your own data" and "Your own labels").

- ``FORMATS`` — how a dataset of your own is given (params.yaml ``dataset_files``):
  ``npz`` (arrays ``x_train, y_train, x_test, y_test``, optional ``class_names``) or
  ``image_folder`` (``DIR/train/<class>/*.png|jpg|jpeg`` and ``DIR/test/<class>/...``).
- ``describe`` — what validation needs (classes, sizes), reading headers and labels only;
  ``read_dataset`` — the arrays the data step turns into the canonical ``data/NAME.npz``.
- ``input_files`` — the files a dataset is read from (the Snakemake data rule's inputs).
- ``read_annotations`` / ``annotation_problem`` / ``load_annotations`` — a label file
  (``.npy``, ``.npz`` with ``labels``, or ``.csv``): one label per training sample, in
  training order (noise kind ``annotations``).
- ``INPUT_DIR`` — every such file lies inside ``data-in/``, the folder dvc.yaml's stages
  depend on, so that DVC notices a changed file.

Every problem is a ``FileProblem``: one line, ``"<path>: <problem>"``; ``grid`` puts the
problem after the params key instead.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from .registry import one_line

FORMATS = ("npz", "image_folder")
INPUT_DIR = "data-in"
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test", "class_names")  # class_names optional
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
GREY_MODES, COLOUR_MODES = ("1", "L"), ("RGB", "P")  # Pillow modes, read as grey / RGB
ANNOTATION_SUFFIXES = (".npy", ".npz", ".csv")
SPLITS = ("train", "test")


class FileProblem(ValueError):
    """A user's file breaks its format: ``str()`` is ``"<path>: <problem>"``."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{self.path}: {problem}")


@dataclass(frozen=True)
class Summary:
    """What validation knows of a dataset of your own: K, split sizes, the canonical per-sample shape."""

    num_classes: int
    num_train: int
    num_test: int
    class_names: tuple[str, ...]
    input_shape: tuple[int, ...]


def input_dir_problem(path: str) -> str | None:
    """Why ``path`` (as written in params.yaml) is not a relative path inside data-in/, or None."""
    p = PurePosixPath(str(path).replace(os.sep, "/"))
    if p.is_absolute() or ".." in p.parts or len(p.parts) < 2 or p.parts[0] != INPUT_DIR:
        return (f"must be a relative path inside {INPUT_DIR}/ (the folder the DVC stages depend on, "
                f"so that a changed file reruns them), e.g. {INPUT_DIR}/{p.name or 'FILE'}")
    return None


# --------------------------------------------------------------------------- npz arrays


def _npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """key -> (shape, dtype) of each array of an .npz, from the .npy headers (no data read)."""
    out = {}
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if not info.filename.endswith(".npy"):
                    raise FileProblem(path, f"not an .npz of arrays (member {info.filename})")
                with z.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(f)
                out[info.filename[:-4]] = (tuple(shape), dtype)
    except FileProblem:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise FileProblem(path, f"not a readable .npz ({one_line(exc, 120)})") from None
    return out


def _x_layout(path: Path, key: str, shape: tuple[int, ...], dtype: np.dtype) -> tuple[str, tuple[int, ...]]:
    """(how to convert, canonical per-sample shape) of an x array, or a FileProblem."""
    accepted = ("accepted: float or uint8 vectors (N, D); uint8 images (N, H, W), (N, C, H, W) "
                "or (N, H, W, C) with C = 1 (grey) or 3 (RGB)")
    if dtype == np.uint8:
        if len(shape) == 2:
            return "float", shape[1:]
        if len(shape) == 3:
            return "channel", (1,) + shape[1:]
        if len(shape) == 4:
            first, last = shape[1] in (1, 3), shape[3] in (1, 3)
            if first and not last:
                return "chw", shape[1:]
            if last and not first:
                return "hwc", (shape[3],) + shape[1:3]
            why = "is ambiguous (both axis 1 and axis 3 could be channels)" if first else "has no channel axis"
            raise FileProblem(path, f"{key} has shape {shape}, which {why}; {accepted}")
        raise FileProblem(path, f"{key} has shape {shape}; {accepted}")
    if dtype.kind == "f":
        if len(shape) == 2:
            return "float", shape[1:]
        if len(shape) in (3, 4):
            raise FileProblem(path, f"{key} is {dtype} with shape {shape}: float arrays must be vectors (N, D); "
                              "give images as uint8 (e.g. np.round(x * 255).astype(np.uint8)) or flatten them")
        raise FileProblem(path, f"{key} has shape {shape}; {accepted}")
    raise FileProblem(path, f"{key} has dtype {dtype}; {accepted}")


def _labels_summary(path: Path, y_train: np.ndarray, y_test: np.ndarray, names: list[str] | None,
                    sizes: dict[str, int]) -> tuple[int, tuple[str, ...]]:
    """K and the class names; FileProblem unless the labels are 0..K-1 with every class in training."""
    for split, y in (("train", y_train), ("test", y_test)):
        if y.dtype.kind not in "iu" or y.ndim != 1:
            raise FileProblem(path, f"y_{split} must be a 1-D integer array, got {y.dtype} with shape {y.shape}")
        if y.size != sizes[split]:
            raise FileProblem(path, f"x_{split} has {sizes[split]} samples but y_{split} has {y.size} labels")
        if y.size == 0:
            raise FileProblem(path, f"the {split} split is empty")
    k = len(names) if names is not None else int(max(y_train.max(), y_test.max())) + 1
    if k < 2:
        raise FileProblem(path, f"fewer than 2 classes (K = {k}); a dataset needs at least 2")
    for split, y in (("train", y_train), ("test", y_test)):
        if y.min() < 0 or y.max() >= k:
            bad = int(y.min() if y.min() < 0 else y.max())
            given = f"{k} class_names" if names is not None else f"K = {k}"
            raise FileProblem(path, f"y_{split} holds label {bad}, outside 0..{k - 1} ({given})")
    absent = sorted(set(range(k)) - set(np.unique(y_train).tolist()))
    in_test = [c for c in absent if np.any(y_test == c)]
    if in_test:
        c = in_test[0]
        name = f" ({names[c]})" if names is not None else ""
        raise FileProblem(path, f"class {c}{name} is in the test set only: y_test has {int(np.sum(y_test == c))} "
                          f"sample(s) of it and y_train none, and a model cannot learn a class it never sees; add "
                          f"training samples of class {c} or leave its test samples out")
    if absent:
        raise FileProblem(path, f"labels must be 0..K-1 with every class in y_train: class {absent[0]} has no "
                          f"training sample (K = {k}; labels are class indices counted from 0)")
    return k, tuple(names) if names is not None else tuple(str(i) for i in range(k))


def _check_npz(path: Path) -> tuple[Summary, dict[str, str]]:
    if not path.is_file():
        raise FileProblem(path, "no such file" if not path.exists() else "not a file (format npz)")
    heads = _npz_headers(path)
    missing = [k for k in NPZ_KEYS[:4] if k not in heads]
    extra = sorted(set(heads) - set(NPZ_KEYS))
    if missing or extra:
        what = f"missing {', '.join(missing)}" if missing else f"unknown key(s) {', '.join(extra)}"
        raise FileProblem(path, f"{what}; an npz dataset holds x_train, y_train, x_test, y_test "
                          "and optionally class_names")
    how, shapes = {}, {}
    for split in SPLITS:
        shape, dtype = heads[f"x_{split}"]
        how[split], shapes[split] = _x_layout(path, f"x_{split}", shape, dtype)
    (tr_shape, tr_dtype), (te_shape, te_dtype) = heads["x_train"], heads["x_test"]
    if tr_dtype != te_dtype:
        raise FileProblem(path, f"x_train is {tr_dtype} but x_test is {te_dtype}; give both the same dtype")
    if shapes["train"] != shapes["test"]:
        raise FileProblem(path, f"per-sample shapes differ: x_train {tr_shape[1:]} vs x_test {te_shape[1:]}")
    for key in ("y_train", "y_test", "class_names"):
        if key in heads and heads[key][1].hasobject:
            raise FileProblem(path, f"{key} is an object array (pickled); save it as a plain array "
                              "(np.array of int, or of str for class_names)")
    with np.load(path, allow_pickle=False) as z:
        y_train, y_test = z["y_train"], z["y_test"]
        names = None
        if "class_names" in heads:
            arr = z["class_names"]
            if arr.dtype.kind != "U" or arr.ndim != 1:
                raise FileProblem(path, f"class_names must be a 1-D str array, got {arr.dtype} with shape {arr.shape}")
            names = [str(n) for n in arr]
            if len(set(names)) != len(names) or "" in names:
                raise FileProblem(path, "class_names must be distinct, non-empty names")
    k, names_t = _labels_summary(path, y_train, y_test, names, {"train": tr_shape[0], "test": te_shape[0]})
    return Summary(k, tr_shape[0], te_shape[0], names_t, tuple(int(d) for d in shapes["train"])), how


def _convert(x: np.ndarray, how: str) -> np.ndarray:
    if how == "float":
        return np.ascontiguousarray(x, dtype=np.float32)
    if how == "channel":
        return np.ascontiguousarray(x[:, None])
    if how == "hwc":
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return np.ascontiguousarray(x)


def _read_npz(path: Path) -> tuple:
    summary, how = _check_npz(path)
    with np.load(path, allow_pickle=False) as z:
        out = []
        for split in SPLITS:
            x = _convert(z[f"x_{split}"], how[split])
            if x.dtype == np.float32 and not np.isfinite(x).all():
                raise FileProblem(path, f"x_{split} holds NaN or infinite values (as float32)")
            out += [x, z[f"y_{split}"].astype(np.int64)]
    return out[0], out[1], out[2], out[3], summary.class_names


# --------------------------------------------------------------------------- a folder of images per class


def _visible(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: p.name)


def _image_listing(root: Path) -> tuple[tuple[str, ...], dict[str, list[tuple[int, Path]]]]:
    """(class names, split -> [(label, file)]): classes are train/'s folders sorted by name,
    files sorted by name within a class; names starting with '.' are ignored."""
    if not root.is_dir():
        raise FileProblem(root, "no such folder" if not root.exists() else "not a folder (format image_folder)")
    for split in SPLITS:
        if not (root / split).is_dir():
            raise FileProblem(root, f"no {split}/ folder; an image_folder dataset is DIR/train/<class>/*.png "
                              "and DIR/test/<class>/*.png")
    classes: tuple[str, ...] = ()
    listing: dict[str, list[tuple[int, Path]]] = {}
    for split in SPLITS:
        folders = _visible(root / split)
        for f in folders:
            if not f.is_dir():
                raise FileProblem(root, f"{split}/{f.name} is not a class folder; images go in {split}/<class>/")
        if split == "train":
            classes = tuple(f.name for f in folders)
            if len(classes) < 2:
                raise FileProblem(root, f"fewer than 2 classes: train/ has {len(classes)} class folder(s)"
                                  f"{' (' + ', '.join(classes) + ')' if classes else ''}; a dataset needs at least 2")
        listing[split] = []
        for f in folders:
            if f.name not in classes:
                raise FileProblem(root, f"test/{f.name}: no class {f.name} in train/ (classes: {', '.join(classes)})")
            files = _visible(f)
            for img in files:
                if not img.is_file() or img.suffix.lower() not in IMAGE_SUFFIXES:
                    raise FileProblem(root, f"{split}/{f.name}/{img.name} is not an image file; accepted: "
                                      f"{', '.join(IMAGE_SUFFIXES)} (names starting with '.' are ignored)")
            if split == "train" and not files:
                raise FileProblem(root, f"train/{f.name} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            listing[split] += [(classes.index(f.name), img) for img in files]
    if not listing["test"]:
        raise FileProblem(root, f"test/ holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return classes, listing


def _scan_images(root: Path, listing: dict) -> tuple[tuple[int, int], int]:
    """((height, width), channels) of the dataset: every image opened (header only), checked for
    its mode and size; the dataset is RGB if any image is colour, else grey."""
    from PIL import Image

    first, colour = None, False
    for split in SPLITS:
        for _, f in listing[split]:
            rel = f.relative_to(root).as_posix()
            try:
                with Image.open(f) as im:
                    size, mode = im.size, im.mode
            except Exception as exc:  # any Pillow failure: not an image we can read
                raise FileProblem(root, f"{rel} is not a readable image ({one_line(exc, 100)})") from None
            if mode not in GREY_MODES + COLOUR_MODES:
                raise FileProblem(root, f"{rel} has image mode {mode}; accepted: grey (L, 1) or colour (RGB, P) "
                                  f"({_mode_hint(mode)})")
            if first is None:
                first = (size, rel)
            elif size != first[0]:
                raise FileProblem(root, f"{rel} is {size[0]}x{size[1]} pixels but {first[1]} is "
                                  f"{first[0][0]}x{first[0][1]}: all images must have the same size")
            colour = colour or mode in COLOUR_MODES
    assert first is not None
    return (first[0][1], first[0][0]), 3 if colour else 1


def _mode_hint(mode: str) -> str:
    """What to do with an image of a Pillow mode that is not read: its 16 bits brought to 8 (a
    16-bit PNG opens as I;16, or I in older Pillow), its alpha channel dropped, or its colours
    converted."""
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        return ("a 16-bit image: 16-bit images are not supported, save it with 8 bits per pixel, e.g. "
                "Image.fromarray((np.asarray(im) >> 8).astype(np.uint8)) with Pillow or `convert IN -depth 8 OUT` "
                "with ImageMagick")
    if "A" in mode or "a" in mode:
        return "drop an alpha channel, e.g. Image.convert('RGB')"
    return "convert it, e.g. Image.convert('RGB')"


def _check_image_folder(root: Path) -> tuple[Summary, dict]:
    classes, listing = _image_listing(root)
    (h, w), c = _scan_images(root, listing)
    return Summary(len(classes), len(listing["train"]), len(listing["test"]), classes, (c, h, w)), listing


def _read_image_folder(root: Path) -> tuple:
    from PIL import Image

    summary, listing = _check_image_folder(root)
    mode = "RGB" if summary.input_shape[0] == 3 else "L"
    out = []
    for split in SPLITS:
        x = np.empty((len(listing[split]),) + summary.input_shape, dtype=np.uint8)
        for i, (_, f) in enumerate(listing[split]):
            try:
                with Image.open(f) as im:
                    a = np.asarray(im.convert(mode), dtype=np.uint8)
            except Exception as exc:  # truncated files fail only when decoded
                raise FileProblem(root, f"{f.relative_to(root).as_posix()} cannot be decoded "
                                  f"({one_line(exc, 100)})") from None
            x[i] = a.transpose(2, 0, 1) if a.ndim == 3 else a[None]
        out += [x, np.array([label for label, _ in listing[split]], dtype=np.int64)]
    return out[0], out[1], out[2], out[3], summary.class_names


# --------------------------------------------------------------------------- the dataset entry points

def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"dataset file format {fmt!r} is unknown; allowed: {', '.join(FORMATS)}")


def describe(fmt: str, path: str | os.PathLike) -> Summary:
    """Classes, sizes and per-sample shape of a dataset of your own, checked without reading
    the inputs' values (npz: array headers and the labels; images: each file's header).
    FileProblem on the first problem."""
    _check_format(fmt)
    return (_check_npz(Path(path)) if fmt == "npz" else _check_image_folder(Path(path)))[0]


def read_dataset(fmt: str, path: str | os.PathLike) -> tuple:
    """``(x_train, y_train, x_test, y_test, class_names)`` of a dataset of your own, converted to
    the canonical arrays (uint8 (N, C, H, W) images or float32 (N, D) vectors, int64 labels)."""
    _check_format(fmt)
    return _read_npz(Path(path)) if fmt == "npz" else _read_image_folder(Path(path))


def train_labels(fmt: str, path: str | os.PathLike) -> np.ndarray:
    """The training labels (int64) of a dataset of your own, in training order, as ``read_dataset``
    gives them, read without the inputs' values (npz: y_train; images: each file's class folder)."""
    _check_format(fmt)
    if fmt == "npz":
        _check_npz(Path(path))
        with np.load(path, allow_pickle=False) as z:
            return z["y_train"].astype(np.int64)
    _, listing = _image_listing(Path(path))
    return np.array([label for label, _ in listing["train"]], dtype=np.int64)


def input_files(fmt: str, path: str) -> list[str]:
    """The files ``read_dataset`` reads, as paths below ``path`` (the data rule's inputs)."""
    _check_format(fmt)
    if fmt == "npz":
        return [path]
    _, listing = _image_listing(Path(path))
    return [os.path.join(path, f.relative_to(path).as_posix()) for split in SPLITS for _, f in listing[split]]


# --------------------------------------------------------------------------- annotations


def _read_csv_labels(path: Path) -> np.ndarray:
    """One integer label per line; a first line that is one word (e.g. ``label``) is a header."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise FileProblem(path, f"cannot read ({one_line(exc, 100)})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    start = 1 if lines and not lines[0].strip().lstrip("+-").isdigit() and lines[0].strip().isidentifier() else 0
    labels = []
    for n, line in enumerate(lines[start:], start + 1):
        s = line.strip()
        try:
            labels.append(int(s))
        except ValueError:
            what = "one label per line" if any(c in s for c in ",;\t ") else "an integer label"
            raise FileProblem(path, f"line {n} is {s!r}, not {what}") from None
    return np.array(labels, dtype=np.int64)


def read_annotations(path: str | os.PathLike) -> np.ndarray:
    """The labels of an annotation file (int64, 1-D): ``.npy`` (one integer array), ``.npz``
    (one integer array named ``labels``) or ``.csv`` (one integer per line, optional header)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in ANNOTATION_SUFFIXES:
        raise FileProblem(p, f"an annotation file ends with {', '.join(ANNOTATION_SUFFIXES)}")
    if not p.is_file():
        raise FileProblem(p, "no such file" if not p.exists() else "not a file")
    try:
        if suffix == ".csv":
            y = _read_csv_labels(p)
        elif suffix == ".npy":
            y = np.load(p, allow_pickle=False)
        else:
            with np.load(p, allow_pickle=False) as z:
                keys = list(z.files)
                if keys != ["labels"]:
                    raise FileProblem(p, "an annotation .npz holds one array, labels; found "
                                      f"{', '.join(keys) or 'none'}")
                y = z["labels"]
    except FileProblem:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise FileProblem(p, f"not a readable {suffix} file ({one_line(exc, 100)})") from None
    if not isinstance(y, np.ndarray):
        raise FileProblem(p, f"not a {suffix} file of one array")
    if y.ndim != 1 or y.dtype.kind not in "iu" or y.size == 0:
        raise FileProblem(p, f"must hold a non-empty 1-D integer array of labels, got {y.dtype} with shape {y.shape}")
    return y.astype(np.int64)


def annotation_problem(labels: np.ndarray, num_train: int | None, num_classes: int, dataset: str) -> str | None:
    """Why ``labels`` cannot be the noisy training labels of ``dataset`` (None when they can;
    the length is checked only when ``num_train`` is known)."""
    if num_train is not None and labels.size != num_train:
        return (f"holds {labels.size} labels but {dataset} has {num_train} training samples "
                "(one label per training sample, in training order)")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        return (f"label {int(labels[bad[0]])} of sample {int(bad[0])} is outside 0..{num_classes - 1} "
                f"({dataset} has K = {num_classes} classes)")
    return None


def load_annotations(path: str | os.PathLike, num_train: int, num_classes: int, dataset: str) -> np.ndarray:
    """``read_annotations`` checked against the dataset's training split: FileProblem unless
    there is one label in 0..K-1 per training sample."""
    labels = read_annotations(path)
    problem = annotation_problem(labels, num_train, num_classes, dataset)
    if problem:
        raise FileProblem(path, problem)
    return labels
