"""smoothbench.pipeline.integrity: which products cannot be used, and setting them aside.

The end-to-end behaviour (a real Snakemake run that sets a product aside and makes it
again, byte-identical) is in test_faults.py; here the pieces, on hand-made files.
"""

from __future__ import annotations

import json
import os
import types
from pathlib import Path

import numpy as np
import pytest
from toy_results import write_toy

from smoothbench.pipeline import integrity
from smoothbench.core import files as io
from smoothbench.pipeline.integrity import DATA, GROUP, LABELS, REPORT, STATS, TABLE


@pytest.mark.parametrize("argv, looks", [
    (["--cores", "2"], False), (["-c2", "report_all"], False), (["-p", "--cores", "1"], False),
    (["-n"], True), (["-np"], True), (["--dry-run"], True), (["--dryrun"], True), (["--unlock"], True),
    (["--touch"], True), (["-t"], True), (["--summary"], True), (["-S"], True), (["--list-changes", "params"], True),
    (["--dag"], True), (["--report", "r.zip"], True), (["--lint"], True), (["--cores", "2", "-n"], True),
    (["--rerun-incomplete", "--cores", "2"], False), (["--keep-going"], False),
])
def test_look_only_commands_move_nothing(argv, looks):
    assert integrity.looks_only(argv) is looks


def _record(metadata: Path, path: str, endtime: float) -> None:
    """A metadata record where Snakemake's file backend puts it (its own path function)."""
    from snakemake.persistence.file import FilePersistence

    fake = types.SimpleNamespace(_fetch_max_len=lambda subject: 255)
    record = Path(FilePersistence._record_path(fake, str(metadata), path))
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"endtime": endtime, "record_format_version": 6}))


