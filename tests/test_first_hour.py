"""A researcher's first hour, end to end, in real `git clone`s of the repository (slow):

- the workflow runs its own checkout's code, whatever other copy is on PYTHONPATH (an install
  from another clone), and stops with one line where another copy was imported first;
- a read-only folder that a missing output has to be written into: one line before any job;
- two studies of one setting in one clone keep their own resume points: A interrupted, B run,
  A resumes to the metrics of an uninterrupted A;
- Ctrl-C (SIGINT to Snakemake's process group) during training: the job's log ends with one
  line saying where it stopped, and the rerun resumes;
- the reproduction check of a study against its own committed copy (`make expected`), exact;
- `make study` goes through `smoothbench run`: a line per finished job, errors whole, and the
  reproduction check at the end of every run, one with nothing to do included;
- two studies in one clone (other output folders) keep their own logs.
"""

from __future__ import annotations

import copy
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml
from test_faults import _root_only, _start, _wait_for, read_only, recover, smk, snapshot
from test_pipeline import (
    BIN,
    TINY_PARAMS,
    _env,
    clone_repo,
    deleted_tracked_files,
    expected_cells,
    nothing_to_do,
    result_cells,
    run,
    tree_md5s,
)
from test_study import assert_reproduction_check

pytestmark = pytest.mark.slow

