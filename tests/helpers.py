"""Fixtures shared by several test modules (imported as ``helpers``: pytest puts tests/ on sys.path).

Small datasets in the canonical format, and the kill-and-resume check of the training
command, which test_train (CPU) and test_cuda (CUDA) both run.
"""

from __future__ import annotations

import math
import pickle
import struct
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch


def write_dataset(path: Path, n_train=400, n_test=200, d=12, k=4, seed=0, image=False):
    """A small, learnable synthetic dataset in the canonical format (via data's writer)."""
    from smoothbench.data import datasets as data

    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1.5, size=(k, d))

    def draw(n):
        y = rng.integers(0, k, n)
        x = centers[y] + rng.normal(0, 1.0, size=(n, d))
        return x.astype(np.float32), y.astype(np.int64)

    xtr, ytr = draw(n_train)
    xte, yte = draw(n_test)
    if image:
        side = math.isqrt(d)
        xtr = (np.clip(xtr[:, : side * side], -3, 3) * 40 + 128).astype(np.uint8).reshape(-1, 1, side, side)
        xte = (np.clip(xte[:, : side * side], -3, 3) * 40 + 128).astype(np.uint8).reshape(-1, 1, side, side)
    data.save_dataset(path, name="toy", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte,
                      class_names=[f"c{i}" for i in range(k)])
    return path


