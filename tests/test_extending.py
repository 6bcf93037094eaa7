"""Every extension is one entry in one place, together: docs/extending.md's examples of a dataset
(SVHN, read from files in its published format), a noise kind (uniform), a model (linear), a
figure (final minus honest epoch) and a claim ((f), NLS's advantage grows with the noise), each
written into a fresh clone as the ONE new module its section names, and nothing else changed,
run a tiny study together through the real Snakemake: the study trains the new model on the new
dataset under the new noise kind, and the reports carry the new figure and the new claim.
(Each extension's own tests go further: test_add_dataset_noise, test_add_model,
test_extending_report.)"""

from __future__ import annotations

import copy
import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_pipeline import TINY_PARAMS, _git, clone_repo, run

pytestmark = pytest.mark.slow

SECTIONS = ("Add a dataset", "Add a noise kind", "Add a model", "Add a figure", "Add a claim")


def docs_examples(doc: str) -> dict[str, tuple[str, str]]:
    """section -> (path below the repository, code): the first python block of each section."""
    out = {}
    for section in SECTIONS:
        text = doc.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
        code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
        out[section] = (re.match(r"# (\S+\.py)\n", code).group(1), code)
    return out


def write_svhn_files(folder: Path, n_train: int, n_test: int) -> None:
    """Files in SVHN's published format (X uint8 (32, 32, 3, N), y (N, 1) in 1..10, 10 the digit
    0), learnable: each class has its own mean colour."""
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    colours = rng.integers(40, 216, (10, 3))
    for name, n in (("train", n_train), ("test", n_test)):
        digit = np.arange(n) % 10
        x = np.clip(colours[digit][None, None] + rng.normal(0, 20, (32, 32, n, 3)), 0, 255).astype(np.uint8)
        savemat(folder / f"{name}_32x32.mat", {"X": x.transpose(0, 1, 3, 2), "y": np.where(digit == 0, 10, digit)[:, None]})


def test_a_dataset_noise_kind_model_figure_and_claim_each_in_one_module_run_one_study(tmp_path):
    repo = clone_repo(tmp_path / "clone")
    added = docs_examples((repo / "docs" / "extending.md").read_text())
    for path, code in added.values():
        assert not (repo / path).exists() and (repo / path).parent.is_dir(), path   # a new file, nothing else
        (repo / path).write_text(code)
    assert sorted(p for p, _ in added.values()) == [
        "src/smoothbench/data/svhn.py", "src/smoothbench/engine/models/linear.py", "src/smoothbench/noise/uniform.py",
        "src/smoothbench/report/claims/nls_growth.py", "src/smoothbench/report/figures/overfitting.py"]
    assert _git(repo, "status", "--porcelain", "--untracked-files=no") == ""     # no tracked file edited
    write_svhn_files(repo / "cache" / "svhn", n_train=200, n_test=60)

    study = copy.deepcopy(TINY_PARAMS)
    study.update(datasets=["svhn"], noise={"uniform": [0.0, 0.4]}, methods={"ce": [0.0], "nls": [-0.4, -1.0]},
                 seeds=[0, 1])
    study["protocol"]["default"].update(model="linear", model_args={"bias": 0}, batch_size=50, val_fraction=0.2)
    (repo / "study.yaml").write_text(yaml.safe_dump(study))
    run(repo, "snakemake", "--cores", "2", "--configfile", "study.yaml")

    # the dataset: read from its files; the noise kind: its own transition matrix on every seed's labels
    with np.load(repo / "data" / "svhn.npz") as z:
        assert z["x_train"].shape == (200, 3, 32, 32) and z["y_train"].tolist() == [i % 10 for i in range(200)]
    for seed in (0, 1):
        with np.load(repo / "noisy" / "svhn" / f"uniform-0.4-s{seed}.npz") as z:
            assert np.allclose(z["transition"], 0.6 * np.eye(10) + 0.04, rtol=0, atol=1e-15)
    # the model: what every group trained
    groups = sorted((repo / "results" / "svhn").rglob("group.json"))
    assert len(groups) == 2 * 2
    for g in groups:
        protocol = json.loads(g.read_text())["protocol"]
        assert protocol["model"] == "linear" and protocol["model_args"] == {"bias": 0}
    with open(repo / "reports" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["dataset"], r["noise_kind"], r["noise_rate"]) for r in rows} == {("svhn", "uniform", "0"),
                                                                                 ("svhn", "uniform", "0.4")}
    assert len(rows) == 2 * 2 * 3 and all(r["status"] == "ok" for r in rows)
    # the figure and the claim: in the reports of the study
    for fmt, folder in (("png", "figures"), ("svg", "figures-svg")):
        assert (repo / "reports" / folder / f"fig_overfitting_svhn_uniform_direct.{fmt}").is_file()
    with open(repo / "reports" / "tables" / "claims.csv", newline="") as f:
        claims = [r for r in csv.DictReader(f) if (r["dataset"], r["claim"]) == ("svhn", "f")]
    assert len(claims) == 1 and claims[0]["text"] == "NLS's advantage grows with the noise"
    assert "(f) NLS's advantage grows with the noise" in (repo / "reports" / "findings.md").read_text()
