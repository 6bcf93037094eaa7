"""Your own data and your own labels as a researcher uses them: a real `git clone` of the
repository, files written into its data-in/, a tiny study given with --configfile, the real
Snakemake. One study per way of giving files: an npz dataset, an image-folder dataset, and
annotation labels (here for a registered dataset: any dataset takes them). Each run must
end with results.csv holding the study's cells, the canonical files must hold what the
user's files hold, and a changed user file must rerun what depends on it (Snakemake, and
for the npz also DVC).

The user files are written by the tests into the clone and never committed. All slow.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from smoothbench.data import datasets as data
from test_pipeline import clone_repo, deleted_tracked_files, expected_cells, job_counts, nothing_to_do, \
    result_cells, run
from test_userdata import write_image_folder, write_labels, write_npz_dataset

pytestmark = pytest.mark.slow

PROTOCOL = {"default": {"model": "mlp", "model_args": {"hidden": [16]}, "batch_size": 32,
                        "variants": {"direct": {"epochs": 2}}, "checkpoint_every": 1, "device": "cpu"}}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return clone_repo(tmp_path_factory.mktemp("own") / "repo")


def _study(repo: Path, name: str, monkeypatch, **keys) -> tuple[dict, list[str]]:
    """A tiny study (1 seed, 2 cells, 2 epochs) written as NAME.yaml in the clone; the
    Snakemake arguments that run it. The test's folder is the clone (paths are relative)."""
    monkeypatch.chdir(repo)
    params = {"methods": {"ce": [0.0], "ls": [0.4]}, "seeds": [0], "protocol": PROTOCOL, **keys}
    (repo / f"{name}.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params, ["--configfile", f"{name}.yaml"]


def _run_study(repo: Path, params: dict, args: list[str], target: str = "reports/results.csv") -> None:
    """Run the study up to ``target`` (results.csv: no figures, to keep the test short)."""
    run(repo, "snakemake", "--cores", "2", *([target] if target else []), *args, timeout=600)
    assert result_cells(repo / "reports" / "results.csv") == expected_cells(params)
    assert nothing_to_do(run(repo, "snakemake", "-n", *([target] if target else []), *args))


def _jobs(repo: Path, args: list[str]) -> dict[str, int]:
    """The jobs `snakemake -n` would run up to results.csv ({} when nothing is to be done)."""
    proc = run(repo, "snakemake", "-n", "reports/results.csv", *args)
    return {} if nothing_to_do(proc) else job_counts(proc.stdout)


@pytest.mark.timeout(600)
def test_a_study_of_an_npz_dataset(repo, monkeypatch):
    written = write_npz_dataset(repo / "data-in" / "blobs.npz", n_train=200, n_test=60, k=3, d=8)
    params, args = _study(repo, "npz", monkeypatch, datasets=["blobs"],
                          dataset_files={"blobs": {"format": "npz", "path": "data-in/blobs.npz"}},
                          noise={"symmetric": [0.0, 0.2]})
    _run_study(repo, params, args, target="")                     # the whole study: reports of a dataset of your own
    assert "blobs" in (repo / "reports" / "tables" / "tables.md").read_text()
    ds = data.load_dataset(repo / "data" / "blobs.npz")
    np.testing.assert_array_equal(ds.x_train, written["x_train"].astype(np.float32))
    np.testing.assert_array_equal(ds.y_test, written["y_test"])
    assert ds.class_names == ("class a", "class b", "class c")
    # DVC records data-in/ as a dep of the data stage ...
    run(repo, "dvc", "commit", "-f", "-q", "data")
    assert "data-in" not in run(repo, "dvc", "status", "data").stdout
    # ... and a changed file reruns its data job and everything that follows (Snakemake), and the stage (DVC)
    write_npz_dataset(repo / "data-in" / "blobs.npz", n_train=200, n_test=60, k=3, d=8, seed=7)
    counts = _jobs(repo, args)
    assert counts == {"data": 1, "noise": 2, "train": 2, "collect": 1}
    status = run(repo, "dvc", "status", "data").stdout
    assert "changed deps" in status and "data-in" in status, status
    assert deleted_tracked_files(repo) == []


@pytest.mark.timeout(600)
def test_a_study_of_an_image_folder(repo, monkeypatch):
    from PIL import Image

    images = write_image_folder(repo / "data-in" / "shapes", classes=("square", "circle", "cross"),
                                per_class=(30, 6), size=(6, 4))
    params, args = _study(repo, "images", monkeypatch, datasets=["shapes"],
                          dataset_files={"shapes": {"format": "image_folder", "path": "data-in/shapes"}},
                          noise={"pairflip": [0.2]}, noise_options={"pairflip": {"pairs": "cyclic"}})
    _run_study(repo, params, args)
    ds = data.load_dataset(repo / "data" / "shapes.npz")
    assert ds.class_names == ("circle", "cross", "square") and ds.x_train.shape == (90, 1, 4, 6)
    by_class = {c: [p for name, _, p in images["train"] if name == c] for c in ("circle", "cross", "square")}
    expected = np.stack(by_class["circle"] + by_class["cross"] + by_class["square"])   # files 00..29 in order
    np.testing.assert_array_equal(ds.x_train[:, 0], expected)
    assert ds.y_train.tolist() == [0] * 30 + [1] * 30 + [2] * 30
    labels = json.loads((repo / "noisy" / "shapes" / "pairflip-0.2-s0.json").read_text())
    assert labels["num_samples"] == 90 and labels["num_classes"] == 3
    # one image changed: its dataset is rebuilt and retrained
    Image.fromarray(np.zeros((4, 6), np.uint8), mode="L").save(repo / "data-in" / "shapes" / "train" / "cross" / "03.png")
    counts = _jobs(repo, args)
    assert counts == {"data": 1, "noise": 1, "train": 1, "collect": 1}
    assert deleted_tracked_files(repo) == []


@pytest.mark.timeout(600)
def test_a_study_with_annotation_labels(repo, monkeypatch, tmp_path):
    """Annotations for a registered dataset (digits, 1297 training samples): 300 labels
    changed by hand give a realised noise rate of exactly 300/1297."""
    clean = data.build_dataset("digits", tmp_path / "digits.npz").y_train
    noisy = clean.copy()
    noisy[:300] = (noisy[:300] + 1) % 10
    write_labels(repo / "data-in" / "crowd.csv", noisy)
    params, args = _study(repo, "annotations", monkeypatch, datasets=["digits"],
                          noise={"symmetric": [0.2], "annotations": ["crowd"]},
                          noise_options={"annotations": {"files": {"crowd": {"dataset": "digits",
                                                                             "path": "data-in/crowd.csv"}}}})
    _run_study(repo, params, args)
    stats = json.loads((repo / "noisy" / "digits" / "annotations-crowd-s0.json").read_text())
    assert stats["kind"] == "annotations" and stats["rate"] == "crowd"
    assert stats["realised_rate"] == pytest.approx(300 / 1297)
    assert [round(row[(c + 1) % 10] + row[c], 9) for c, row in enumerate(stats["empirical_transition"])] == [1.0] * 10
    with np.load(repo / "noisy" / "digits" / "annotations-crowd-s0.npz") as z:
        assert z["noisy_labels"].tolist() == noisy.tolist()
    # a changed annotation file reruns its noise job and its group, nothing else
    noisy[300] = (noisy[300] + 1) % 10
    write_labels(repo / "data-in" / "crowd.csv", noisy)
    os.utime(repo / "data-in" / "crowd.csv")
    counts = _jobs(repo, args)
    assert counts == {"noise": 1, "train": 1, "collect": 1}
    assert deleted_tracked_files(repo) == []
