"""smoothbench.pipeline.integrity (`smoothbench check`): which products cannot be used, and
setting them aside.

The end-to-end behaviour (a damaged product of a real Snakemake run set aside by
`smoothbench check` and made again, byte-identical) is in test_faults.py; here the pieces, on
hand-made files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from toy_results import write_toy

from smoothbench.core import files as io
from smoothbench.pipeline import integrity
from smoothbench.core.vocabulary import TEST_CORRECT_FILE
from smoothbench.pipeline.integrity import CORRECT, DATA, GROUP, LABELS, REPORT, STATS, TABLE
from smoothbench.report import build, choices, collect
from smoothbench.study import grid


def test_a_study_s_products_are_every_file_its_jobs_write():
    study = grid.validate_params({"datasets": ["digits"], "noise": {"symmetric": [0.2, 0.4]},
                                  "methods": {"ce": [0.0], "ls": [0.4]}, "seeds": [0, 3],
                                  "output": {"results_dir": "res", "reports_dir": "rep/"}})
    products = integrity.study_products(study)
    want = {"data/digits.npz": DATA, "rep/results.csv": TABLE, "rep/curves.csv": TABLE,
            "rep/test_correct.npz": TABLE, "rep/choices.csv": TABLE}
    for rate in ("0.2", "0.4"):
        for seed in (0, 3):
            want[f"noisy/digits/symmetric-{rate}-s{seed}.npz"] = LABELS
            want[f"noisy/digits/symmetric-{rate}-s{seed}.json"] = STATS
            want[f"res/digits/symmetric-{rate}/seed{seed}/group.json"] = GROUP
            want[f"res/digits/symmetric-{rate}/seed{seed}/test_correct.npz"] = CORRECT
    reports = {p: k for p, k in products.items() if k == REPORT}
    assert {p: k for p, k in products.items() if k != REPORT} == want
    assert "rep/findings.md" in reports and "rep/tables/table_best.csv" in reports
    assert any(p.startswith("rep/figures/") and p.endswith(".png") for p in reports)
    assert integrity.product_folders(study) == ["data", "noisy", "res", "rep/", "checkpoints"]


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
], ids=["labels-cut", "labels-zeroed", "stats-cut", "stats-list", "dataset-cut", "table-columns"])
def test_an_unreadable_product_is_found_and_set_aside(tmp_path, monkeypatch, kind, make, damage):
    monkeypatch.chdir(tmp_path)
    if kind == DATA:
        from helpers import write_dataset

        path = Path("data/d.npz")
        path.parent.mkdir()
        write_dataset(path)
    elif kind == TABLE:
        collect.collect(write_toy(tmp_path), "results.csv", "curves.csv")
        path = Path("results.csv")
    else:
        path = Path("noisy/x.npz" if kind == LABELS else "noisy/x.json")
        path.parent.mkdir()
        make(path)
    assert integrity.unreadable(str(path), kind) is None
    assert integrity.check({str(path): kind}) == []
    damage(path)
    damaged = path.read_bytes()
    assert integrity.unreadable(str(path), kind)
    [line] = integrity.check({str(path): kind}, act=False)
    assert line.startswith(f"{path}: unreadable: ") and line.endswith("without --dry-run it is moved to set-aside/")
    assert path.read_bytes() == damaged                                           # a dry run moves nothing
    [line] = integrity.check({str(path): kind})
    aside = Path("set-aside") / path
    assert not path.exists() and aside.read_bytes() == damaged and line.endswith(f"; moved to {aside}")
    assert integrity.check({str(path): kind}) == []                               # gone: the next run makes it


def _study_products(root: Path) -> dict[str, str]:
    """A finished toy study below ``root`` as the pipeline leaves it: groups (with every cell's
    metrics.json), the tables, the reports; returns its products (path -> kind)."""
    groups = write_toy(root / "results")
    for group in groups:
        for cell in io.read_json(group)["cells"]:
            io.write_json(group.parent / "cells" / cell["variant"] / cell["cell_id"] / "metrics.json", cell)
    reports = root / "reports"
    collect.collect(groups, reports / "results.csv", reports / "curves.csv")
    choices.write_choices(reports / "results.csv", reports / "choices.csv")
    written = build.build_reports(reports / "results.csv", reports / "curves.csv", reports)
    return {**{str(g): GROUP for g in groups}, **{str(g.parent / TEST_CORRECT_FILE): CORRECT for g in groups},
            **{str(reports / name): TABLE for name in ("results.csv", "curves.csv", TEST_CORRECT_FILE, "choices.csv")},
            **{p: REPORT for p in written}}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("finished")
    return root, _study_products(root)


@pytest.fixture
def study(finished, tmp_path, monkeypatch):
    """A fresh copy of the finished toy study in s/ (each test damages its own), in the current
    folder, with its products' paths relative to it."""
    root, products = finished
    shutil.copytree(root, tmp_path / "s")
    monkeypatch.chdir(tmp_path)
    return {str(Path("s") / Path(p).relative_to(root)): k for p, k in products.items()}


