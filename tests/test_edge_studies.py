"""Findings that never say what is not so: a matrix of edge studies (robust methods only, one
seed, every cell diverged, no held-out split, one noise rate, and an ordinary one) runs through
the report, and each sentence of findings.md that states a number or a fact is checked against
the study's numbers, computed here from results.csv by hand; a figure or table with nothing to
show is neither written nor promised, and every interval of an accuracy stays within [0, 100]."""

from __future__ import annotations

import math
import re
import statistics

import pytest

from smoothbench import methods as registry
from smoothbench.report import build, choices, collect
from smoothbench.report.shape import Shape
from toy_results import D, metrics, read_csv_rows, write_group

OK = "ok"


def _cells(kind: str, rate: str, seed: int) -> list[tuple]:
    """(method, parameters, status, best-on-test accuracy, honest accuracy) of one group of an edge study."""
    base = {"0": 0.9, "0.4": 0.7}[rate] + 0.01 * seed
    if kind == "robust":
        return [("gce", 0.7, OK, base + 0.02, base), ("sce", (0.1, 1.0), OK, base + 0.03, base + 0.01),
                ("mae", 1.0, OK, base, base - 0.02)]
    if kind == "diverged":
        return [(m, r, D, 0.5, 0.5) for m, r in (("ce", 0.0), ("ls", 0.2), ("nls", -0.5))]
    return [("ce", 0.0, OK, base + 0.01, base), ("ls", 0.2, OK, base + 0.02, base + 0.005),
            ("ls", 0.4, OK, base + 0.015, base - 0.005), ("nls", -0.5, OK, base + 0.03 - 0.05 * (rate == "0"),
                                                           base + 0.01 - 0.05 * (rate == "0")),
            ("gce", 0.7, OK, base + 0.02, base + 0.002)]


EDGES = {   # name -> (kind of cells, noise rates, seeds, held-out split)
    "ordinary": ("smoothing", ("0", "0.4"), 3, True),
    "robust-only": ("robust", ("0", "0.4"), 3, True),
    "one-seed": ("smoothing", ("0", "0.4"), 1, True),
    "all-diverged": ("diverged", ("0", "0.4"), 3, True),
    "no-held-out": ("smoothing", ("0", "0.4"), 3, False),
    "one-rate": ("smoothing", ("0.4",), 3, True),
}


@pytest.fixture(scope="module", params=list(EDGES))
def edge(request, tmp_path_factory):
    name = request.param
    kind, rates, seeds, held_out = EDGES[name]
    root = tmp_path_factory.mktemp(name)
    paths = []
    for rate in rates:
        for seed in range(seeds):
            cells = [metrics(m, r, st, round(b, 6), round(h, 6) if held_out else None)
                     for m, r, st, b, h in _cells(kind, rate, seed)]
            paths.append(write_group(root / "results", "edge", "symmetric", rate, seed, cells))
    collect.collect(paths, root / "results.csv", root / "curves.csv")
    choices.write_choices(root / "results.csv", root / "choices.csv")
    written = build.build_reports(root / "results.csv", root / "curves.csv", root / "out", analysis={"bootstrap": 200})
    methods = frozenset(m for m, *_ in _cells(kind, rates[0], 0))
    shape = Shape(methods, len(rates), seeds, held_out)
    return name, root, written, shape


def _rows(root) -> list[dict]:
    return collect.read_results(root / "results.csv")


def _name(method: str, params: tuple, edge: str = "") -> str:
    """A method at its parameters as the findings name it (``edge``: the leaderboard's mark)."""
    m = registry.get(method)
    label = m.label_params(params, "plain") if m.params and m.tunable else ""
    label = ", ".join(x for x in (label, "edge of grid" if edge else "") if x)
    return m.label + (f" ({label})" if label else "")


def test_the_files_written_are_those_promised_and_nothing_empty(edge):
    name, root, written, shape = edge
    out = root / "out"
    promised = build.report_files({("edge", "symmetric", "direct"): shape}, [])
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == sorted(promised)
    figures = {p.split("fig_")[1].split("_edge")[0] for p in promised if p.startswith("figures/")}
    smoothing = name not in ("robust-only",)
    assert ("acc_vs_rate" in figures) == smoothing and ("heatmap" in figures) == smoothing
    assert ("claims" in figures) == (smoothing and shape.seeds >= 2)        # intervals need two seeds
    assert ("protocol" in figures) == shape.held_out                        # an honest epoch needs a held-out split
    assert ("tables/table_selected.csv" in promised) == shape.held_out
    assert ("tables/protocol.csv" in promised) == shape.held_out
    assert "tables/reproduction.csv" not in promised                        # no published number of "edge"


