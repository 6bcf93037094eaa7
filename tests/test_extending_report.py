"""Adding a figure and adding a claim are one place each: docs/extending.md's examples, written
into a fresh clone as the one new file each names, reach the reports of a tiny study run by the
real Snakemake, and `snakemake --report` shows the figure under its title with its caption."""

from __future__ import annotations

import copy
import csv
import re
import statistics
from collections import defaultdict

import pytest
import yaml
from test_pipeline import TINY_PARAMS, clone_repo, run

pytestmark = pytest.mark.slow


def examples(doc: str) -> dict[str, tuple[str, str]]:
    """section -> (path, code) of the first python block of each "Add a ..." section of the doc."""
    out = {}
    for section in ("Add a figure", "Add a claim"):
        text = doc.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
        code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
        out[section] = (re.match(r"# (\S+\.py)\n", code).group(1), code)
    return out


def nls_gain_growth(rows: list[dict]) -> dict[int, float]:
    """The example claim by hand from results.csv: per seed, (NLS at its best r - CE) at the
    highest noise rate minus the same at the lowest, in points; best r: the highest mean of
    the held-out accuracy val_acc_selected over seeds (the honest choice: no test label)."""
    acc = defaultdict(dict)                 # (noise rate, method, r) -> seed -> accuracy
    held = defaultdict(dict)                # the same, held-out accuracy
    for r in rows:
        if r["status"] != "ok":
            continue
        acc[(float(r["noise_rate"]), r["method"], float(r["rate"]))][int(r["seed"])] = float(r["test_acc_selected"])
        held[(float(r["noise_rate"]), r["method"], float(r["rate"]))][int(r["seed"])] = float(r["val_acc_selected"])
    gains = {}
    for noise in (min(k[0] for k in acc), max(k[0] for k in acc)):
        nls = max((k for k in acc if k[:2] == (noise, "nls")), key=lambda k: (statistics.fmean(held[k].values()), -abs(k[2])))
        gains[noise] = {s: 100 * acc[nls][s] - 100 * acc[(noise, "ce", 0.0)][s] for s in acc[nls]}
    low, high = sorted(gains)
    return {s: gains[high][s] - gains[low][s] for s in gains[low]}


def test_a_figure_and_a_claim_added_in_one_file_each_reach_the_reports(tmp_path):
    repo = clone_repo(tmp_path / "clone")
    added = examples((repo / "docs" / "extending.md").read_text())
    for path, code in added.values():
        assert path.startswith("src/smoothbench/report/") and not (repo / path).exists()
        (repo / path).write_text(code)
    study = copy.deepcopy(TINY_PARAMS)
    study["methods"]["nls"] = [-0.4, -1.0]
    study["seeds"] = [0, 1]
    (repo / "study.yaml").write_text(yaml.safe_dump(study))
    run(repo, "snakemake", "--cores", "2", "--configfile", "study.yaml")
    reports = repo / "reports"

    for fmt, folder in (("png", "figures"), ("svg", "figures-svg")):
        assert (reports / folder / f"fig_overfitting_digits_symmetric_direct.{fmt}").is_file()
    svg = (reports / "figures-svg" / "fig_overfitting_digits_symmetric_direct.svg").read_text()
    assert "<!-- digits / symmetric / direct: final minus honest epoch -->" in svg

    with open(reports / "results.csv", newline="") as f:
        per_seed = nls_gain_growth(list(csv.DictReader(f)))
    with open(reports / "tables" / "claims.csv", newline="") as f:
        (row,) = [r for r in csv.DictReader(f) if r["claim"] == "f"]
    assert row["text"] == "NLS's advantage grows with the noise" and row["selected_n"] == "2"
    assert float(row["selected_mean"]) == pytest.approx(statistics.fmean(per_seed.values()), abs=1e-4)
    assert "; noise 0.4 vs 0; p_adj = " in row["selected_evidence"]
    findings = (reports / "findings.md").read_text()
    assert "| digits | symmetric | direct | (f) NLS's advantage grows with the noise |" in findings

    # the Snakemake report shows the figure under its title, with its caption
    run(repo, "snakemake", "--configfile", "study.yaml", "--report", "report.html")
    html = (repo / "report.html").read_text()
    assert "Final minus honest epoch" in html and "training past the honest epoch costs accuracy" in html
