"""Statistics, tables, summary and findings from hand-made results with known numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from smoothbench.core import vocabulary as vocab
from smoothbench.report import collect, build as report, seedstats as stats, tables
from toy_results import D, K, metrics, read_csv_rows, write_group, write_refs, write_toy  # noqa: F401


SOFTMAX = ("ce", "ls", "nls", "flip")


def _table(out: Path, selection: str) -> dict:
    return {(r["noise_kind"], r["noise_rate"], r["method"]): r
            for r in read_csv_rows(out / "tables" / f"table_{selection}.csv")}


def test_tables_pick_best_rates_and_mark_best_method(built):
    out, _ = built
    t = _table(out, "best")
    # noise 0.6: best LS r=0.4, best NLS r=-0.4 (r=-1 all diverged), NLS wins
    assert t[("symmetric", "0.6", "ls")]["rate"] == "0.4"
    assert t[("symmetric", "0.6", "nls")]["rate"] == "-0.4"
    assert t[("symmetric", "0.6", "nls")]["test_acc_mean_pct"] == "61.0000"
    assert t[("symmetric", "0.6", "ce")]["test_acc_mean_pct"] == "51.0000"
    assert t[("symmetric", "0.6", "ce")]["test_acc_std_pct"] == f"{100 * math.sqrt(2e-4):.4f}"  # ddof=1
    assert [m for m in SOFTMAX if t[("symmetric", "0.6", m)]["best"] == "1"] == ["nls"]
    # noise 0.2: LS r=0.2 wins
    assert t[("symmetric", "0.2", "ls")]["rate"] == "0.2"
    assert [m for m in SOFTMAX if t[("symmetric", "0.2", m)]["best"] == "1"] == ["ls"]
    md = (out / "tables" / "tables.md").read_text()
    assert "**61.00 ± 1.41 (r=-0.4; edge)**" in md           # -0.4 is the highest NLS rate of the grid
    assert "| 0.6 | 51.00 ± 1.41 |" in md
    tex = (out / "tables" / "tables.tex").read_text()
    assert "\\textbf{61.00 $\\pm$ 1.41 ($r$=-0.4; edge)}" in tex
    assert "\\begin{tabular}" in tex and "ddof=1" in tex


def test_honest_selection_changes_the_winner(built):
    out, _ = built
    t = _table(out, "selected")
    assert [m for m in SOFTMAX if t[("symmetric", "0.6", m)]["best"] == "1"] == ["ce"]
    assert t[("symmetric", "0.6", "ls")]["rate"] == "0.2"  # best LS rate differs from `best` selection
    assert [m for m in SOFTMAX if t[("symmetric", "0.2", m)]["best"] == "1"] == ["ls"]
    md = (out / "tables" / "tables.md").read_text()
    assert "| toy | symmetric | 0.6 | NLS (r=-0.4) | CE |" in md
    assert md.count("| toy | symmetric | 0.6 |") == 4      # three reproduction rows, one winners row
    assert "| toy | symmetric | 0.6 | NLS (r=-0.4) | CE | CE | no |" in md
    assert "| toy | symmetric | 0.2 | LS (r=0.2) | LS (r=0.2) |" in md
    assert "under `selected` selection (test_acc_selected)" in md
    findings = (out / "findings.md").read_text()
    # honest: CE 50 ranked first at 0.6 (by its held-out accuracy, 45); LS (r=0.2) 45, NLS (r=-0.4) 40, flip 43
    # (its one usable seed: no interval)
    line = next(x for x in findings.splitlines() if x.startswith("- noise 0.6: (2 seeds, 3/12 cells diverged"))
    assert "ranked first by held-out accuracy: CE at 50.00% test accuracy; against the baseline: LS (r=0.2) -5.00 [" \
        in line and ", NLS (r=-0.4) -10.00 [" in line and line.endswith(", flip (ε=0.18) -7.00 (one seed: no interval).")
    assert findings.index("## Claims at a glance") < findings.index("## Detail")


def test_diverged_cells_excluded_and_shown(built):
    out, _ = built
    t = _table(out, "best")
    flip = t[("symmetric", "0.6", "flip")]
    assert flip["test_acc_mean_pct"] == "55.0000" and flip["test_acc_std_pct"] == ""
    assert (flip["n_used"], flip["n_seeds"], flip["n_diverged"]) == ("1", "2", "1")
    assert flip["text"] == "55.00 (ε=0.18; 1/2 diverged)"
    md = (out / "tables" / "tables.md").read_text()
    assert "noise 0.6: NLS r=-1: 2/2, flip ε=0.18: 1/2" in md


def test_all_rates_diverged_cannot_be_best():
    rows = []
    for seed in (0, 1):
        for (m, r), status, acc in ((("ce", 0.0), "ok", 0.5), (("nls", -1.0), D, 0.9), (("nls", -2.0), D, 0.95)):
            row = {k: None for k in vocab.RESULT_COLUMNS}
            row.update(dataset="x", noise_kind="symmetric", noise_rate="0.4", seed=seed, variant="direct",
                       method=m, rate=r, values=(r,), params=f"r={r:g}",
                       status=status, test_acc_best=acc, test_acc_selected=acc, test_acc_final=acc, num_classes=K)
            rows.append(row)
    (setting,) = stats.settings_of(rows)[("x", "symmetric", "direct")]
    entries = stats.table_row(setting, "best")
    assert entries["ce"].best and not entries["nls"].best
    assert entries["nls"].stat is None and entries["flip"] is None
    assert tables.entry_text(entries["nls"]) == "diverged (4/4)"
    assert tables.entry_text(entries["ce"]) == "**50.00 ± 0.00**"


def test_failed_cells_are_left_out_and_listed_with_the_seeds_they_failed_in():
    """A cell that could not be trained (status failed) never enters a mean; the tables list it
    per noise rate, apart from the diverged ones, and say where its reason is."""
    rows = []
    for seed in (0, 1):
        for (m, values), status, acc in ((("ce", (0.0,)), "ok", 0.5), (("backward", ()), "failed" if seed else "ok", 0.7)):
            row = {k: None for k in vocab.RESULT_COLUMNS}
            row.update(dataset="x", noise_kind="symmetric", noise_rate="0.4", seed=seed, variant="direct",
                       method=m, rate=values[0] if values else None, values=values, params=f"r={values[0]:g}" if values else "",
                       status=status, num_classes=K, **({} if status == "failed" else dict(
                           test_acc_best=acc, test_acc_selected=acc, test_acc_final=acc)))
            rows.append(row)
    settings = stats.settings_of(rows)
    (setting,) = settings[("x", "symmetric", "direct")]
    entries = stats.table_row(setting, "best")
    assert (entries["backward"].stat.mean, entries["backward"].stat.n_ok, entries["backward"].n_seeds) == (0.7, 1, 2)
    md = tables.md_tables(settings, [])
    assert ("Failed cells, not trained, their reasons in the train log and each cell's metrics.json (seeds "
            "failed/total): noise 0.4: backward-T oracle T: 1/2.") in md.splitlines()
    assert "Diverged cells (seeds diverged/total): none." in md.splitlines()


def test_reference_column(built, collected, tmp_path):
    out, _ = built
    md = (out / "tables" / "tables.md").read_text()
    assert "| noise rate | CE | CE (paper) | best LS | LS (paper) |" in md
    assert "| 48.50 |" in md and "60.25 ± 0.30 (r=-0.4)" in md
    assert "Paper numbers from: fixture table 1 p. 1." in md
    assert "| 45.00† |" in md and "Paper numbers from: fixture summary." in md   # final-epoch, low confidence
    t = _table(out, "best")
    assert (t[("symmetric", "0.6", "nls")]["paper_test_acc_pct"], t[("symmetric", "0.6", "nls")]["paper_rate"]) \
        == ("60.25", "-0.4")
    assert t[("pairflip", "0.6", "nls")]["paper_test_acc_pct"] == ""
    # without references there is no paper column (the package ships none for `toy`)
    _, _, results, curves = collected
    settings = stats.settings_of(collect.read_results(results))
    assert not any(r["dataset"] == "toy" for r in collect.read_references())
    assert "(paper)" not in tables.md_tables(settings, [])
    assert "(paper)" not in tables.tex_tables(settings, [])
    bad = tmp_path / "refs"
    bad.mkdir()
    (bad / "r.csv").write_text("dataset,noise_kind,noise_rate,method,rate,test_acc,std,selection,confidence,source\n"
                               "toy,symmetric,0.6,ce,0,48.5,,best,high,\n")
    with pytest.raises(ValueError, match="source is empty"):
        report.build_reports(results, curves, tmp_path / "o", reference_dir=bad)
    (bad / "r.csv").write_text("dataset,noise_kind,noise_rate,method,rate,test_acc,std,selection,confidence,source\n"
                               "toy,symmetric,0.6,ce,0,48.5,,oracle,high,p. 1\n")
    with pytest.raises(ValueError, match="selection 'oracle'; allowed: best, selected, final"):
        report.build_reports(results, curves, tmp_path / "o", reference_dir=bad)
    with pytest.raises(ValueError, match="does not exist"):
        report.build_reports(results, curves, tmp_path / "o", reference_dir=tmp_path / "missing")


def test_summary_json(built):
    """Small enough for `dvc metrics show` to read as a table: totals, claim counts, and per
    (dataset, noise kind) the headline gains (honest selection, points) and claim counts."""
    out, _ = built
    s = json.loads((out / "summary.json").read_text())
    assert (s["cells"], s["diverged"]) == (48, 6)
    node = s["toy"]["symmetric"]
    # selected: LS r=0.2 84 vs CE 79 at noise 0.2 in both seeds; NLS r=-0.4 40 vs CE 50 at 0.6
    assert (node["ls_gain_low"], node["nls_gain_high"]) == (5.0, -10.0)
    assert set(s) == {"cells", "diverged", "collapsed", "claims_tested", "claims_hold", "claims_equivalent_but_different",
                      "claims_fail", "claims_inconclusive", "toy"}
    assert sum(1 for _ in json.dumps(s).split(",")) < 40


def test_reproduction_verdicts(built):
    """Ours beside each published figure under its own selection; reproduced within 1.5 points."""
    out, _ = built
    rows = {(r["method"], r["selection"], r["paper_pct"]): r for r in read_csv_rows(out / "tables" / "reproduction.csv")}
    ce = rows[("ce", "best", "48.5")]
    assert (ce["ours_pct"], ce["delta_points"], ce["verdict"]) == ("51.0", "2.5", "differs by +2.50 points")
    nls = rows[("nls", "best", "60.25")]                      # our best NLS (r=-0.4): 61.00 -> +0.75
    assert (nls["ours_rate"], nls["delta_points"], nls["verdict"]) == ("-0.4", "0.75", "reproduced (+0.75)")
    final = rows[("ce", "final", "45.0")]                     # ours final 48.00: +3.00, low confidence
    assert final["verdict"] == "differs by +3.00 points (low-confidence reference)"
    assert ("nls", "best", "59.0") not in rows                # one figure per method: the paper's best rate
    md = (out / "tables" / "tables.md").read_text()
    assert md.index("## Reproduction of the paper") < md.index("## Selection: best")
    assert "| toy | symmetric | 0.6 | NLS | best | 61.00 ± 1.41 (r=-0.4, direct) | 60.25 ± 0.30 (r=-0.4) | +0.75 | " \
           "reproduced (+0.75) |" in md


def test_better_of_variants(tmp_path):
    """With two protocol variants each gets its table, and a third takes per method the better
    variant, naming it; the paper column and the verdicts go with the better-of table."""
    paths = write_toy(tmp_path / "res", variants={"direct": 0.0, "warmup": 0.01})
    results, curves = tmp_path / "results.csv", tmp_path / "curves.csv"
    collect.collect(paths, results, curves)
    settings = stats.settings_of(collect.read_results(results))
    assert set(settings) == {("toy", "symmetric", "direct"), ("toy", "symmetric", "warmup")}
    refs = collect.read_references(write_refs(tmp_path / "refs"))
    md = tables.md_tables(settings, refs)
    for title in ("variant direct", "variant warmup", "better of direct, warmup"):
        assert f"### toy / symmetric, {title} (best)" in md
    assert "**62.00 ± 1.41 (r=-0.4; edge; warmup)**" in md    # warmup is 1 point better everywhere
    assert "(paper)" in md.split("### toy / symmetric, better of")[1].split("###")[0]
    assert "(paper)" not in md.split("### toy / symmetric, variant direct (best)")[1].split("###")[0]
    rows = {(r["method"], r["selection"]): r for r in tables.reproduction_rows(settings, refs)}
    assert rows[("nls", "best")]["ours_variant"] == "warmup" and rows[("nls", "best")]["ours_pct"] == 62.0
    csv_rows = read_csv_rows(_write(tmp_path / "t.csv", tables.csv_table(settings, refs, "best")))
    better = [r for r in csv_rows if r["table"] == "better" and r["noise_rate"] == "0.6" and r["method"] == "nls"]
    assert better[0]["variant"] == "warmup" and better[0]["paper_test_acc_pct"] == "60.25"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