def test_every_sentence_of_the_findings_is_true(edge):
    name, root, _, shape = edge
    text = (root / "out" / "findings.md").read_text()
    rows = _rows(root)
    claims_rows = read_csv_rows(root / "out" / "tables" / "claims.csv")
    lines = text.splitlines()
    assert not re.search(r"\bn/a\b|\bnan\b|\bNone\b", text)

    # the held-out split: said absent exactly when it is
    assert ("**No held-out split** on edge" in text) == (not shape.held_out)
    assert ("Flagged" in text) == shape.held_out

    # the family: its size is the number of claims tested under the honest selection
    tested = sum(r["selected"] != "not tested" for r in claims_rows)
    if tested:
        assert f"one family of {tested} test{'s' if tested != 1 else ''}," in text
    else:
        assert "**No claim is tested** under the honest selection" in text and "one family of" not in text
    if not shape.held_out:     # every claim untested; those the study could test say why
        assert all(r["selected"] == "not tested" for r in claims_rows)
        assert [r["claim"] for r in claims_rows if r["selected_evidence"].startswith("no held-out split")] == \
            ["a", "b", "c", "c'"]
    if name == "robust-only":
        assert all(r["selected"] == "not tested" and r["selected_evidence"].startswith("no cells of")
                   for r in claims_rows)

    # collapse and divergence per method: counted by hand
    sentence = next(x for x in lines if x.startswith("Collapse ("))
    for method in {r["method"] for r in rows}:
        cells = [r for r in rows if r["method"] == method]
        div = sum(r["status"] == "diverged" for r in cells)
        if div:
            assert f"{registry.get(method).label} 0/{len(cells)} collapsed, {div}/{len(cells)} diverged" in sentence
    if not any(r["status"] == "diverged" for r in rows):
        assert sentence.endswith("no cell collapsed or diverged.")

    # per setting: seeds, diverged cells, the method ranked first and its mean, intervals only with two seeds
    selection = "selected" if shape.held_out else "best"
    chosen = {(r["noise_rate"], r["method"]): r for r in read_csv_rows(root / "choices.csv")
              if r["selection"] == selection}
    for line in (x for x in lines if x.startswith("- noise ")):
        m = re.match(r"- noise (\S+): \((\d+) seeds?, (\d+)/(\d+) cells diverged(?:, \d+ collapsed)?\) (.*)$", line)
        assert m, line
        rate, n_seeds, n_div, n_cells, rest = m.groups()
        here = [r for r in rows if r["noise_rate"] == rate]
        assert int(n_seeds) == len({r["seed"] for r in here}) and int(n_cells) == len(here)
        assert int(n_div) == sum(r["status"] == "diverged" for r in here)
        if all(r["status"] == "diverged" for r in here):
            assert rest == "no method has a usable cell: nothing is ranked."
            continue
        by = "held-out accuracy" if shape.held_out else "best-on-test accuracy (no held-out split)"
        first = min((c for (rt, _), c in chosen.items() if rt == rate and c["rank_in_variant"]),
                    key=lambda c: int(c["rank_in_variant"]))
        params = registry.get(first["method"]).parse_params_text(first["params"])
        accs = [r[f"test_acc_{selection}"] for r in here if r["method"] == first["method"]
                and tuple(r["values"]) == params and r["status"] == "ok"]
        assert rest.startswith(f"ranked first by {by}: {_name(first['method'], params)} at "
                               f"{100 * statistics.fmean(accs):.2f}% test accuracy"), (line, first)
        if shape.seeds == 1:
            assert "[" not in rest and ("no interval" in rest or "against" not in rest)

    # the leaderboard's leaders: their mean test accuracy, by hand; with every cell diverged, none
    for line in (x for x in lines if x.startswith("- edge / symmetric") and (": leader " in x or "nothing is" in x)):
        rate = line.split()[4].rstrip(":")
        if "nothing is ranked" in line:
            assert all(r["status"] == "diverged" for r in rows if r["noise_rate"] == rate)
            continue
        leader = next(c for (rt, _), c in chosen.items() if rt == rate and c["rank"] == "1")
        params = registry.get(leader["method"]).parse_params_text(leader["params"])
        accs = [r[f"test_acc_{selection}"] for r in rows if r["noise_rate"] == rate and r["method"] == leader["method"]
                and tuple(r["values"]) == params and r["status"] == "ok"]
        assert f"leader {_name(leader['method'], params, leader['edge'])} at {100 * statistics.fmean(accs):.2f}%" \
            in line, line
        if not shape.held_out:
            assert "(ranked under best-on-test: no held-out split)" in line

    # sections that need what the study may not have
    assert ("## NLS against the best robust baseline" in text) == (name in ("ordinary", "one-seed", "no-held-out",
                                                                            "one-rate"))
    assert ("## The optimism gap" in text) == (shape.held_out and name != "all-diverged")


def test_accuracy_intervals_stay_within_0_and_100(edge):
    name, root, _, _ = edge
    board = read_csv_rows(root / "out" / "tables" / "leaderboard.csv")
    for r in board:
        for c in ("test_low_pct", "test_high_pct"):
            if r[c]:
                assert 0.0 <= float(r[c]) <= 100.0, (name, r)


def test_a_ranked_leaderboard_without_a_held_out_split():
    """The paper presets (val_fraction 0) keep the reference's protocol and still get a ranked
    leaderboard: under best-on-test, said in its column and its title."""
    import tempfile
    from pathlib import Path

    root = Path(tempfile.mkdtemp())
    paths = [write_group(root / "results", "edge", "symmetric", "0.4", s,
                         [metrics(m, r, st, round(b, 6), None) for m, r, st, b, _ in _cells("smoothing", "0.4", s)])
             for s in range(3)]
    collect.collect(paths, root / "results.csv", root / "curves.csv")
    choices.write_choices(root / "results.csv", root / "choices.csv")
    build.build_reports(root / "results.csv", root / "curves.csv", root / "out", analysis={"bootstrap": 200})
    board = read_csv_rows(root / "out" / "tables" / "leaderboard.csv")
    assert {r["ranked_by"] for r in board} == {"best"} and sorted(int(r["rank"]) for r in board) == [1, 2, 3, 4]
    md = (root / "out" / "tables" / "tables.md").read_text()
    assert "### edge / symmetric 0.4 — ranked under best-on-test (no held-out split)" in md
    assert math.isclose(float(board[0]["test_mean_pct"]), 100 * statistics.fmean(
        0.7 + 0.03 + 0.01 * s for s in range(3)), abs_tol=1e-3)               # NLS: best-on-test at 0.4
