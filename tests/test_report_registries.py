"""Figures, table files and claims are registries: a toy figure, a toy table file and a toy
claim, each ONE entry made here, reach the report (its files, ``report_files``, claims.csv,
findings.md, summary.json) with the numbers that formulas written here give; the verdict rule
is one function per kind, applied to every entry of that kind."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import t as student_t

from smoothbench.report import build as report, claims, figures, table_files
from smoothbench.report import choices, collect, seedstats
from smoothbench.report.claims import Claim, Quantity, Test
from smoothbench.report.figures import Figure
from smoothbench.report.figures.style import new_figure
from smoothbench.report.table_files import TableFile
from toy_results import metrics, write_group

SEEDS = 4
RATES = ("0.2", "0.6")


def _spec() -> dict:
    """{noise rate: {(method, rate): [honest test accuracy per seed]}}: LS helps at low noise,
    NLS at high noise, with seed-to-seed spread (a seeded draw)."""
    rng = np.random.default_rng(11)
    means = {"0.2": {("ce", 0.0): 0.80, ("ls", 0.2): 0.83, ("ls", 0.4): 0.82, ("nls", -0.4): 0.78},
             "0.6": {("ce", 0.0): 0.50, ("ls", 0.2): 0.49, ("ls", 0.4): 0.47, ("nls", -0.4): 0.58}}
    return {rate: {cell: [round(float(m + rng.normal(0, 0.01)), 3) for _ in range(SEEDS)]
                   for cell, m in cells.items()} for rate, cells in means.items()}


SPEC = _spec()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """results.csv and curves.csv of the toy study: dataset "toy", symmetric noise (CE, LS, NLS)
    and pairflip noise (CE, LS only)."""
    root = tmp_path_factory.mktemp("toy-study")
    paths = []
    for kind, methods in (("symmetric", {"ce", "ls", "nls"}), ("pairflip", {"ce", "ls"})):
        for rate, cells in SPEC.items():
            for seed in range(SEEDS):
                rows = [metrics(m, r, "ok", accs[seed] + 0.01, accs[seed]) for (m, r), accs in cells.items()
                        if m in methods]
                paths.append(write_group(root, "toy", kind, rate, seed, rows))
    collect.collect(paths, root / "results.csv", root / "curves.csv")
    choices.write_choices(root / "results.csv", root / "choices.csv")
    return root / "results.csv", root / "curves.csv"


def _draw_toy(key, sets, results):
    """CE's honest mean per noise rate, the numbers in the title too."""
    means = [100 * seedstats.choose(s, "ce", "selected").stat.mean for s in sets]
    fig, (ax,) = new_figure(4.0, 3.0)
    ax.plot(range(len(sets)), means)
    ax.set_title(f"{' / '.join(key)}: CE " + ", ".join(f"{m:.2f}" for m in means))
    return fig


def _nls_over_ls_high(sets, view) -> Quantity:
    high = sets[-1]
    return Quantity(view.best(high, "nls") - view.best(high, "ls"), f"noise {high.noise_rate}")


@pytest.fixture
def toy_entries():
    """One entry in each registry, removed again after the test."""
    fig = figures.register(Figure("toy_ce", "Toy: CE per noise rate", "CE's honest mean per noise rate.",
                                  _draw_toy, needs=frozenset({"nls"})))
    claim = claims.register(Claim("z", "NLS beats LS at the highest noise", "this test", "sign", _nls_over_ls_high,
                                  methods=("nls", "ls")))
    table = table_files.register(TableFile(
        "tables/toy.csv", lambda r: collect.csv_text(["dataset", "noise_kind", "z"], (
            [row["dataset"], row["noise_kind"], row["selected"]] for row in r.claim_rows if row["claim"] == "z")),
        needs=frozenset({"nls"})))
    try:
        yield fig, claim, table
    finally:
        del figures.FIGURES[fig.name], claims.CLAIMS[claim.id], table_files.TABLE_FILES[table.path]


def _rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _expected_z() -> tuple[float, float, float]:
    """Claim z on the symmetric setting, from SPEC by the formula: per seed, NLS at its best rate
    minus LS at its best (best: the highest mean held-out accuracy, which the toy puts 5 points
    below the honest one), in points; mean ± t(0.975, n-1) sd / sqrt(n): the interval over seeds."""
    cells = SPEC["0.6"]
    best_ls = max((c for c in cells if c[0] == "ls"), key=lambda c: (statistics.fmean(cells[c]), -abs(c[1])))
    diffs = [100 * (n - ls) for n, ls in zip(cells[("nls", -0.4)], cells[best_ls])]
    mean, sd = statistics.fmean(diffs), statistics.stdev(diffs)
    half = student_t.ppf(0.975, SEEDS - 1) * sd / math.sqrt(SEEDS)
    return mean, mean - half, mean + half


