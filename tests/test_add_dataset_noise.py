"""Adding a dataset or a noise kind is one place: a module of data/ or noise/ with one registry
entry, written into a copy of the package (docs/extending.md's SVHN and uniform noise, and a toy
dataset built in memory), is taken by `smoothbench data` (--list too), `smoothbench noise`
(--help too), the schema's enums, the study's checks and the grid; and a tiny study on the toy
dataset under uniform noise runs through the real Snakemake."""

from __future__ import annotations

import copy
import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from smoothbench import noise
from smoothbench.core.vocabulary import derive_seed
from smoothbench.data import datasets

ROOT = Path(__file__).resolve().parents[1]

# A dataset built in memory, in closed form: sample i of a split has the features
# (i mod 7, i div 7) / 10 + the split's offset and the label i mod 3.
TOY_DATASET = '''\
# src/smoothbench/data/toyrows.py
"""A toy dataset built in memory: three classes of two features, in closed form."""

from pathlib import Path

import numpy as np

from .registry import Arrays, DatasetSpec, register


def _split(n: int, offset: float) -> tuple[np.ndarray, np.ndarray]:
    i = np.arange(n)
    return (np.stack([i % 7, i // 7], axis=1) / 10 + offset).astype(np.float32), (i % 3).astype(np.int64)


def _build(spec: DatasetSpec, cache_dir: Path) -> Arrays:
    (x_train, y_train), (x_test, y_test) = _split(60, 0.0), _split(30, 0.5)
    return x_train, y_train, x_test, y_test, spec.class_names


register(DatasetSpec(name="toyrows", class_names=("a", "b", "c"), input_shape=(2,), family="tabular",
                     sizes=(60, 30), source="three classes in closed form, in memory", read=_build))
'''