STUDY = copy.deepcopy(TINY_PARAMS)
STUDY["noise"] = {"symmetric": [0.4]}
STUDY["methods"] = {"ce": [0.0], "ls": [0.4]}
GROUP = "results/digits/symmetric-0.4/seed0"
TRAIN_LOG = "logs/{results}/train/digits/symmetric-0.4.log"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A clone that has run the tiny study once: (repo, md5 of every product)."""
    repo = clone_repo(tmp_path_factory.mktemp("first-hour") / "repo", STUDY)
    run(repo, "snakemake", "--cores", "2")
    return repo, snapshot(repo)


def _output(results: str, reports: str, **protocol) -> list[str]:
    """--config values: the study in other output folders (and a changed default protocol)."""
    values = [f"output={{results_dir: {results}, reports_dir: {reports}}}"]
    if protocol:
        values.append("protocol=" + yaml.safe_dump({"default": protocol}, default_flow_style=True).strip())
    return ["--config", *values]


# --------------------------------------------------------------------------- its own checkout


def _other_clone(tmp_path):
    """Another checkout whose code says so when imported (a marker file) and whose command fails."""
    other = clone_repo(tmp_path / "other")
    marker = tmp_path / "the-other-clone-was-imported"
    init = other / "src" / "smoothbench" / "__init__.py"
    init.write_text(init.read_text() + f"\nopen({str(marker)!r}, 'a').write(__file__ + '\\n')\n")
    cli = other / "src" / "smoothbench" / "cli" / "commands.py"
    cli.write_text(cli.read_text() + "\n\ndef main(argv=None):\n    print('the other clone ran')\n    return 3\n")
    return other, marker


@pytest.mark.timeout(600)
def test_the_workflow_runs_its_own_checkout_with_another_on_pythonpath(finished, tmp_path):
    repo, _ = finished
    other, marker = _other_clone(tmp_path)
    env = dict(_env(repo), PYTHONPATH=str(other / "src"))      # as an install from the other clone would be
    logs_before = tree_md5s(repo / "logs" / "results")

    def smk_with_other(*args):
        return subprocess.run([str(BIN / "snakemake"), *args], cwd=repo, env=env, capture_output=True, text=True,
                              timeout=600)

    dry = smk_with_other("-n")
    assert dry.returncode == 0 and nothing_to_do(dry), dry.stderr[-3000:]
    # the same study into other folders: every job runs (the rules' code and each job's `smoothbench`)
    proc = smk_with_other("--cores", "2", *_output("results-b", "reports-b"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert not marker.exists(), marker.read_text()
    assert "is not in the subpath" not in out and "Traceback" not in out and "the other clone ran" not in out
    assert result_cells(repo / "reports-b" / "results.csv") == expected_cells(STUDY)
    assert tree_md5s(repo / "reports-b") == tree_md5s(repo / "reports")      # the same study, the same bytes
    # two studies in one clone keep their logs apart
    assert (repo / TRAIN_LOG.format(results="results-b")).is_file()
    assert (repo / "logs" / "reports-b" / "report.log").is_file() and (repo / "logs" / "reports-b" / "collect.log").is_file()
    assert tree_md5s(repo / "logs" / "results") == logs_before

    # the one line where another copy was imported before the workflow (a Python that had it)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import smoothbench; from snakemake.cli import main; "
            "sys.argv = ['snakemake', '-n']; main()")
    proc = subprocess.run([sys.executable, "-c", code, str(other / "src")], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0 and marker.exists()
    assert "Traceback" not in proc.stderr and "is not in the subpath" not in proc.stderr, proc.stderr
    assert [x for x in proc.stderr.splitlines() if x.startswith("smoothbench")] == [
        f"smoothbench: this workflow ({repo}) found the smoothbench package of {other / 'src'} instead of its own "
        "src/; run Snakemake from a Python where no other copy is imported first (e.g. this clone's .venv)"]
    assert deleted_tracked_files(repo) == []


# --------------------------------------------------------------------------- a read-only output folder


@pytest.mark.timeout(600)
def test_a_read_only_folder_a_missing_output_goes_into_stops_with_one_line(finished):
    _root_only()
    repo, base = finished
    # the group's outputs are missing (group.json and its test_correct.npz: an output left on a
    # read-only mount is write-protected, which Snakemake refuses to plan over, in its own words)
    for name in ("group.json", "test_correct.npz"):
        (repo / GROUP / name).unlink()
    with read_only(repo / GROUP):
        dry = smk(repo, "-n")                                   # a dry run plans, and writes nothing
        assert dry.returncode == 0 and "train" in dry.stdout, dry.stdout[-1500:]
        assert [x for x in dry.stderr.splitlines() if x.startswith("smoothbench")] == []
        proc = smk(repo, "--cores", "2")
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1
        assert [x for x in proc.stderr.splitlines() if x.startswith("smoothbench")] == [
            f"smoothbench: {GROUP}: read-only file system, and this run has to write group.json, test_correct.npz into it; make it "
            "writable and rerun"]
        assert "Traceback" not in out and "Errno 30" not in out and "rule train" not in out    # before any job
    recover(repo, smk(repo, "--cores", "2"), base)


# --------------------------------------------------------------------------- Ctrl-C during training


@pytest.mark.timeout(600)
def test_ctrl_c_ends_the_train_log_with_one_line_and_the_rerun_resumes(finished):
    repo, _ = finished
    args = [*_output("results-i", "reports-i", variants={"direct": {"epochs": 300}}, checkpoint_every=5),
            "--show-failed-logs"]
    ckdir = repo / "checkpoints" / "results-i" / "digits" / "symmetric-0.4"
    proc = _start(repo, *args)
    assert _wait_for(lambda: (ckdir / "direct.pt").exists(), 300, proc), proc.communicate()[0][-3000:]
    time.sleep(0.3)                                                     # into a later epoch
    os.killpg(proc.pid, signal.SIGINT)                                  # what Ctrl-C does
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    log = (repo / TRAIN_LOG.format(results="results-i")).read_text()
    last = log.strip().splitlines()[-1]
    pattern = (r"smoothbench train: interrupted \(SIG(INT|TERM)\) at epoch (\d+) of 300 \(direct\) of the setting "
               r"digits-symmetric-0\.4; a rerun resumes from the last checkpoint \(checkpoints/results-i/digits/symmetric-0\.4\)")
    assert re.fullmatch(pattern, last), log[-3000:]
    assert "Traceback" not in log and "KeyboardInterrupt" not in out + log, out[-3000:]
    assert last in out                                                   # what Snakemake shows of the log
    again = run(repo, "snakemake", "--cores", "2", *args)
    log = (repo / TRAIN_LOG.format(results="results-i")).read_text()
    assert re.search(r"^direct: resumed from epoch \d+$", log, re.MULTILINE), log[-2000:]
    assert result_cells(repo / "reports-i" / "results.csv") == expected_cells(STUDY)
    assert "reproduction check" in again.stdout


# --------------------------------------------------------------------------- two studies, one setting


@pytest.mark.timeout(900)
def test_two_studies_of_one_setting_keep_their_own_resume_points(finished):
    """Study A interrupted after its first checkpoint; study B of the same setting (other methods,
    other output folders) runs to the end in the same clone; then A resumes from its own
    checkpoint (checkpoints/<its results folder>/...) and ends with the metrics of an
    uninterrupted A, byte for byte."""
    repo, _ = finished
    long = dict(variants={"direct": {"epochs": 300}}, checkpoint_every=5)
    study_a = _output("results-a", "reports-a", **long)
    study_b = [*_output("results-b2", "reports-b2", **long), "methods={ce: [0.0], ls: [0.4], nls: [-0.4]}"]
    proc = _start(repo, *study_a)
    found = lambda: sorted((repo / "checkpoints").rglob("direct.pt"))   # noqa: E731 (where A keeps them)
    assert _wait_for(found, 300, proc), proc.communicate()[0][-3000:]
    [ckdir] = [p.parent for p in found()]
    assert ckdir == repo / "checkpoints" / "results-a" / "digits" / "symmetric-0.4"
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode != 0 and not (repo / "results-a" / "digits" / "symmetric-0.4" / "seed0" / "group.json").exists()
    run(repo, "snakemake", "--cores", "2", *study_b)
    assert result_cells(repo / "reports-b2" / "results.csv") == expected_cells(
        dict(STUDY, methods={"ce": [0.0], "ls": [0.4], "nls": [-0.4]}))
    assert (ckdir / "direct.pt").is_file()                               # B left A's resume point alone
    run(repo, "snakemake", "--cores", "2", *study_a)
    log = (repo / TRAIN_LOG.format(results="results-a")).read_text()
    assert re.search(r"^direct: resumed from epoch \d+$", log, re.MULTILINE), log[-2000:]
    run(repo, "snakemake", "--cores", "2", *_output("results-a0", "reports-a0", **long))      # A, uninterrupted
    assert tree_md5s(repo / "results-a") == tree_md5s(repo / "results-a0")
    assert tree_md5s(repo / "reports-a") == tree_md5s(repo / "reports-a0")
    assert deleted_tracked_files(repo) == []


# --------------------------------------------------------------------------- the reproduction check


@pytest.mark.timeout(600)
def test_the_reproduction_check_of_a_study_against_its_own_committed_copy(finished):
    repo, base = finished
    run(repo, "make", "expected", f"BIN={BIN}")                        # what maintainers commit as expected/
    shutil.rmtree(repo / "reports")
    try:
        proc = run(repo, "snakemake", "--cores", "2")                     # the reports again, and the check
        assert_reproduction_check(repo, proc.stdout + proc.stderr)
        assert snapshot(repo) == base
    finally:
        run(repo, "git", "checkout", "-q", "--", "expected")
        run(repo, "git", "clean", "-fdq", "expected")


# --------------------------------------------------------------------------- make study


@pytest.mark.timeout(300)
def test_make_study_checks_snakemake_s_arguments_first(finished):
    repo, _ = finished
    (repo / "folder").mkdir(exist_ok=True)
    proc = run(repo, "make", "study", f"BIN={BIN}", "ARGS=-n --configfile folder", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stdout + proc.stderr
    assert [x for x in proc.stderr.splitlines() if x.startswith("smoothbench")] == [
        "smoothbench run: error: --configfile folder: is a folder; give a study file (YAML), e.g. "
        "config/paper-cifar10.yaml"]
    assert nothing_to_do(run(repo, "make", "study", f"BIN={BIN}", "ARGS=-n"))


@pytest.mark.timeout(600)
def test_make_study_says_a_line_per_job_and_the_reproduction_check_every_time(finished):
    """The console of `make study` (smoothbench run): what the run has to do, then one line per
    finished job (done/total, its rule and wildcards, how long), then the reproduction check; a
    second `make study` with nothing to do still ends with the check; --verbose gives Snakemake's
    own console (every job's inputs)."""
    repo, _ = finished
    args = "ARGS=" + " ".join(shlex.quote(a) for a in _output("results-c", "reports-c"))
    proc = run(repo, "make", "study", f"BIN={BIN}", args)
    out = proc.stdout + proc.stderr
    jobs = [x for x in out.splitlines() if re.match(r"\[ ?\d+/\d+\] ", x)]
    assert [re.sub(r" \(\d+ s\)$", "", x) for x in jobs] == [
        "[1/5] train digits symmetric 0.4", "[2/5] collect", "[3/5] choose", "[4/5] report", "[5/5] all"], out
    assert "5 jobs to run: train 1, collect 1, choose 1, report 1, all 1" in out.splitlines()
    check = [x for x in out.splitlines() if x.startswith("reproduction check:")]
    assert check == ["reproduction check: reports-c/ describes another study than expected/ (the committed default "
                     "study); nothing compared"], out
    assert "input:" not in out and "Shell command" not in out and "Traceback" not in out
    assert len(out.splitlines()) <= 12, out                      # the make line, Snakemake's profile line, these
    again = subprocess.run(["make", "study", f"BIN={BIN}", args], cwd=repo, env=_env(repo), text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)   # one stream: in order
    lines = again.stdout.splitlines()
    assert again.returncode == 0 and "Nothing to be done (all requested files are present and up to date)." in lines
    assert lines[-1] == check[0], lines                         # the check ends a run with nothing to do too
    verbose = run(repo, "make", "study", f"BIN={BIN}", args + " --verbose --forcerun report")
    out = verbose.stdout + verbose.stderr
    assert "localrule report:" in out and "    input: reports-c/results.csv" in out
    assert [x for x in out.splitlines() if x.startswith("reproduction check:")] == check
    assert deleted_tracked_files(repo) == []
