"""Adding a method is one place: docs/extending.md's worked example, written into a fresh clone as
the one new file it names, shows up in `smoothbench methods`, the schema's checks, results.csv,
the tables, the leaderboard and the figures of a tiny study run by the real Snakemake."""

from __future__ import annotations

import copy
import csv
import re
import subprocess
import sys

import pytest
from test_pipeline import TINY_PARAMS, _env, clone_repo, run

pytestmark = pytest.mark.slow


def docs_example(doc: str) -> tuple[str, str]:
    """(path, code) of the first python block of docs/extending.md's "Add a method" section."""
    section = doc.split("## Add a method", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    path = re.match(r"# (\S+\.py)\n", code).group(1)
    return path, code


def test_a_method_added_in_one_file_reaches_every_report(tmp_path):
    repo = clone_repo(tmp_path / "clone")
    path, code = docs_example((repo / "docs" / "extending.md").read_text())
    assert path.startswith("src/smoothbench/methods/") and not (repo / path).exists()
    (repo / path).write_text(code)

    listed = subprocess.run([sys.executable, "-m", "smoothbench.cli", "methods"], cwd=repo, env=_env(repo),
                            capture_output=True, text=True, check=True).stdout
    assert "\nbrier " in listed and "scale (s) in (0, ∞), default 1" in listed and "Monthly Weather" in listed

    study = copy.deepcopy(TINY_PARAMS)
    study["methods"] = {"ce": [0.0], "ls": [0.4], "brier": [1.0, {"scale": 2.0}]}
    study["seeds"] = [0, 1]
    bad = copy.deepcopy(study)
    bad["methods"]["brier"] = [-1.0]
    (repo / "bad.yaml").write_text(__import__("yaml").safe_dump(bad))
    refused = run(repo, "snakemake", "-n", "--configfile", "bad.yaml", check=False)
    assert refused.returncode != 0
    assert "bad.yaml: methods.brier[0] = -1.0: must be > 0" in refused.stderr.strip().splitlines()[-1]

    (repo / "study.yaml").write_text(__import__("yaml").safe_dump(study))
    run(repo, "snakemake", "--cores", "2", "--configfile", "study.yaml")
    with open(repo / "reports" / "results.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["method"] == "brier"]
    assert sorted({(r["cell_id"], r["params"]) for r in rows}) == [("brier_1", "scale=1"), ("brier_2", "scale=2")]
    assert len(rows) == 2 * 2 * 2            # 2 settings x 2 seeds x 2 cells
    assert all(r["status"] == "ok" and 0.0 < float(r["test_acc_selected"]) <= 1.0 for r in rows)
    tables = (repo / "reports" / "tables" / "tables.md").read_text()
    board = tables.split("## Leaderboard", 1)[1]
    assert re.search(r"\| \d+ \| [12] \| Brier \| s=[12][^|]* \| \d+\.\d\d \|", board)   # rank, tier, method, parameters, score
    with open(repo / "reports" / "tables" / "leaderboard.csv", newline="") as f:
        assert {r["method"] for r in csv.DictReader(f)} == {"ce", "ls", "brier"}
    for fig in ("leaderboard", "curves"):
        svg = (repo / "reports" / "figures-svg" / f"fig_{fig}_digits_symmetric_direct.svg").read_text()
        assert "<!-- Brier -->" in svg, fig
