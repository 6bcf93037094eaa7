"""Fixtures shared by several test modules (imported as ``helpers``: pytest puts tests/ on sys.path).

Small datasets in the canonical format, and the kill-and-resume check of the training
command, which test_train (CPU) and test_cuda (CUDA) both run.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch


def write_dataset(path: Path, n_train=400, n_test=200, d=12, k=4, seed=0, image=False):
    """A small, learnable synthetic dataset in the canonical format (via data's writer)."""
    from smoothbench import data

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
    from smoothbench import data

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
    from smoothbench import noise

    out = tmp_path / f"labels-{rate}-{seed}.npz"
    noise.make_noisy_labels(str(data_path), "symmetric", rate, seed, str(out))
    return out


def kill_and_resume(cmd: list[str], tmp_path: Path, epochs: int, cell_ids: list[str],
                    timeout: float = 120, settle: float = 0.3, variant: str = "direct") -> None:
    """Run ``cmd`` (a ``smoothbench train`` command line without --out) to the end once; run it
    again, SIGKILL it ``settle`` seconds after its first checkpoint appears, run it again to
    resume; the resumed run must end with the uninterrupted run's group.json and curves, byte
    for byte. ``epochs``: the variant's own epochs (the kill must land before the last)."""
    ref = subprocess.run(cmd + ["--out", str(tmp_path / "ref")], capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    ckpt = tmp_path / "ck"
    proc = subprocess.Popen(cmd + ["--out", str(tmp_path / "killed"), "--checkpoint-dir", str(ckpt)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + timeout
    while not list(ckpt.glob("*.pt")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(settle)                               # let it get into the middle of a later epoch
    assert proc.poll() is None, "the run ended before it could be killed; make it longer"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "group.json").exists()
    own = ckpt / f"{variant}.pt"
    if own.exists():                                 # killed in the variant's own phase (else: in its warm-up)
        state = torch.load(own, weights_only=True)
        assert 1 <= state["done"] < epochs and state["final"] is None, f"checkpoint at {state['done']} of {epochs}"
    resumed = subprocess.run(cmd + ["--out", str(tmp_path / "killed"), "--checkpoint-dir", str(ckpt)],
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from epoch" in resumed.stderr
    assert (tmp_path / "ref/group.json").read_text() == (tmp_path / "killed/group.json").read_text()
    for cell in cell_ids:
        assert (tmp_path / f"ref/cells/{variant}" / cell / "curves.csv").read_bytes() == \
            (tmp_path / f"killed/cells/{variant}" / cell / "curves.csv").read_bytes(), cell


def train_command(data: Path, labels: Path, cells: str, protocol: str, *extra: str) -> list[str]:
    """``smoothbench train`` through this interpreter, without --out (kill_and_resume adds it)."""
    return [sys.executable, "-m", "smoothbench.cli", "train", "--data", str(data), "--labels", str(labels),
            "--cells", cells, "--protocol", protocol, "--no-progress", *extra]
