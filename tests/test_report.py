"""Tests of smoothbench.report: collect -> results.csv/curves.csv -> tables, figures, summary."""

from __future__ import annotations

import csv
import json
import math
import struct
from pathlib import Path

import pytest

from smoothbench import report
from smoothbench.grid import Cell

K = 10

# Hand-made numbers: (noise_rate) -> {(method, rate): [(status, best, selected), per seed]}
D = "diverged"
TOY = {
    "0.2": {
        ("ce", 0.0): [("ok", 0.80, 0.79), ("ok", 0.80, 0.79)],
        ("ls", 0.2): [("ok", 0.85, 0.84), ("ok", 0.85, 0.84)],
        ("ls", 0.4): [("ok", 0.82, 0.81), ("ok", 0.82, 0.81)],
        ("nls", -0.4): [("ok", 0.78, 0.77), ("ok", 0.78, 0.77)],
        ("nls", -1.0): [("ok", 0.70, 0.69), ("ok", 0.70, 0.69)],
        ("flip", 0.18): [("ok", 0.84, 0.83), ("ok", 0.84, 0.83)],
    },
    "0.6": {
        ("ce", 0.0): [("ok", 0.50, 0.50), ("ok", 0.52, 0.50)],
        ("ls", 0.2): [("ok", 0.53, 0.45), ("ok", 0.55, 0.45)],
        ("ls", 0.4): [("ok", 0.56, 0.44), ("ok", 0.58, 0.44)],
        ("nls", -0.4): [("ok", 0.60, 0.40), ("ok", 0.62, 0.40)],
        # all seeds diverged; the frozen figures are high but must never count
        ("nls", -1.0): [(D, 0.90, 0.90), (D, 0.90, 0.90)],
        # one of two seeds diverged
        ("flip", 0.18): [(D, 0.99, 0.99), ("ok", 0.55, 0.43)],
    },
}


def _metrics(method: str, rate: float, status: str, best: float, selected: float) -> dict:
    cell = Cell(method, rate)
    return {
        "cell_id": cell.id, "method": method, "rate": rate,
        "smooth_rate": cell.smooth_rate, "flip_rate": cell.flip_rate,
        "status": status, "diverged_epoch": 2 if status == D else None, "epochs": 3,
        "test_acc_final": round(selected - 0.02, 6), "test_acc_best": best, "best_epoch": 2,
        "test_acc_selected": selected, "selected_epoch": 3, "val_acc_selected": 0.5,
        "clean_train_acc": round(0.9 - rate / 10, 6), "noisy_train_acc": round(0.6 + rate / 10, 6),
        "test_nll": 1.25, "ece": round(0.05 + abs(rate) / 20, 6), "train_loss": 0.75,
    }


def _realised(noise_rate: str) -> float | None:
    try:
        return round(float(noise_rate) - 0.003, 6)
    except ValueError:  # a human label-set name
        return None


def write_group(root: Path, dataset: str, kind: str, noise_rate: str, seed: int,
                cells: list[dict], skip_curves: str | None = None) -> Path:
    gdir = root / dataset / f"{kind}-{noise_rate}" / f"seed{seed}"
    for c in cells:
        if c["cell_id"] == skip_curves:
            continue
        cdir = gdir / "cells" / c["cell_id"]
        cdir.mkdir(parents=True, exist_ok=True)
        lines = [",".join(report.CURVE_COLUMNS)]
        for ep, phase in ((1, "warmup"), (2, "main"), (3, "main")):
            acc = c["test_acc_best"] - 0.01 * (3 - ep)
            lines.append(f"{ep},{phase},0.1,{1.0 / ep},0.5,0.6,0.55,{acc},1.5,0.1")
        (cdir / "curves.csv").write_text("\n".join(lines) + "\n")
    gdir.mkdir(parents=True, exist_ok=True)
    group = {"group_id": f"{dataset}-{kind}-{noise_rate}-s{seed}", "dataset": dataset,
             "noise_kind": kind, "noise_rate": noise_rate, "seed": seed, "num_classes": K,
             "realised_noise_rate": _realised(noise_rate), "protocol": {"epochs": 3},
             "device": "cpu", "cells": cells}
    path = gdir / "group.json"
    path.write_text(json.dumps(group))
    return path