def _cell_file(products: dict, name: str) -> Path:
    group = Path(next(p for p, k in products.items() if k == GROUP))
    return sorted(group.parent.glob(f"cells/*/*/{name}"))[1]


@pytest.mark.parametrize("name, damage, why", [
    ("curves.csv", Path.unlink, "curves file is missing"),
    ("metrics.json", Path.unlink, "per-cell file is missing"),
    ("metrics.json", lambda p: p.write_text(p.read_text()[:40]), "not valid JSON"),
    ("curves.csv", lambda p: p.write_text("epoch\n"), "columns missing"),
])
def test_a_group_whose_cell_files_do_not_read_back_cannot_be_used(study, name, damage, why):
    assert integrity.findings(study) == []
    cell = _cell_file(study, name)
    damage(cell)
    [found] = integrity.findings(study)
    group = str(cell.parents[3] / "group.json")
    assert found.path == group and found.kind == GROUP and why in found.why, found


def test_a_groups_correctness_file_that_does_not_read_back_cannot_be_used(study):
    """test_correct.npz cut short: it is set aside, and its group with it (collect cannot read the
    group without it), so the next run trains the group again."""
    assert integrity.findings(study) == []
    correct = next(p for p, k in study.items() if k == CORRECT)
    Path(correct).write_bytes(Path(correct).read_bytes()[:200])
    found = {f.path: (f.kind, f.why) for f in integrity.findings(study)}
    group = str(Path(correct).with_name("group.json"))
    assert set(found) == {correct, group} and found[correct][0] == CORRECT and found[group][0] == GROUP


def test_tables_and_reports_that_are_not_what_their_jobs_make_are_set_aside(study):
    """A table or report file is deterministic: edited, cut, or made by other code, it is not
    what collect/report make from the groups now. Many report files make one line."""
    results = next(p for p in study if p.endswith("results.csv"))
    chosen = next(p for p in study if p.endswith("choices.csv"))
    findings_md = next(p for p in study if p.endswith("findings.md"))
    rows = Path(results).read_text().splitlines(keepends=True)
    Path(results).write_text("".join(rows[:-1]))                               # its last row lost: still readable
    Path(chosen).write_text(Path(chosen).read_text().replace("val_acc_selected,r=0.2", "val_acc_selected,r=0.4", 1))
    Path(findings_md).write_text(Path(findings_md).read_text() + "\nedited by hand\n")
    assert integrity.unreadable(results, TABLE) is None and integrity.unreadable(chosen, TABLE) is None
    found = {f.path: f.why for f in integrity.findings(study)}
    assert found == {results: "not what collect makes from the study's groups",
                     chosen: "not what choose makes from the study's groups",
                     findings_md: "not what report makes from the study's groups"}
    lines = integrity.check(study)
    assert sorted(lines) == sorted(f"{p}: {why}; moved to set-aside/{p}" for p, why in found.items())
    assert not Path(results).exists() and Path(f"set-aside/{results}").read_text() == "".join(rows[:-1])
    figures = [p for p, k in study.items() if k == REPORT and p.endswith(".png")][:5]
    for p in figures:
        Path(p).write_bytes(Path(p).read_bytes() + b"\0")
    [line] = integrity.check(study, act=False)
    assert line.startswith("5 report files are not what report makes from the study's groups (")
    assert all(Path(p).exists() for p in figures)


def test_a_group_to_be_made_again_leaves_the_tables_to_the_next_run(study):
    """With a group unusable, the tables and reports are not compared (the run that makes the
    group again makes them again); each is still read."""
    group = next(p for p, k in study.items() if k == GROUP)
    Path(group).write_text("{")
    findings_md = next(p for p in study if p.endswith("findings.md"))
    Path(findings_md).write_text("edited")
    assert [f.path for f in integrity.findings(study)] == [group]


def test_set_aside_never_overwrites_an_earlier_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for text in ("first", "second", "third"):
        Path("f.csv").write_text(text)
        integrity.set_aside("f.csv")
    aside = Path("set-aside")
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
    [line] = integrity.check({}, folders=["results"])
    assert line == f"{tmp}: left by an interrupted job; moved to {Path('set-aside') / tmp}"
    assert not tmp.exists() and (Path("set-aside") / tmp).read_bytes() == stale


