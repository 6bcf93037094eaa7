"""collect: group.json files -> results.csv and curves.csv (columns, order, bytes, errors)."""

from __future__ import annotations

import pytest

from smoothbench import methods as registry
from smoothbench.core import vocabulary as vocab
from smoothbench.report import collect
from toy_results import D, K, metrics, read_csv_rows, write_group, write_refs  # noqa: F401


def test_collect_results_columns_rows_and_order(collected):
    _, _, results, _ = collected
    text = results.read_text()
    lines = text.splitlines()
    assert lines[0] == ",".join(vocab.RESULT_COLUMNS)
    rows = read_csv_rows(results)
    assert len(rows) == 2 * 2 * 2 * 6  # kinds x noise rates x seeds x cells
    keys = [(r["dataset"], r["noise_kind"], float(r["noise_rate"]), int(r["seed"]), r["variant"],
             registry.order(r["method"]), float(r["rate"])) for r in rows]
    assert keys == sorted(keys)                                # methods in registry order, then by rate
    assert rows[0]["noise_kind"] == "pairflip" and rows[0]["method"] == "ce"
    # exact text of one row: floats as repr, null as empty, ints as ints
    # (val_acc_final, 0.36: the held-out accuracy of the cell's last epoch, read off its curves)
    expected = ("toy,symmetric,0.6,1,direct,flip,eps=0.18,0.18,flip_0.18,ok,,0.41,0.55,0.43,2,3,0.38,,,0.882,0.618,"
                "1.25,0.059,0.75,,,0.36,10,0.597")
    assert expected in lines
    diverged = [r for r in rows if r["status"] == "diverged"]
    assert len(diverged) == 2 * 3 and all(r["diverged_epoch"] == "2" for r in diverged)


def test_collect_gathers_each_rows_test_correctness_beside_results(collected, tmp_path):
    """test_correct.npz has one entry per row of results.csv, in its order, and each cell's bits
    count its test accuracy under each selection (the toy groups: right on round(acc n) samples)."""
    import numpy as np

    _, paths, results, _ = collected
    rows = collect.read_results(results)
    z = collect.read_test_correct(results.with_name(vocab.TEST_CORRECT_FILE), rows)
    assert list(z["selections"]) == ["best", "selected", "final"] and z["bits"].shape[0] == len(rows)
    for row, bits, n in zip(rows, z["bits"], z["test_samples"]):
        for j, sel in enumerate(z["selections"]):
            right = np.unpackbits(bits[j], bitorder="little")[:n].sum()
            assert right == round(row[f"test_acc_{sel}"] * n), (row["cell_id"], sel)
    # a results table that is not the one beside it is refused
    with pytest.raises(ValueError, match="not the correctness of the cells of the results table"):
        collect.read_test_correct(results.with_name(vocab.TEST_CORRECT_FILE), rows[1:])
    (paths[0].parent / vocab.TEST_CORRECT_FILE).rename(tmp_path / "moved.npz")
    try:
        with pytest.raises(ValueError, match="per-test-sample correctness file is missing"):
            collect.collect(paths, tmp_path / "r.csv", tmp_path / "c.csv")
    finally:
        (tmp_path / "moved.npz").rename(paths[0].parent / vocab.TEST_CORRECT_FILE)


def test_collect_curves(collected):
    _, _, _, curves = collected
    rows = read_csv_rows(curves)
    assert tuple(rows[0].keys()) == vocab.CURVES_OUT_COLUMNS
    assert len(rows) == 2 * 2 * 2 * 6 * 3
    first = rows[0]
    assert (first["dataset"], first["noise_kind"], first["noise_rate"], first["seed"], first["method"],
            first["epoch"], first["phase"]) == ("toy", "pairflip", "0.2", "0", "ce", "1", "warmup")
    assert [r["epoch"] for r in rows[:3]] == ["1", "2", "3"]


def test_collect_is_byte_stable_and_order_free(collected, tmp_path):
    _, paths, results, curves = collected
    r2, c2 = tmp_path / "r.csv", tmp_path / "c.csv"
    collect.collect(list(reversed(paths)), r2, c2)
    assert r2.read_bytes() == results.read_bytes()
    assert c2.read_bytes() == curves.read_bytes()
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temp files


def test_collect_duplicate_cell_fails(tmp_path):
    cells = [metrics("ce", 0.0, "ok", 0.8, 0.8)]
    a = write_group(tmp_path / "a", "toy", "symmetric", "0.2", 0, cells)
    b = write_group(tmp_path / "b", "toy", "symmetric", "0.2", 0, cells)
    with pytest.raises(ValueError, match="duplicate cell") as exc:
        collect.collect([a, b], tmp_path / "r.csv", tmp_path / "c.csv")
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "r.csv").exists()


def test_collect_missing_or_malformed_files_fail(tmp_path):
    cells = [metrics("ce", 0.0, "ok", 0.8, 0.8), metrics("ls", 0.2, "ok", 0.8, 0.8)]
    g = write_group(tmp_path / "g", "toy", "symmetric", "0.2", 0, cells, skip_curves="ls_0.2")
    with pytest.raises(ValueError, match="curves file is missing"):
        collect.collect([g], tmp_path / "r.csv", tmp_path / "c.csv")
    with pytest.raises(ValueError, match="group file is missing"):
        collect.collect([tmp_path / "nope" / "group.json"], tmp_path / "r.csv", tmp_path / "c.csv")
    bad = tmp_path / "bad" / "group.json"
    bad.parent.mkdir()
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        collect.collect([bad], tmp_path / "r.csv", tmp_path / "c.csv")
    broken = dict(cells[0])
    del broken["test_acc_selected"]
    g2 = write_group(tmp_path / "g2", "toy", "symmetric", "0.2", 0, [broken])
    with pytest.raises(ValueError, match="'test_acc_selected' is missing"):
        collect.collect([g2], tmp_path / "r.csv", tmp_path / "c.csv")
    wrong = dict(cells[0], status="exploded")
    g3 = write_group(tmp_path / "g3", "toy", "symmetric", "0.2", 0, [wrong])
    with pytest.raises(ValueError, match="status"):
        collect.collect([g3], tmp_path / "r.csv", tmp_path / "c.csv")
    curves = g.parent / "cells" / "direct" / "ce_0" / "curves.csv"
    curves.write_text("epoch,phase\n1,main\n")
    write_group(tmp_path / "g", "toy", "symmetric", "0.2", 0, cells)  # restore ls curves
    curves.write_text("epoch,phase\n1,main\n")
    with pytest.raises(ValueError, match="columns missing"):
        collect.collect([g], tmp_path / "r.csv", tmp_path / "c.csv")
