"""The studies as a newcomer runs them, from a real `git clone` of the repository with its
committed files: the default study with the main command (it trains every group and ends
with the reproduction check against expected/), and each paper preset on a small CIFAR
fixture written in the published on-disk formats, shrunk with `--config` (model width,
epochs; the fixture has few samples), through the real Snakemake.

All slow; CI runs them (the default study takes a few minutes on 2 cores).
"""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import pytest

from helpers import flip_one_byte, report_files_of, write_cifar_raw, write_cifarn
from smoothbench.study import grid
from test_pipeline import clone_repo, deleted_tracked_files, job_counts, nothing_to_do, run

pytestmark = pytest.mark.slow


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.timeout(1500)
def test_main_command_on_a_fresh_clone_trains_the_study_and_checks_reproduction(tmp_path):
    repo = clone_repo(tmp_path / "repo")
    study = grid.load_params(repo / "params.yaml")
    groups = grid.expand_groups(study)
    dry = run(repo, "snakemake", "-n")
    assert job_counts(dry.stdout)["train"] == len(grid.expand_jobs(study))   # nothing is taken from git
    proc = run(repo, "snakemake", "--cores", "2", timeout=1500)
    out = proc.stdout + proc.stderr
    trained = sorted(p.parent.relative_to(repo / "results").as_posix() for p in (repo / "results").rglob("group.json"))
    assert trained == sorted(g.rel_dir for g in groups)
    cells = _rows(repo / "reports" / "results.csv")
    assert len(cells) == sum(g.n_cells for g in groups)
    assert_reproduction_check(repo, out)
    assert deleted_tracked_files(repo) == []


def assert_reproduction_check(repo: Path, out: str) -> None:
    """The run's one reproduction-check line says, exactly, that reports/ is byte-identical to
    the committed copy expected/ (its files counted here), and the check can fail: against a
    copy of expected/ with one byte changed it names that file and exits 1."""
    lines = [x for x in out.splitlines() if x.startswith("reproduction check:")]
    n = len(report_files_of(repo / "expected"))
    assert lines == [f"reproduction check: reports/ is byte-identical to expected/ ({n} files)"], \
        "\n".join(lines) or out[-3000:]
    print(lines[0])
    planted = repo / "expected-planted"
    shutil.copytree(repo / "expected", planted)
    flip_one_byte(planted / "findings.md")
    proc = run(repo, "smoothbench", "compare", "reports", "expected-planted", check=False)
    shutil.rmtree(planted)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [f"reproduction check: 1 of {n} files of reports/ are not byte-identical to "
                                        "expected-planted/ (the committed copy) - differ: findings.md"]


# --------------------------------------------------------------------------- the paper presets

# the settings run: one of each noise kind the preset has (the paper has numbers for each)
NOISE = {"paper-cifar10": "{symmetric: [0.4], pairflip: [0.2]}", "paper-cifar100": "{symmetric: [0.4]}",
         "paper-cifarn": "{human: [aggre, noisy100]}"}
SHRINK = {
    # the reference's protocol, shrunk: ResNet-34 at 1/16 width, 2 epochs per phase, CPU, one seed
    "paper-cifar10": "{default: {device: cpu, batch_size: 32, model_args: {width: 0.0625}, variants: "
                     "{direct: {epochs: 2}, warmup: {epochs: 2, warmup: {epochs: 2}}}}}",
    "paper-cifar100": "{default: {device: cpu, batch_size: 32, model_args: {width: 0.0625}, variants: "
                      "{direct: {epochs: 2}, warmup: {epochs: 2, warmup: {epochs: 2}}}}}",
    "paper-cifarn": "{default: {device: cpu, batch_size: 32, model_args: {width: 0.0625}, variants: "
                    "{direct: {epochs: 2}}}}",
}


@pytest.fixture(scope="module")
def preset_repo(tmp_path_factory):
    repo = clone_repo(tmp_path_factory.mktemp("presets") / "repo")
    labels = write_cifar_raw(repo / "cache")
    write_cifarn(repo / "cache" / "cifarn", labels["cifar10"], labels["cifar100"])
    return repo


@pytest.mark.timeout(900)
@pytest.mark.parametrize("preset", sorted(SHRINK))
def test_paper_preset_runs_on_a_cifar_fixture(preset_repo, preset):
    repo = preset_repo
    args = ["--configfile", f"config/{preset}.yaml", "--config", "seeds=[0]", f"protocol={SHRINK[preset]}",
            f"noise={NOISE[preset]}"]
    proc = run(repo, "snakemake", "--cores", "2", *args, timeout=900)
    out = proc.stdout + proc.stderr
    study = grid.validate_params(grid.study_from_command_line(None, [repo / f"config/{preset}.yaml"], {})[0])
    variants = list(grid.protocol_for(study, study["datasets"][0])["variants"])
    rows = _rows(repo / "reports" / "results.csv")
    assert {r["dataset"] for r in rows} == set(study["datasets"])
    assert sorted({r["variant"] for r in rows}) == sorted(variants)
    md = (repo / "reports" / "tables" / "tables.md").read_text()
    reproduction = _rows(repo / "reports" / "tables" / "reproduction.csv")
    assert "## Reproduction of the paper" in md and "(paper)" in md and reproduction
    assert all(re.match(r"(reproduced \(|differs by )", r["verdict"]) for r in reproduction)
    if "warmup" in variants:      # both variants, the better of the two, the reference's branch point
        assert "better of direct, warmup" in md
        warm = [r for r in rows if r["variant"] == "warmup"]
        assert {r["branch"] for r in warm} == {"best"} and all(1 <= int(r["branch_epoch"]) <= 2 for r in warm)
        assert {r["ours_variant"] for r in reproduction} <= {"direct", "warmup"}
    else:                         # CIFAR-N: the CIFAR-N script's direct training, final-epoch numbers
        assert {r["selection"] for r in reproduction} == {"final"}
    (line,) = [x for x in out.splitlines() if x.startswith("reproduction check:")]
    assert "another study" in line or "no committed copy" in line, line
    assert deleted_tracked_files(repo) == []
    assert nothing_to_do(run(repo, "snakemake", "-n", *args))