@pytest.mark.parametrize("name", ["results/results.csv", "results/" + "very-long-folder-name/" * 12 + "group.json"])
def test_snakemake_records_are_found_where_snakemake_writes_them(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    Path(name).parent.mkdir(parents=True)
    Path(name).write_text("x")
    meta = tmp_path / ".snakemake" / "metadata"
    assert integrity.written_here(name, meta) is None            # no record
    _record(meta, name, os.stat(name).st_mtime)
    assert integrity.written_here(name, meta) is True
    os.utime(name, (1, 1))
    assert integrity.written_here(name, meta) is False           # changed since


def test_a_product_snakemake_marked_incomplete_is_set_aside_and_made_again(tmp_path, monkeypatch):
    # Ctrl-C after a job wrote its (whole, atomically written) output, before Snakemake saw the
    # job finish: Snakemake keeps the output's "incomplete" marker and would stop the next run
    monkeypatch.chdir(tmp_path)
    name = "results/digits/symmetric-0.4/seed0/group.json"
    Path(name).parent.mkdir(parents=True)
    Path(name).write_text("{}")
    assert integrity.findings({name: GROUP}, lambda p: True) == []  # vouched for, no marker
    from snakemake.persistence.file import FilePersistence
    fake = types.SimpleNamespace(_fetch_max_len=lambda subject: 255)
    marker = Path(FilePersistence._record_path(fake, ".snakemake/incomplete", name))
    marker.parent.mkdir(parents=True)
    marker.write_text(json.dumps({"external_jobid": None}))
    assert integrity.marked_incomplete(name)
    [line] = integrity.check({name: GROUP}, lambda p: True, act=False)
    assert line.startswith(f"smoothbench: {name}: its job was stopped before Snakemake saw it finish; a run")
    assert Path(name).exists()
    [line] = integrity.check({name: GROUP}, lambda p: True, act=True)
    assert not Path(name).exists() and (Path(".snakemake/set-aside") / name).read_text() == "{}"


def _group(tmp_path: Path) -> str:
    """A toy group as the trainer leaves it: per-cell files first, group.json last."""
    group = write_toy(tmp_path)[0]
    for curves in group.parent.glob("cells/*/*/curves.csv"):
        (curves.parent / "metrics.json").write_text("{}")
    t = max(p.stat().st_mtime for p in group.parent.rglob("*") if p.is_file())
    os.utime(group, (t + 1, t + 1))
    return str(group)


def test_a_group_with_a_missing_or_newer_cell_file_cannot_be_used(tmp_path):
    group = _group(tmp_path)
    assert integrity.findings({group: GROUP}, lambda p: False, tmp_path / "m") == []
    cells = sorted(Path(group).parent.glob("cells/*/*/curves.csv"))
    t = os.stat(group).st_mtime
    os.utime(cells[0], (t + 5, t + 5))
    [f] = integrity.findings({group: GROUP}, lambda p: False, tmp_path / "m")
    assert "changed after it was written" in f.why and str(cells[0]) in f.why
    assert integrity.findings({group: GROUP}, lambda p: True, tmp_path / "m") == []   # DVC vouches for it
    cells[1].unlink()
    [f] = integrity.findings({group: GROUP}, lambda p: False, tmp_path / "m")
    assert f.why.startswith("1 of its per-cell files are missing")


def _labels(path: Path) -> None:
    io.write_npz(path, {"noisy_labels": np.arange(50) % 3, "kind": np.array("symmetric"), "rate": np.array("0.2"),
                        "seed": np.array(0)})


@pytest.mark.parametrize("kind, make, damage", [
    (LABELS, _labels, lambda p: p.write_bytes(p.read_bytes()[:300])),
    (LABELS, _labels, lambda p: p.write_bytes(p.read_bytes()[:-40] + b"\0" * 40)),
    (STATS, lambda p: p.write_text('{"realised": 0.2}'), lambda p: p.write_text('{"realised": 0.')),
    (STATS, lambda p: p.write_text('{"realised": 0.2}'), lambda p: p.write_text('[1, 2]')),
    (DATA, None, lambda p: p.write_bytes(p.read_bytes()[:1000])),
    (TABLE, None, lambda p: p.write_text("dataset,noise_kind\ndigits\n")),
])
def test_an_unreadable_product_is_found_and_set_aside(tmp_path, monkeypatch, kind, make, damage):
    monkeypatch.chdir(tmp_path)
    if kind == DATA:
        from helpers import write_dataset

        path = Path("data/d.npz")
        path.parent.mkdir()
        write_dataset(path)
    elif kind == TABLE:
        from smoothbench.report import collect

        collect.collect(write_toy(tmp_path), "results.csv", "curves.csv")
        path = Path("results.csv")
    else:
        path = Path("noisy/x.npz" if kind == LABELS else "noisy/x.json")
        path.parent.mkdir()
        make(path)
    assert integrity.unreadable(str(path), kind) is None
    damage(path)
    damaged = path.read_bytes()
    assert integrity.unreadable(str(path), kind)
    [line] = integrity.check({str(path): kind}, lambda p: False, act=False)
    assert str(path) in line and "dry run" in line and path.read_bytes() == damaged   # a dry run moves nothing
    [line] = integrity.check({str(path): kind}, lambda p: False, act=True)
    aside = Path(".snakemake/set-aside") / path
    assert not path.exists() and aside.read_bytes() == damaged and str(aside) in line
    assert integrity.check({str(path): kind}, lambda p: False, act=True) == []      # gone: Snakemake makes it


def test_vouched_and_freshly_written_products_are_not_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("x.json").write_text("not json")
    assert integrity.findings({"x.json": STATS}, lambda p: True) == []
    _record(Path(".snakemake/metadata"), "x.json", os.stat("x.json").st_mtime)
    assert integrity.findings({"x.json": STATS}, lambda p: False) == []


def test_tables_and_reports_changed_after_snakemake_wrote_them_are_set_aside(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("reports/findings.md", "reports/figures/a.png"):
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text("made")
        _record(Path(".snakemake/metadata"), name, os.stat(name).st_mtime)
    assert integrity.findings({"reports/findings.md": REPORT, "reports/figures/a.png": REPORT}, lambda p: False) == []
    Path("reports/findings.md").write_text("edited")
    os.utime("reports/findings.md", (10, 10))
    [f] = integrity.findings({"reports/findings.md": REPORT, "reports/figures/a.png": REPORT}, lambda p: False)
    assert f.path == "reports/findings.md" and f.why == "changed after Snakemake wrote it"
    # a report file with no record at all (not written by this Snakemake) has no reader: left alone
    Path("reports/other.md").write_text("?")
    assert integrity.findings({"reports/other.md": REPORT}, lambda p: False) == []


def test_set_aside_never_overwrites_an_earlier_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for text in ("first", "second", "third"):
        Path("f.csv").write_text(text)
        integrity.set_aside("f.csv")
    aside = Path(".snakemake/set-aside")
    assert [(aside / n).read_text() for n in ("f.csv", "f.csv.1", "f.csv.2")] == ["first", "second", "third"]


def test_temporary_files_of_killed_jobs_are_set_aside(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("results/g").mkdir(parents=True)
    with pytest.raises(KeyboardInterrupt), io.atomic_path("results/g/group.json") as tmp:
        tmp.write_text("{half")
        stale = tmp.read_bytes()
        os.link(tmp, tmp.with_name(tmp.name + "-copy"))  # what SIGKILL would have left (cleanup is skipped)
        raise KeyboardInterrupt
    left = Path("results/g") / (tmp.name + "-copy")
    left.rename(tmp)                                     # the name atomic_path gave it
    tmp = tmp.relative_to(tmp_path)
    Path("results/g/.lock").write_text("")               # not one of ours
    assert integrity.stale_temp_files(["results", "absent"]) == [str(tmp)]
    [line] = integrity.check({}, lambda p: False, act=True, folders=["results"])
    assert "interrupted" in line and not tmp.exists() and (Path(".snakemake/set-aside") / tmp).read_bytes() == stale


def test_many_changed_report_files_make_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = [f"reports/figures/f{i}.png" for i in range(6)] + ["reports/findings.md"]
    for name in names:
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text("made")
        _record(Path(".snakemake/metadata"), name, 1.0)        # Snakemake wrote it at t = 1; it changed since
    [line] = integrity.check({n: REPORT for n in names}, lambda p: False, act=False)
    assert line.startswith("smoothbench: 7 report files changed") and all(Path(n).exists() for n in names)
    [line] = integrity.check({n: REPORT for n in names}, lambda p: False, act=True)
    assert "moved to .snakemake/set-aside/reports/" in line
    assert not any(Path(n).exists() for n in names) and all((Path(".snakemake/set-aside") / n).exists() for n in names)


def test_a_read_only_folder_a_missing_product_goes_into_is_one_line(tmp_path, monkeypatch):
    """Only missing products count (Snakemake must write them); the nearest existing folder above
    each is checked; a read-only file system (a bind mount, root only) or no permission is named."""
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("needs root to mount a read-only folder")
    monkeypatch.chdir(tmp_path)
    seed = Path("results/d/symmetric-0.4/seed0")
    (seed / "cells").mkdir(parents=True)
    Path("results/d/symmetric-0.4/seed1").mkdir()
    (Path("results/d/symmetric-0.4/seed1") / "group.json").write_text("{}")
    products = [f"{seed}/group.json", "results/d/symmetric-0.4/seed1/group.json", "results/d/pairflip-0.2/seed0/group.json"]
    assert integrity.unwritable(products, act=True) == []
    if subprocess.run(["mount", "--bind", str(tmp_path / "results"), str(tmp_path / "results")]).returncode:
        pytest.skip("cannot mount here")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(tmp_path / "results")], check=True)
        assert integrity.unwritable(products, act=True) == [
            f"smoothbench: {seed}: read-only file system, and this run has to write group.json into it (and 1 other "
            "folder); make it writable and rerun"]
        assert integrity.unwritable(products[1:], act=False) == [     # a present product needs no writing
            "smoothbench: results/d: read-only file system, and a run has to write pairflip-0.2/seed0/group.json into "
            "it; make it writable first"]
        assert integrity.unwritable(products[1:2], act=True) == []
    finally:
        subprocess.run(["umount", "-l", str(tmp_path / "results")])