def write_cifar_shaped(path: Path, n_train=256, n_test=128, k=10, seed=0, side=32):
    """CIFAR-shaped uint8 images (N, 3, side, side), K classes, learnable: each class has its
    own smooth colour pattern, plus pixel noise. Everything drawn from ``seed``."""
    from smoothbench.data import datasets as data

    rng = np.random.default_rng(seed)
    patterns = rng.normal(0, 1, size=(k, 3, 4, 4)).repeat(side // 4, axis=2).repeat(side // 4, axis=3)

    def draw(n):
        y = rng.integers(0, k, n)
        x = patterns[y] + rng.normal(0, 1.0, size=(n, 3, side, side))
        return (np.clip(x, -3, 3) * 40 + 128).astype(np.uint8), y.astype(np.int64)

    xtr, ytr = draw(n_train)
    xte, yte = draw(n_test)
    data.save_dataset(path, name="tinycifar", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte,
                      class_names=[f"c{i}" for i in range(k)])
    return path


def write_labels(tmp_path: Path, data_path: Path, rate=0.3, seed=0):
    from smoothbench.noise import labels as noise

    out = tmp_path / f"labels-{rate}-{seed}.npz"
    noise.make_noisy_labels(str(data_path), "symmetric", rate, seed, str(out))
    return out


def kill_and_resume(cmd: list[str], tmp_path: Path, epochs: int, cell_ids: list[str],
                    timeout: float = 120, settle: float = 0.3, variant: str = "direct", outs: int = 1,
                    wait_for: str = "*.pt") -> None:
    """Run ``cmd`` (a ``smoothbench train`` command line without --out) to the end once; run it
    again, SIGKILL it ``settle`` seconds after its first checkpoint matching ``wait_for`` appears
    (``f"{variant}.pt"``: inside the variant's own phase), run it again to resume; the resumed run
    must end with the uninterrupted run's group.json and curves, byte for byte. ``epochs``: the
    variant's own epochs (the kill must land before the last); ``outs``: the number of groups
    (seeds, one labels file each) the command trains."""
    def out(name):
        return ["--out", *(str(tmp_path / f"{name}{i}") for i in range(outs))]

    ref = subprocess.run(cmd + out("ref"), capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    ckpt = tmp_path / "ck"
    proc = subprocess.Popen(cmd + out("killed") + ["--checkpoint-dir", str(ckpt)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + timeout
    while not list(ckpt.glob(wait_for)) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(settle)                               # let it get into the middle of a later epoch
    assert proc.poll() is None, "the run ended before it could be killed; make it longer"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed0" / "group.json").exists()
    own = ckpt / f"{variant}.pt"
    if own.exists():                                 # killed in the variant's own phase (else: in its warm-up)
        state = torch.load(own, weights_only=True)
        assert 1 <= state["done"] < epochs and state["final"] is None, f"checkpoint at {state['done']} of {epochs}"
    resumed = subprocess.run(cmd + out("killed") + ["--checkpoint-dir", str(ckpt)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from epoch" in resumed.stderr
    for i in range(outs):
        assert (tmp_path / f"ref{i}/group.json").read_text() == (tmp_path / f"killed{i}/group.json").read_text()
        assert (tmp_path / f"ref{i}/test_correct.npz").read_bytes() == \
            (tmp_path / f"killed{i}/test_correct.npz").read_bytes()
        for cell in cell_ids:
            assert (tmp_path / f"ref{i}/cells/{variant}" / cell / "curves.csv").read_bytes() == \
                (tmp_path / f"killed{i}/cells/{variant}" / cell / "curves.csv").read_bytes(), cell


def train_command(data: Path, labels: Path, cells: str, protocol: str, *extra: str) -> list[str]:
    """``smoothbench train`` through this interpreter, without --out (kill_and_resume adds it)."""
    return [sys.executable, "-m", "smoothbench.cli", "train", "--data", str(data), "--labels", str(labels),
            "--cells", cells, "--protocol", protocol, "--no-progress", *extra]


# --------------------------------------------------------------------------- raw CIFAR fixtures
# Small files in the published on-disk formats (python pickles of CIFAR-10/100, CIFAR-N .pt).


def py2_pickle(obj) -> bytes:
    """Encode ``obj`` as Python 2's cPickle (protocol 2) did for the published CIFAR files:
    str as 8-bit strings, uint8 arrays through numpy.core.multiarray._reconstruct."""

    def s(b: bytes) -> bytes:
        return (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<I", len(b))) + b

    def enc(v) -> bytes:
        if isinstance(v, dict):
            return b"}(" + b"".join(enc(k) + enc(x) for k, x in v.items()) + b"u"
        if isinstance(v, list):
            return b"](" + b"".join(enc(x) for x in v) + b"e"
        if isinstance(v, str):
            return s(v.encode("latin1"))
        if isinstance(v, int):
            return b"J" + struct.pack("<i", v)
        assert isinstance(v, np.ndarray) and v.dtype == np.uint8 and v.ndim == 2
        return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + s(b"b") + b"\x87R"
                + b"(K\x01" + enc(v.shape[0]) + enc(v.shape[1]) + b"\x86"
                + b"cnumpy\ndtype\n" + s(b"u1") + b"K\x00K\x01\x87R"
                + b"(K\x03" + s(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
                + b"\x89" + s(v.tobytes()) + b"tb")

    return b"\x80\x02" + enc(obj) + b"."


def write_cifar_file(path: Path, obj: dict, style: str) -> None:
    """``style``: 'py2' (as published), 'py3' (bytes keys, default protocol), 'py3p2' (protocol 2)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if style == "py2":
        path.write_bytes(py2_pickle(obj))
        return
    enc = {k.encode(): ([n.encode() for n in v] if isinstance(v, list) and v and isinstance(v[0], str) else v)
           for k, v in obj.items()}
    path.write_bytes(pickle.dumps(enc, protocol=2 if style == "py3p2" else pickle.DEFAULT_PROTOCOL))


def write_cifar_raw(cache: Path, n_per_batch: int = 24, n_test: int = 40, seed: int = 0) -> dict:
    """``cache/cifar-10-batches-py`` (data_batch_1..5, test_batch, batches.meta) and
    ``cache/cifar-100-python`` (train, test, meta) as published (Python 2 pickles), with
    random images whose labels are learnable from the mean colour; returns the training labels."""
    from smoothbench.data import datasets as data

    rng = np.random.default_rng(seed)

    def images(labels, k):
        base = rng.integers(0, 120, size=(len(labels), 3072)).astype(np.int64)
        return np.clip(base + (np.asarray(labels)[:, None] * 127 // (k - 1)), 0, 255).astype(np.uint8)

    folder = cache / "cifar-10-batches-py"
    train10 = []
    for b in range(1, 6):
        y = rng.integers(0, 10, n_per_batch).tolist()
        train10 += y
        write_cifar_file(folder / f"data_batch_{b}", {"batch_label": f"training batch {b} of 5", "labels": y,
                                                      "data": images(y, 10),
                                                      "filenames": [f"b{b}_{i}.png" for i in range(n_per_batch)]},
                         "py2")
    y = rng.integers(0, 10, n_test).tolist()
    write_cifar_file(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": y, "data": images(y, 10),
                                             "filenames": [f"t{i}.png" for i in range(n_test)]}, "py2")
    write_cifar_file(folder / "batches.meta", {"num_cases_per_batch": n_per_batch, "num_vis": 3072,
                                               "label_names": list(data.DATASETS["cifar10"].class_names)}, "py2")
    folder = cache / "cifar-100-python"
    train100 = []
    for split, count in (("train", 5 * n_per_batch), ("test", n_test)):
        fine = rng.integers(0, 100, count).tolist()
        if split == "train":
            train100 = fine
        write_cifar_file(folder / split, {"filenames": [f"{split}{i}.png" for i in range(count)],
                                          "batch_label": f"{split} batch", "fine_labels": fine,
                                          "coarse_labels": [f // 5 for f in fine], "data": images(fine, 100)}, "py2")
    write_cifar_file(folder / "meta", {"fine_label_names": list(data.DATASETS["cifar100"].class_names),
                                       "coarse_label_names": [f"super{i}" for i in range(20)]}, "py2")
    return {"cifar10": np.array(train10, dtype=np.int64), "cifar100": np.array(train100, dtype=np.int64)}


def write_cifarn(folder: Path, clean10: np.ndarray, clean100: np.ndarray, seed: int = 0) -> None:
    """CIFAR-10_human.pt and CIFAR-100_human.pt in the published layout (torch.save of a dict of
    int64 arrays): each human label set keeps the clean label with probability 0.7."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)

    def noisy(clean, k):
        flip = rng.random(clean.size) < 0.3
        return np.where(flip, rng.integers(0, k, clean.size), clean).astype(np.int64)

    torch.save({"clean_label": clean10, "aggre_label": noisy(clean10, 10), "worse_label": noisy(clean10, 10),
                "random_label1": noisy(clean10, 10), "random_label2": noisy(clean10, 10),
                "random_label3": noisy(clean10, 10)}, folder / "CIFAR-10_human.pt")
    torch.save({"clean_label": clean100, "noisy_label": noisy(clean100, 100)}, folder / "CIFAR-100_human.pt")


# --------------------------------------------------------------------------- the reproduction check


def report_files_of(folder: Path) -> list[str]:
    """The report files of a folder as the reproduction check counts them: every file below it
    but hidden ones and a committed copy's params.yaml (the study it describes)."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
                  and p.relative_to(folder).as_posix() != "params.yaml")


def copy_reports(expected: Path, dest: Path) -> Path:
    """A report folder built as the committed copy ``expected`` says (its files, not its params.yaml)."""
    shutil.copytree(expected, dest, ignore=lambda d, names: ["params.yaml"] if Path(d) == expected else [])
    return dest


def flip_one_byte(path: Path) -> None:
    """Change one byte in the middle of a file (a planted mismatch)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