def test_the_check_command_reads_the_study_as_snakemake_does(tmp_path):
    """`smoothbench check`: the study from params.yaml, or --configfile with --config on top; one
    line per product set aside, exit 1 on a dry run that found one."""
    study = {"datasets": ["digits"], "noise": {"symmetric": [0.4]}, "methods": {"ce": [0.0]}, "seeds": [0]}
    import yaml

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(study))
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(dict(study, noise={"symmetric": [0.2]}, seeds=[5])))
    (tmp_path / "noisy/digits").mkdir(parents=True)
    for name in ("0.4-s0", "0.2-s7"):
        (tmp_path / f"noisy/digits/symmetric-{name}.json").write_text("[")

    def check(*args):
        return subprocess.run([sys.executable, "-m", "smoothbench.cli", "check", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)

    proc = check("-n")
    assert proc.returncode == 1 and proc.stdout.splitlines() == [
        "smoothbench check: noisy/digits/symmetric-0.4-s0.json: unreadable: not valid JSON (Expecting value: line 1 "
        "column 2 (char 1)); without --dry-run it is moved to set-aside/"], proc.stdout + proc.stderr
    proc = check("--configfile", "other.yaml", "--config", "seeds=[7]")
    assert proc.returncode == 0 and proc.stdout.splitlines()[0].startswith(
        "smoothbench check: noisy/digits/symmetric-0.2-s7.json: unreadable: ")
    assert proc.stdout.splitlines()[1] == ("smoothbench check: what is said above is in set-aside/ now; the next run "
                                           "(make study) makes it again, and what depends on it")
    assert (tmp_path / "set-aside/noisy/digits/symmetric-0.2-s7.json").is_file()
    proc = check("--config", "seeds=[x]")
    assert proc.returncode == 2 and proc.stderr.startswith("smoothbench check: error: params.yaml (with --config): seeds")


def test_a_read_only_folder_a_missing_product_goes_into_is_one_line(tmp_path, monkeypatch):
    """Only missing products count (Snakemake must write them); the nearest existing folder above
    each is checked; a read-only file system (a bind mount, root only) or no permission is named."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a read-only folder")
    monkeypatch.chdir(tmp_path)
    seed = Path("results/d/symmetric-0.4/seed0")
    (seed / "cells").mkdir(parents=True)
    Path("results/d/symmetric-0.4/seed1").mkdir()
    (Path("results/d/symmetric-0.4/seed1") / "group.json").write_text("{}")
    products = [f"{seed}/group.json", "results/d/symmetric-0.4/seed1/group.json", "results/d/pairflip-0.2/seed0/group.json"]
    assert integrity.unwritable(products) is None
    if subprocess.run(["mount", "--bind", str(tmp_path / "results"), str(tmp_path / "results")]).returncode:
        pytest.skip("cannot mount here")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(tmp_path / "results")], check=True)
        assert integrity.unwritable(products) == (
            f"smoothbench: {seed}: read-only file system, and this run has to write group.json into it (and 1 other "
            "folder); make it writable and rerun")
        assert integrity.unwritable(products[1:]) == (     # a present product needs no writing
            "smoothbench: results/d: read-only file system, and this run has to write pairflip-0.2/seed0/group.json "
            "into it; make it writable and rerun")
        assert integrity.unwritable(products[1:2]) is None
    finally:
        subprocess.run(["umount", "-l", str(tmp_path / "results")])


def test_the_study_products_are_the_workflow_s_outputs(tmp_path):
    """What `smoothbench check` reads is what the workflow makes: the output files of Snakemake's
    own summary of the study's DAG (`snakemake --summary`)."""
    import yaml

    root = Path(__file__).resolve().parents[1]
    study = {"datasets": ["digits", "mnist1d"], "noise": {"symmetric": [0.4], "pairflip": [0.2]},
             "methods": {"ce": [0.0], "ls": [0.4]}, "seeds": [1, 2], "output": {"reports_dir": "rep"}}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    (tmp_path / "src").symlink_to(root / "src")            # the rules' code inputs, relative to the workflow
    proc = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-s", str(root / "Snakefile"), "-d",
                           str(tmp_path), "--configfile", str(tmp_path / "study.yaml"), "--summary"],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(root / "src")))
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    made = [line.split("\t")[0] for line in lines[lines.index(next(x for x in lines if x.startswith("output_file"))) + 1:]]
    products = integrity.study_products(grid.validate_params(study))
    assert sorted(made) == sorted(products)


def test_an_npz_product_without_its_arrays_is_unreadable_and_says_which(tmp_path):
    """Noisy labels and per-test-sample correctness are read whole; one that lacks arrays names
    them, and a complete one passes."""
    labels, correct = tmp_path / "l.npz", tmp_path / TEST_CORRECT_FILE
    np.savez(labels, noisy_labels=np.zeros(3, dtype=np.int64), kind="symmetric", rate=0.2)
    np.savez(correct, selections=np.array(["best"]), test_samples=np.array(8), has=np.ones((1, 1), dtype=bool))
    assert integrity.unreadable(str(labels), integrity.LABELS) == "lacks seed"
    assert integrity.unreadable(str(correct), integrity.CORRECT) == "lacks bits"
    np.savez(labels, noisy_labels=np.zeros(3, dtype=np.int64), kind="symmetric", rate=0.2, seed=0)
    assert integrity.unreadable(str(labels), integrity.LABELS) is None