def toy_split(n: int, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """The toy dataset's split, written out again here: the reference the built file is held to."""
    x = np.array([[(i % 7) / 10 + offset, (i // 7) / 10 + offset] for i in range(n)], dtype=np.float32)
    return x, np.array([i % 3 for i in range(n)], dtype=np.int64)


def docs_example(heading: str) -> tuple[str, str]:
    """(path, code) of the python block of docs/extending.md's section ``heading``."""
    section = (ROOT / "docs" / "extending.md").read_text().split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    return re.match(r"# (\S+\.py)\n", code).group(1), code


def write_module(package: Path, code: str) -> str:
    """Write a module whose first line names its path below src/; return that path."""
    rel = re.match(r"# src/(\S+\.py)\n", code).group(1)
    target = package / rel
    assert target.parent.is_dir() and not target.exists(), rel   # a new file, in an existing folder
    target.write_text(code)
    return rel


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    """A copy of src/ with three new modules, one registry entry each, and nothing else changed."""
    src = tmp_path_factory.mktemp("copy") / "src"
    shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    added = [write_module(src, docs_example(h)[1]) for h in ("Add a dataset", "Add a noise kind")]
    added.append(write_module(src, TOY_DATASET))
    assert added == ["smoothbench/data/svhn.py", "smoothbench/noise/uniform.py", "smoothbench/data/toyrows.py"]
    return src


def smoothbench(package: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smoothbench.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(package), "PATH": "/usr/bin:/bin"})


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def refused(proc: subprocess.CompletedProcess) -> str:
    """The one line a refused command prints."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    return lines[0]


def test_the_docs_dataset_entry_reads_svhn_files(package, tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    cache = tmp_path / "cache" / "svhn"
    cache.mkdir(parents=True)
    split = {}
    for name, n in (("train", 12), ("test", 5)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = rng.integers(1, 11, (n, 1)).astype(np.uint8)          # SVHN's labels: 1..10, 10 is the digit 0
        y[0, 0] = 10
        savemat(cache / f"{name}_32x32.mat", {"X": x, "y": y})
        split[name] = x, y
    listed = ok(smoothbench(package, tmp_path, "data", "--list"))
    assert re.search(r"^svhn +K=10 +image +3x32x32 +73257/26032 +cifar10 +svhn/ in the cache folder", listed, re.M)
    ok(smoothbench(package, tmp_path, "data", "svhn", "--cache-dir", "cache", "--out", "data/svhn.npz"))
    built = datasets.load_dataset(tmp_path / "data" / "svhn.npz")
    for name, (x, y) in split.items():
        got_x, got_y = (built.x_train, built.y_train) if name == "train" else (built.x_test, built.y_test)
        for i in range(x.shape[3]):                               # image i, channel c, row r, column col
            assert np.array_equal(got_x[i], np.stack([x[:, :, c, i] for c in range(3)]))
        assert got_y.tolist() == [0 if v == 10 else int(v) for v in y[:, 0]]
    assert built.class_names == tuple("0123456789")
    (cache / "test_32x32.mat").write_bytes(b"not a mat file")
    line = refused(smoothbench(package, tmp_path, "data", "svhn", "--cache-dir", "cache", "--out", "data/x.npz"))
    assert "test_32x32.mat: not a readable .mat file" in line


def test_a_new_dataset_and_noise_kind_reach_data_noise_schema_checks_and_grid(package, tmp_path):
    # smoothbench data: --list and the canonical file, held to the closed form
    listed = ok(smoothbench(package, tmp_path, "data", "--list"))
    assert re.search(r"^toyrows +K=3 +vector +2 +60/30 +tabular +embedded: three classes", listed, re.M)
    ok(smoothbench(package, tmp_path, "data", "toyrows", "--out", "data/toyrows.npz"))
    built = datasets.load_dataset(tmp_path / "data" / "toyrows.npz")
    (x_train, y_train), (x_test, y_test) = toy_split(60, 0.0), toy_split(30, 0.5)
    for got, want in ((built.x_train, x_train), (built.y_train, y_train), (built.x_test, x_test),
                      (built.y_test, y_test)):
        assert got.dtype == want.dtype and np.array_equal(got, want)

    # smoothbench noise: --help, the labels drawn from T = (1 - r) I + r/K, the rate range
    helped = " ".join(ok(smoothbench(package, tmp_path, "noise", "--help")).split())
    assert "uniform: with probability rate a label is redrawn uniformly over all K classes; rate: [0, 1)" in helped
    assert "sampler=inverse_cdf|reference (symmetric, pairflip, asymmetric, uniform)" in helped
    ok(smoothbench(package, tmp_path, "noise", "--data", "data/toyrows.npz", "--kind", "uniform", "--rate", "0.3",
                   "--seed", "0", "--out", "noisy/u.npz"))
    with np.load(tmp_path / "noisy" / "u.npz") as z:
        t, noisy = z["transition"], z["noisy_labels"]
    want_t = np.full((3, 3), 0.1) + np.diag([0.7] * 3)
    assert np.allclose(t, want_t, rtol=0, atol=1e-15)
    assert np.array_equal(noisy, noise.corrupt_labels(y_train, want_t, derive_seed("noise", "toyrows", "uniform",
                                                                                   "0.3", 0)))
    stats = json.loads((tmp_path / "noisy" / "u.json").read_text())
    assert stats["options"] == {"sampler": "inverse_cdf"}
    # a label changes with probability r (K-1)/K = 0.2: 60 labels put 5 standard deviations at +-0.26
    assert abs(stats["realised_rate"] - 0.2) < 5 * (0.2 * 0.8 / 60) ** 0.5
    line = refused(smoothbench(package, tmp_path, "noise", "--data", "data/toyrows.npz", "--kind", "uniform",
                               "--rate", "1", "--seed", "0", "--out", "noisy/x.npz"))
    assert "out of range for uniform noise with 3 classes: allowed [0, 1)" in line

    # the schema's enums and the noise options, generated from the registries
    code = ("import json; from smoothbench.study import params as p; d = p.study_schema()['$defs']; "
            "print(json.dumps([d['dataset']['enum'], d['noise_kind']['enum'], "
            "list(d['noise_options']['properties']['uniform']['properties'])]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(package), "PATH": "/usr/bin:/bin"})
    dataset_enum, kind_enum, uniform_options = json.loads(proc.stdout)
    assert dataset_enum[-2:] == ["svhn", "toyrows"] and kind_enum[-1] == "uniform" and uniform_options == ["sampler"]

    # the study's checks and the grid
    study = {"datasets": ["toyrows"], "noise": {"uniform": [0.2, 0.5]}, "methods": {"ce": [0.0], "ls": [0.4]},
             "seeds": [0, 1], "noise_options": {"uniform": {"sampler": "reference"}}}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    assert "study.yaml: valid — 4 groups, 8 cells" in ok(smoothbench(package, tmp_path, "validate", "study.yaml"))
    groups = [line.split("\t")[0] for line in ok(smoothbench(package, tmp_path, "grid", "study.yaml")).splitlines()]
    assert groups == ["toyrows-uniform-0.2-s0", "toyrows-uniform-0.2-s1", "toyrows-uniform-0.5-s0",
                      "toyrows-uniform-0.5-s1"]
    for change, expected in (
            ({"noise": {"uniform": [1.0]}},
             "bad.yaml: noise.uniform[0] = 1.0: uniform noise rates must lie in [0, 1) for toyrows (K = 3 classes)"),
            ({"noise_options": {"uniform": {"pairs": "cyclic"}}},
             "bad.yaml: noise_options.uniform.pairs: unknown key; allowed: sampler"),
            ({"datasets": ["toyrow"]},
             'bad.yaml: datasets[0] = "toyrow": allowed: digits, mnist1d, mnist5k, breast_cancer, mnist, '
             "fashion_mnist, cifar10, cifar100, svhn, toyrows, or a dataset of your own files named in dataset_files")):
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**study, **change}))
        assert refused(smoothbench(package, tmp_path, "validate", "bad.yaml")) == f"smoothbench validate: error: {expected}"


@pytest.mark.slow
def test_snakemake_runs_a_study_on_the_new_dataset_and_noise_kind(tmp_path):
    from test_pipeline import TINY_PARAMS, clone_repo, run

    repo = clone_repo(tmp_path / "clone")
    for code in (docs_example("Add a noise kind")[1], TOY_DATASET):
        write_module(repo / "src", code)
    study = copy.deepcopy(TINY_PARAMS)
    study.update(datasets=["toyrows"], noise={"uniform": [0.0, 0.3]}, methods={"ce": [0.0], "ls": [0.4]},
                 seeds=[0, 1])
    (repo / "study.yaml").write_text(yaml.safe_dump(study))
    run(repo, "snakemake", "--cores", "2", "--configfile", "study.yaml")
    with open(repo / "reports" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted({(r["dataset"], r["noise_kind"], r["noise_rate"], r["seed"]) for r in rows}) == [
        ("toyrows", "uniform", rate, seed) for rate in ("0", "0.3") for seed in ("0", "1")]
    assert len(rows) == 2 * 2 * 2 and all(r["status"] == "ok" for r in rows)   # 2 rates x 2 seeds x 2 cells
    with np.load(repo / "noisy" / "toyrows" / "uniform-0.3-s1.npz") as z:
        assert np.allclose(z["transition"], 0.7 * np.eye(3) + 0.1, rtol=0, atol=1e-15)