def test_a_toy_figure_is_one_entry_that_reaches_the_report(study, toy_entries, tmp_path):
    results_csv, curves_csv = study
    written = report.build_reports(results_csv, curves_csv, tmp_path / "out")
    out = tmp_path / "out"
    sym, pair = ("toy", "symmetric", "direct"), ("toy", "pairflip", "direct")
    names = report.report_files({sym: {"ce", "ls", "nls"}, pair: {"ce", "ls"}})
    assert [Path(p).relative_to(out).as_posix() for p in written] == names
    # drawn where the setting has NLS cells (its need), in both formats; not where it has none
    assert "figures/fig_toy_ce_toy_symmetric_direct.png" in names
    assert "figures-svg/fig_toy_ce_toy_symmetric_direct.svg" in names
    assert not any("fig_toy_ce_toy_pairflip" in n for n in names)
    assert (out / "figures" / "fig_toy_ce_toy_symmetric_direct.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # what it drew is the study's numbers: CE's honest means per noise rate, from SPEC by hand
    svg = (out / "figures-svg" / "fig_toy_ce_toy_symmetric_direct.svg").read_text()
    ce = [f"{100 * statistics.fmean(SPEC[r][('ce', 0.0)]):.2f}" for r in RATES]
    assert f"<!-- toy / symmetric / direct: CE {ce[0]}, {ce[1]} -->" in svg


def test_a_toy_claim_is_one_entry_that_reaches_claims_findings_and_summary(study, toy_entries, tmp_path):
    results_csv, curves_csv = study
    report.build_reports(results_csv, curves_csv, tmp_path / "out")
    out = tmp_path / "out"
    rows = {(r["noise_kind"], r["claim"]): r for r in _rows(out / "tables" / "claims.csv")}
    mean, low, high = _expected_z()
    z = rows[("symmetric", "z")]
    assert z["text"] == "NLS beats LS at the highest noise" and z["selected"] == "holds"
    assert (float(z["selected_mean"]), float(z["selected_seed_low"]), float(z["selected_seed_high"])) == pytest.approx(
        (mean, low, high), abs=1e-4)
    # the primary interval (every source) holds the interval over seeds' mean, and the family's size is stated
    assert float(z["selected_low"]) < mean < float(z["selected_high"]) and int(z["selected_family"]) >= 1
    assert z["selected_n"] == str(SEEDS) and "; noise 0.6; p_adj = " in z["selected_evidence"]
    # its need: the pairflip setting has no NLS cells
    assert rows[("pairflip", "z")]["selected"] == "not tested"
    assert rows[("pairflip", "z")]["selected_evidence"] == "no cells of NLS"
    findings = (out / "findings.md").read_text()
    assert "| toy | symmetric | direct | (z) NLS beats LS at the highest noise | ✅ holds |" in findings
    assert "(z): holds when the effect is above 0" in findings       # the rule of its kind, read out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["claims_hold"] == sum(r["selected"] == "holds" for r in rows.values())
    assert _rows(out / "tables" / "toy.csv") == [{"dataset": "toy", "noise_kind": "pairflip", "z": "not tested"},
                                                 {"dataset": "toy", "noise_kind": "symmetric", "z": "holds"}]


def test_a_table_file_is_written_only_for_a_study_with_what_it_needs(toy_entries):
    with_nls = report.report_files({("d", "symmetric", "direct"): {"ce", "nls"}})
    without = report.report_files({("d", "symmetric", "direct"): {"ce", "ls"}})
    assert "tables/toy.csv" in with_nls and "tables/toy.csv" not in without
    assert len(with_nls) - len(without) == 1 + 2            # the table file and the toy figure's two formats


def _analysis(results_csv):
    from smoothbench.report import results as study_results

    rows = collect.read_results(results_csv)
    return study_results.from_rows(rows, params={"bootstrap": 200}).analysis


def test_the_verdict_rule_is_one_function_per_kind_applied_to_every_entry(study, toy_entries, monkeypatch):
    """Replacing the sign rule changes every sign claim (the toy one too) and no other."""
    results_csv, _ = study
    analysis = _analysis(results_csv)
    key = ("toy", "symmetric", "direct")

    def counted(q, margin, test_samples) -> Test:
        return Test(None, None, why_not=f"{(~np.isnan(q.observed.values[0])).sum()} seeds")

    before = {v.claim: v for v in claims.check(analysis, "selected")[key]}
    monkeypatch.setitem(claims.RULES, "sign", claims.Rule(counted, claims.RULES["sign"].decide, "replaced"))
    after = {v.claim: v for v in claims.check(analysis, "selected")[key]}
    sign = {c.id for c in claims.CLAIMS.values() if c.kind == "sign"}
    assert sign == {"a", "b", "c", "z"}
    assert {c: after[c].evidence for c in sign} == {c: f"{SEEDS} seeds" for c in sign}
    assert {c: after[c].test for c in after if c not in sign} == {c: before[c].test for c in before if c not in sign}
    assert claims.rules_reading().startswith("(a)-(c): replaced; ")


def test_unmet_needs_say_why_a_claim_is_not_tested(study, monkeypatch):
    results_csv, _ = study
    analysis = _analysis(results_csv)
    sets = analysis.settings[("toy", "symmetric", "direct")]
    for claim, why in ((Claim("g", "GCE helps", "t", "sign", _nls_over_ls_high, methods=("gce", "ce")),
                        "no cells of GCE"),
                       (Claim("k", "many classes", "t", "sign", _nls_over_ls_high, min_classes=11),
                        "K = 10: needs K ≥ 11 classes"),
                       (Claim("r", "three rates", "t", "sign", _nls_over_ls_high, noise_rates=3),
                        "2 noise rates; needs 3")):
        t, _ = claims.test(claim, sets, analysis, "selected")
        assert (t.p, t.why_not) == (None, why)


def test_a_bad_entry_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r"^claim 'a': the id is empty or taken; taken: a, b, c, c', d, e$"):
        claims.register(Claim("a", "again", "t", "sign", _nls_over_ls_high))
    with pytest.raises(ValueError, match=r"^claim 'y': kind 'bigger'; allowed: sign, direction, equivalence$"):
        claims.register(Claim("y", "t", "t", "bigger", _nls_over_ls_high))
    with pytest.raises(ValueError, match=r"^figure 'claims': the name must match"):
        figures.register(Figure("claims", "t", "t", _draw_toy))
    with pytest.raises(ValueError, match=r"^table file 'findings.md' is registered already$"):
        table_files.register(TableFile("findings.md", lambda r: ""))
    assert "y" not in claims.CLAIMS
