"""The report entry points: which files, written byte-identically, undated, errors."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from smoothbench.core import vocabulary as vocab
from smoothbench.report import figures
from smoothbench.report import build as report, collect, table_files
from toy_results import D, K, metrics, read_csv_rows, write_group, write_refs  # noqa: F401


def test_report_files_match_written(built, tmp_path):
    out, written = built
    toy_methods = {"ce", "ls", "nls", "flip"}
    refs = collect.read_references(write_refs(tmp_path / "refs"))      # the references the fixture's report used
    names = report.report_files({("toy", "symmetric", "direct"): toy_methods, ("toy", "pairflip", "direct"): toy_methods},
                                refs)
    assert [Path(p).relative_to(out).as_posix() for p in written] == names
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(names)
    assert "figures/fig_acc_vs_rate_toy_symmetric_direct.png" in names
    assert "figures-svg/fig_curves_toy_pairflip_direct.svg" in names
    assert "figures/fig_leaderboard_toy_pairflip_direct.png" in names
    wanted = [e for e in table_files.TABLE_FILES.values() if not e.needs_any]   # noise_estimates: not here
    assert len(names) == len(wanted) + 2 * len(figures.FIGURES) * 2


def test_the_flip_figure_is_drawn_only_for_a_study_with_flip_and_ls_cells():
    with_flip = report.report_files({("d", "symmetric", "direct"): {"ce", "ls", "flip"}})
    without = report.report_files({("d", "symmetric", "direct"): {"ce", "ls", "gce"}})
    assert "figures/fig_flip_vs_ls_d_symmetric_direct.png" in with_flip
    assert "figures/fig_flip_vs_ls_d_symmetric_direct.png" not in without
    assert len(with_flip) - len(without) == 2


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
    assert len(pngs) == len(svgs) == 2 * len(figures.FIGURES)
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
    p.write_text(",".join(vocab.RESULT_COLUMNS) + "\n")
    c = tmp_path / "curves.csv"
    c.write_text(",".join(vocab.CURVES_OUT_COLUMNS) + "\n")
    with pytest.raises(ValueError, match="no cells"):
        report.build_reports(p, c, tmp_path / "out")


def test_every_csv_loads_with_numeric_columns_where_the_values_are_numbers(built):
    """Numbers as numbers: a column that holds text is text through and through; wherever the
    values are numbers pandas reads a numeric dtype (no np.float64(...) text, no stray strings)."""
    import pandas as pd

    out, written = built
    csvs = [p for p in map(Path, written) if p.suffix == ".csv"] + sorted(out.glob("*.csv"))
    assert {p.name for p in csvs} >= {"claims.csv", "leaderboard.csv", "table_selected.csv", "reproduction.csv"}
    for path in csvs:
        frame = pd.read_csv(path)
        assert "np.float64" not in path.read_text(), path.name
        for col in frame.columns:
            values = frame[col].dropna()
            if values.empty or pd.api.types.is_numeric_dtype(frame[col]):
                continue
            numeric = pd.to_numeric(values, errors="coerce")
            assert numeric.isna().all(), f"{path.name}: column {col} mixes numbers and text: {list(values[:5])}"
    claims_frame = pd.read_csv(out / "tables" / "claims.csv")
    for col in ("selected_mean", "selected_low", "selected_high", "best_mean", "final_mean"):
        assert pd.api.types.is_float_dtype(claims_frame[col]), col
    board = pd.read_csv(out / "tables" / "leaderboard.csv")
    assert pd.api.types.is_float_dtype(board["test_mean_pct"]) and pd.api.types.is_integer_dtype(board["n_seeds"])