def write_toy(root: Path, dataset: str = "toy", kind: str = "symmetric", data: dict = TOY) -> list[Path]:
    paths = []
    for noise_rate, cells in data.items():
        nseeds = len(next(iter(cells.values())))
        for seed in range(nseeds):
            metrics = [_metrics(m, r, *per_seed[seed]) for (m, r), per_seed in cells.items()]
            paths.append(write_group(root, dataset, kind, noise_rate, seed, metrics))
    return paths


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    paths = write_toy(root) + write_toy(root, kind="pairflip")
    results, curves = root / "results.csv", root / "curves.csv"
    report.collect(paths, results, curves)
    return root, paths, results, curves


def write_refs(folder: Path) -> Path:
    """A fixture reference file (made-up numbers, only to test the mechanism)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fixture.csv").write_text(
        "dataset,noise_kind,noise_rate,method,rate,test_acc,source\n"
        "toy,symmetric,0.6,ce,0,48.50,fixture table 1 p. 1\n"
        "toy,symmetric,0.6,nls,-0.2,59.00,fixture table 1 p. 1\n"
        "toy,symmetric,0.6,nls,-0.4,60.25,fixture table 1 p. 1\n")
    return folder


@pytest.fixture(scope="module")
def built(collected, tmp_path_factory):
    _, _, results, curves = collected
    refdir = write_refs(tmp_path_factory.mktemp("refs"))
    out = tmp_path_factory.mktemp("reports")
    written = report.build_reports(results, curves, out, reference_dir=refdir)
    return out, written


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- collect


def test_collect_results_columns_rows_and_order(collected):
    _, _, results, _ = collected
    text = results.read_text()
    lines = text.splitlines()
    assert lines[0] == ",".join(report.RESULT_COLUMNS)
    rows = _read_csv(results)
    assert len(rows) == 2 * 2 * 2 * 6  # kinds x noise rates x seeds x cells
    keys = [(r["dataset"], r["noise_kind"], float(r["noise_rate"]), int(r["seed"]), r["method"], float(r["rate"]))
            for r in rows]
    assert keys == sorted(keys)
    assert rows[0]["noise_kind"] == "pairflip" and rows[0]["method"] == "ce"
    # exact text of one row: floats as repr, null as empty, ints as ints
    expected = ("toy,symmetric,0.6,1,flip,0.18,flip_0.18,ok,,0.41,0.55,0.43,2,3,0.5,0.882,0.618,"
                "1.25,0.059,0.75,0.0,0.18,10,0.597")
    assert expected in lines
    diverged = [r for r in rows if r["status"] == "diverged"]
    assert len(diverged) == 2 * 3 and all(r["diverged_epoch"] == "2" for r in diverged)


def test_collect_curves(collected):
    _, _, _, curves = collected
    rows = _read_csv(curves)
    assert list(rows[0].keys()) == report.CURVES_OUT_COLUMNS
    assert len(rows) == 2 * 2 * 2 * 6 * 3
    first = rows[0]
    assert (first["dataset"], first["noise_kind"], first["noise_rate"], first["seed"], first["method"],
            first["epoch"], first["phase"]) == ("toy", "pairflip", "0.2", "0", "ce", "1", "warmup")
    assert [r["epoch"] for r in rows[:3]] == ["1", "2", "3"]


def test_collect_is_byte_stable_and_order_free(collected, tmp_path):
    _, paths, results, curves = collected
    r2, c2 = tmp_path / "r.csv", tmp_path / "c.csv"
    report.collect(list(reversed(paths)), r2, c2)
    assert r2.read_bytes() == results.read_bytes()
    assert c2.read_bytes() == curves.read_bytes()
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temp files


def test_collect_duplicate_cell_fails(tmp_path):
    cells = [_metrics("ce", 0.0, "ok", 0.8, 0.8)]
    a = write_group(tmp_path / "a", "toy", "symmetric", "0.2", 0, cells)
    b = write_group(tmp_path / "b", "toy", "symmetric", "0.2", 0, cells)
    with pytest.raises(ValueError, match="duplicate cell") as exc:
        report.collect([a, b], tmp_path / "r.csv", tmp_path / "c.csv")
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "r.csv").exists()


def test_collect_missing_or_malformed_files_fail(tmp_path):
    cells = [_metrics("ce", 0.0, "ok", 0.8, 0.8), _metrics("ls", 0.2, "ok", 0.8, 0.8)]
    g = write_group(tmp_path / "g", "toy", "symmetric", "0.2", 0, cells, skip_curves="ls_0.2")
    with pytest.raises(ValueError, match="curves file is missing"):
        report.collect([g], tmp_path / "r.csv", tmp_path / "c.csv")
    with pytest.raises(ValueError, match="group file is missing"):
        report.collect([tmp_path / "nope" / "group.json"], tmp_path / "r.csv", tmp_path / "c.csv")
    bad = tmp_path / "bad" / "group.json"
    bad.parent.mkdir()
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        report.collect([bad], tmp_path / "r.csv", tmp_path / "c.csv")
    broken = dict(cells[0])
    del broken["test_acc_selected"]
    g2 = write_group(tmp_path / "g2", "toy", "symmetric", "0.2", 0, [broken])
    with pytest.raises(ValueError, match="'test_acc_selected' is missing"):
        report.collect([g2], tmp_path / "r.csv", tmp_path / "c.csv")
    wrong = dict(cells[0], status="exploded")
    g3 = write_group(tmp_path / "g3", "toy", "symmetric", "0.2", 0, [wrong])
    with pytest.raises(ValueError, match="status"):
        report.collect([g3], tmp_path / "r.csv", tmp_path / "c.csv")
    curves = g.parent / "cells" / "ce_0" / "curves.csv"
    curves.write_text("epoch,phase\n1,main\n")
    write_group(tmp_path / "g", "toy", "symmetric", "0.2", 0, cells)  # restore ls curves
    curves.write_text("epoch,phase\n1,main\n")
    with pytest.raises(ValueError, match="columns missing"):
        report.collect([g], tmp_path / "r.csv", tmp_path / "c.csv")


# --------------------------------------------------------------------------- tables


def _table(out: Path, selection: str) -> dict:
    return {(r["noise_kind"], r["noise_rate"], r["method"]): r
            for r in _read_csv(out / f"table_{selection}.csv")}


def test_tables_pick_best_rates_and_mark_best_method(built):
    out, _ = built
    t = _table(out, "best")
    # noise 0.6: best LS r=0.4, best NLS r=-0.4 (r=-1 all diverged), NLS wins
    assert t[("symmetric", "0.6", "ls")]["rate"] == "0.4"
    assert t[("symmetric", "0.6", "nls")]["rate"] == "-0.4"
    assert t[("symmetric", "0.6", "nls")]["test_acc_mean_pct"] == "61.0000"
    assert t[("symmetric", "0.6", "ce")]["test_acc_mean_pct"] == "51.0000"
    assert t[("symmetric", "0.6", "ce")]["test_acc_std_pct"] == f"{100 * math.sqrt(2e-4):.4f}"  # ddof=1
    assert [m for m in report.COLUMN_METHODS if t[("symmetric", "0.6", m)]["best"] == "1"] == ["nls"]
    # noise 0.2: LS r=0.2 wins
    assert t[("symmetric", "0.2", "ls")]["rate"] == "0.2"
    assert [m for m in report.COLUMN_METHODS if t[("symmetric", "0.2", m)]["best"] == "1"] == ["ls"]
    md = (out / "tables.md").read_text()
    assert "**61.00 ± 1.41 (r=-0.4)**" in md
    assert "| 0.6 | 51.00 ± 1.41 |" in md
    tex = (out / "tables.tex").read_text()
    assert "\\textbf{61.00 $\\pm$ 1.41 (r=-0.4)}" in tex
    assert "\\begin{tabular}" in tex and "ddof=1" in tex


def test_honest_selection_changes_the_winner(built):
    out, _ = built
    t = _table(out, "selected")
    assert [m for m in report.COLUMN_METHODS if t[("symmetric", "0.6", m)]["best"] == "1"] == ["ce"]
    assert t[("symmetric", "0.6", "ls")]["rate"] == "0.2"  # best LS rate differs from `best` selection
    assert [m for m in report.COLUMN_METHODS if t[("symmetric", "0.2", m)]["best"] == "1"] == ["ls"]
    md = (out / "tables.md").read_text()
    assert "| toy | symmetric | 0.6 | NLS (r=-0.4) | CE |" in md
    assert md.count("| toy | symmetric | 0.6 |") == 1
    assert "| toy | symmetric | 0.6 | NLS (r=-0.4) | CE | CE | no |" in md
    assert "| toy | symmetric | 0.2 | LS (r=0.2) | LS (r=0.2) |" in md
    assert "under `selected` selection (test_acc_selected)" in md
    findings = (out / "findings.md").read_text()
    assert "The winner changes under honest selection: NLS (r=-0.4) (best-on-test) → CE (honest)" in findings
    assert "NLS (r=-0.4) +10.00 points vs CE" in findings
    assert "flip ε=0.18 vs LS r=0.2: 84.00% vs 85.00% (-1.00 points)" in findings


def test_diverged_cells_excluded_and_shown(built):
    out, _ = built
    t = _table(out, "best")
    flip = t[("symmetric", "0.6", "flip")]
    assert flip["test_acc_mean_pct"] == "55.0000" and flip["test_acc_std_pct"] == ""
    assert (flip["n_used"], flip["n_seeds"], flip["n_diverged"]) == ("1", "2", "1")
    assert flip["text"] == "55.00 (ε=0.18; 1/2 diverged)"
    md = (out / "tables.md").read_text()
    assert "noise 0.6: NLS r=-1: 2/2, flip ε=0.18: 1/2" in md


def test_all_rates_diverged_cannot_be_best():
    rows = []
    for seed in (0, 1):
        for (m, r), status, acc in ((("ce", 0.0), "ok", 0.5), (("nls", -1.0), D, 0.9), (("nls", -2.0), D, 0.95)):
            row = {k: None for k in report.RESULT_COLUMNS}
            row.update(dataset="x", noise_kind="symmetric", noise_rate="0.4", seed=seed, method=m, rate=r,
                       status=status, test_acc_best=acc, test_acc_selected=acc, test_acc_final=acc, num_classes=K)
            rows.append(row)
    (setting,) = report._settings(rows)[("x", "symmetric")]
    entries = report.table_row(setting, "best")
    assert entries["ce"].best and not entries["nls"].best
    assert entries["nls"].stat is None and entries["flip"] is None
    assert report.entry_text(entries["nls"]) == "diverged (4/4)"
    assert report.entry_text(entries["ce"]) == "**50.00 ± 0.00**"


def test_reference_column(built, collected, tmp_path):
    out, _ = built
    md = (out / "tables.md").read_text()
    assert "| noise rate | CE | CE (paper) | best LS | LS (paper) |" in md
    assert "| 48.50 |" in md and "60.25 (r=-0.4)" in md
    assert "Paper numbers from: fixture table 1 p. 1." in md
    t = _table(out, "best")
    assert (t[("symmetric", "0.6", "nls")]["paper_test_acc_pct"], t[("symmetric", "0.6", "nls")]["paper_rate"]) \
        == ("60.25", "-0.4")
    assert t[("pairflip", "0.6", "nls")]["paper_test_acc_pct"] == ""
    # without references there is no paper column (the package ships none for `toy`)
    _, _, results, curves = collected
    settings = report._settings(report.read_results(results))
    assert not any(r["dataset"] == "toy" for r in report.read_references())
    assert "(paper)" not in report._md_tables(settings, [])
    assert "(paper)" not in report._tex_tables(settings, [])
    bad = tmp_path / "refs"
    bad.mkdir()
    (bad / "r.csv").write_text("dataset,noise_kind,noise_rate,method,rate,test_acc,source\n"
                               "toy,symmetric,0.6,ce,0,48.5,\n")
    with pytest.raises(ValueError, match="source is empty"):
        report.build_reports(results, curves, tmp_path / "o", reference_dir=bad)
    with pytest.raises(ValueError, match="does not exist"):
        report.build_reports(results, curves, tmp_path / "o", reference_dir=tmp_path / "missing")


def test_summary_json(built):
    out, _ = built
    s = json.loads((out / "summary.json").read_text())
    node = s["toy"]["symmetric"]["0.6"]
    assert (node["cells"], node["diverged"], node["seeds"]) == (12, 3, 2)
    assert node["best"]["nls"] == 61.0 and node["best"]["nls_rate"] == -0.4
    assert node["best"]["nls_minus_ce"] == 10.0
    assert node["selected"]["ce"] == 50.0 and node["selected"]["ls_rate"] == 0.2
    assert node["best"]["flip"] == 55.0 and "flip_std" not in node["best"]
    assert s["total"] == {"cells": 48, "diverged": 6}


# --------------------------------------------------------------------------- files and figures


def test_report_files_match_written(built):
    out, written = built
    names = report.report_files([("toy", "symmetric"), ("toy", "pairflip"), ("toy", "symmetric")])
    assert [Path(p).name for p in written] == names
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    assert "fig_acc_vs_rate_toy_symmetric.png" in names and "fig_curves_toy_pairflip.svg" in names
    assert len(names) == len(report.TEXT_FILES) + 2 * len(report.FIGURES) * 2


def _png_chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, kinds = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kinds.append(data[pos + 4:pos + 8])
        pos += 12 + length
    return kinds


def test_report_is_byte_identical_and_undated(built, collected, tmp_path):
    out, written = built
    _, _, results, curves = collected
    refdir = write_refs(tmp_path / "refs")
    again = report.build_reports(results, curves, tmp_path / "again", reference_dir=refdir)
    for a, b in zip(written, again):
        assert Path(a).read_bytes() == Path(b).read_bytes(), Path(a).name
    pngs = [Path(p) for p in again if p.endswith(".png")]
    svgs = [Path(p) for p in again if p.endswith(".svg")]
    assert len(pngs) == len(svgs) == 2 * len(report.FIGURES)
    for p in pngs:
        data = p.read_bytes()
        chunks = _png_chunks(data)
        assert b"tIME" not in chunks and b"Software" not in data and b"Date" not in data
    for p in svgs:
        text = p.read_text()
        assert text.startswith("<?xml") and "<svg" in text
        assert "dc:date" not in text and "Matplotlib v" not in text


def test_bad_results_fail_clearly(tmp_path):
    p = tmp_path / "results.csv"
    p.write_text("dataset,noise_kind\nx,y\n")
    with pytest.raises(ValueError, match="columns missing"):
        report.build_reports(p, p, tmp_path / "out")
    p.write_text(",".join(report.RESULT_COLUMNS) + "\n")
    c = tmp_path / "curves.csv"
    c.write_text(",".join(report.CURVES_OUT_COLUMNS) + "\n")
    with pytest.raises(ValueError, match="no cells"):
        report.build_reports(p, c, tmp_path / "out")


def test_warmup_checkpoint_counts_come_from_the_curves():
    from smoothbench.report import _warmup_checkpoints

    def row(seed, method, best, sel):
        return {"dataset": "d", "noise_kind": "symmetric", "noise_rate": "0.4", "seed": seed, "method": method,
                "best_epoch": best, "selected_epoch": sel}

    curves = [{"dataset": "d", "noise_kind": "symmetric", "noise_rate": "0.4", "seed": seed, "epoch": e,
               "phase": "warmup" if e <= 3 else "main"} for seed in (0, 1) for e in range(1, 7)]
    rows = [row(0, "ce", 3, 5), row(0, "nls", 6, 2), row(1, "ce", 1, None), row(1, "ls", 4, 4)]
    assert _warmup_checkpoints(rows, curves) == {("d", "symmetric"): {"cells": 4, "best": 2, "selected": 1}}
    # no warm-up phase: nothing can come from it
    direct = [dict(c, phase="main") for c in curves]
    assert _warmup_checkpoints(rows, direct) == {("d", "symmetric"): {"cells": 4, "best": 0, "selected": 0}}
