"""Fault injection: the real CLI and the real Snakemake on a tiny study, one test per fault.

Each test asserts what a user sees (one line naming the file or key and what to do, no
traceback), that nothing half-written looks complete, that nothing already computed is
lost, and that the plain rerun (`make study`, i.e. `smoothbench run`: Snakemake with the local
profile; or the one command the message names) recovers to results byte-identical to an
undisturbed run. The faults:

- corrupted, truncated or deleted products of every stage (dataset, labels, label
  statistics, group.json, per-cell files, results/curves tables, report files), found and set
  aside by `smoothbench check`;
- kills (SIGINT, SIGTERM, SIGKILL) at seeded random points of training and of report
  writing, and a truncated checkpoint left by one;
- a read-only output folder and a full disk (a small tmpfs; root only) for every CLI step;
- bad params (every top-level key, YAML syntax, --config values) and concurrent runs.

Marked slow (CI runs it); about six minutes on two cores.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import random
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from test_pipeline import (
    BIN,
    TINY_PARAMS,
    _env,
    clone_repo,
    deleted_tracked_files,
    nothing_to_do,
    run,
    tree_md5s,
)

from smoothbench.study import grid

pytestmark = pytest.mark.slow

STUDY = copy.deepcopy(TINY_PARAMS)
# long enough (40 epochs, a checkpoint every 2) for a kill to land inside training
STUDY["protocol"]["default"]["variants"]["direct"]["epochs"] = 40
STUDY["protocol"]["default"]["checkpoint_every"] = 2
GROUP = "results/digits/symmetric-0.4/seed0"
CHECKPOINTS = "checkpoints/results/digits/symmetric-0.4"  # its job's: one per setting and study
PRODUCT_DIRS = ("data", "noisy", "results", "reports")
SET_ASIDE = Path("set-aside")


def snapshot(repo: Path) -> dict[str, str]:
    """md5 of every product file (relative path -> md5)."""
    out = {}
    for d in PRODUCT_DIRS:
        if (repo / d).is_dir():
            out.update({f"{d}/{k}": v for k, v in tree_md5s(repo / d).items()})
    return out


def smk(repo: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return run(repo, "snakemake", *args, check=False, timeout=timeout)


def make_study(repo: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    """The plain rerun a user makes: `make study` is `smoothbench run`, Snakemake with the local profile."""
    return run(repo, str(BIN / "smoothbench"), "run", "--cores", "2", check=False, timeout=timeout)


def check(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return run(repo, str(BIN / "smoothbench"), "check", *args, check=False)


def recover(repo: Path, proc: subprocess.CompletedProcess, base: dict) -> list[str]:
    """Rerun until done, following only what Snakemake's or smoothbench's message names
    (--unlock); return the extra commands needed (whether training resumed or retrained, the
    products must come out byte-identical). Asserts byte-identical products, nothing left to do,
    and no tracked file deleted."""
    needed = []
    for _ in range(3):
        if proc.returncode == 0:
            break
        text = proc.stdout + proc.stderr
        if "--unlock" in text and "cannot be locked" in text:
            needed.append("--unlock")
            assert smk(repo, "--unlock").returncode == 0
            proc = make_study(repo)
        else:
            raise AssertionError(f"the rerun failed without naming what to do:\n{text[-3000:]}")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert snapshot(repo) == base
    assert nothing_to_do(smk(repo, "-n"))
    assert deleted_tracked_files(repo) == []
    return needed


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A clone that has run the tiny study once: (repo, md5 of every product)."""
    repo = clone_repo(tmp_path_factory.mktemp("faults") / "repo", STUDY)
    run(repo, "snakemake", "--cores", "2")
    return repo, snapshot(repo)


_FAILED_BEFORE = [0]  # the session's failed tests when the last test here started


@pytest.fixture
def study(finished, request):
    """The finished clone, healthy again if a failed test left it otherwise (so that one
    failure does not cascade into the tests after it). A test that passed leaves it healthy
    (each that changes it ends with ``recover``'s checks): the dry run that tells is made only
    after a failure."""
    repo, base = finished
    failed, _FAILED_BEFORE[0] = _FAILED_BEFORE[0] != request.session.testsfailed, request.session.testsfailed
    if snapshot(repo) != base or (failed and not nothing_to_do(smk(repo, "-n"))):
        smk(repo, "--unlock")
        check(repo)
        make_study(repo)
    return repo, base


# --------------------------------------------------------------------------- corrupted products


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: max(1, p.stat().st_size // 3)])


def _garbage(p: Path) -> None:
    p.write_bytes(b"\x00\xff garbage \x13" * 7)


def _flip_middle(p: Path) -> None:
    data = bytearray(p.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 16):
        data[i] ^= 0xFF
    p.write_bytes(bytes(data))


def _append(p: Path) -> None:
    p.write_text(p.read_text() + "\nedited by hand\n")


CORRUPTIONS = {  # id: (path, damage)
    "dataset-truncated": ("data/digits.npz", _truncate),
    "labels-truncated": ("noisy/digits/symmetric-0.4-s0.npz", _truncate),
    "labels-bytes-flipped": ("noisy/digits/symmetric-0.4-s0.npz", _flip_middle),
    "label-stats-garbage": ("noisy/digits/symmetric-0.4-s0.json", _garbage),
    "group-truncated": (f"{GROUP}/group.json", _truncate),
    "cell-curves-deleted": (f"{GROUP}/cells/direct/ls_0.4/curves.csv", Path.unlink),
    "cell-metrics-truncated": (f"{GROUP}/cells/direct/nls_-0.4/metrics.json", _truncate),
    "results-truncated": ("reports/results.csv", _truncate),
    "curves-garbage": ("reports/curves.csv", _garbage),
    "findings-edited": ("reports/findings.md", _append),
    "table-truncated": ("reports/tables/table_best.csv", _truncate),
}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_a_damaged_product_is_set_aside_and_made_again(study, case):
    repo, base = study
    rel, damage = CORRUPTIONS[case]
    damage(repo / rel)
    damaged = (repo / rel).read_bytes() if (repo / rel).exists() else None
    # `smoothbench check --dry-run` says what it found and moves nothing
    dry = check(repo, "--dry-run")
    assert dry.returncode == 1 and "Traceback" not in dry.stderr
    group_file = rel.startswith(GROUP + "/cells")
    named = f"{GROUP}/group.json" if group_file else rel
    [line] = [x for x in dry.stdout.splitlines() if x.startswith(f"smoothbench check: {named}:")]
    assert line.endswith("without --dry-run it is moved to set-aside/")
    assert ((repo / rel).read_bytes() if (repo / rel).exists() else None) == damaged
    # `smoothbench check` sets it aside (kept, never deleted), one line; make study makes it again,
    # and what follows it
    proc = check(repo)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    [line] = [x for x in proc.stdout.splitlines() if x.startswith(f"smoothbench check: {named}:")]
    assert line.endswith(f"; moved to {SET_ASIDE / named}")
    aside = repo / SET_ASIDE / named
    assert aside.is_file()
    if not group_file:
        assert aside.read_bytes() == damaged
    recover(repo, make_study(repo), base)
    proc = check(repo)
    assert proc.returncode == 0 and proc.stdout.startswith("smoothbench check: the ")    # all usable again
    shutil.rmtree(repo / SET_ASIDE)


@pytest.mark.timeout(900)
def test_a_deleted_group_is_made_again_though_the_tables_are_present(study):
    repo, base = study
    shutil.rmtree(repo / GROUP)
    counts = smk(repo, "-n").stdout
    assert re.search(r"^train\s+1$", counts, re.MULTILINE), counts
    recover(repo, make_study(repo), base)


# --------------------------------------------------------------------------- kills


def _wait_for(cond, timeout: float, proc: subprocess.Popen) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if cond():
            return True
        time.sleep(0.02)
    return False


def _start(repo: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "snakemake"), "--cores", "2", *args], cwd=repo, env=_env(repo),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _complete_or_absent(repo: Path, base: dict) -> None:
    """Nothing half-written looks complete: every product file there is the finished one."""
    now = snapshot(repo)
    partial = {k for k in now if Path(k).name.startswith(".") and ".tmp" in k}
    assert {k: v for k, v in now.items() if k not in partial and v != base.get(k)} == {}


KILLS = [(sig, point) for point in ("training", "report") for sig in ("SIGINT", "SIGTERM", "SIGKILL")]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("sig, point", KILLS, ids=[f"{s}-during-{p}" for s, p in KILLS])
def test_a_killed_run_resumes_to_identical_results(study, sig, point):
    repo, base = study
    rng = random.Random(f"{sig}-{point}")                 # a seeded, reproducible kill point
    if point == "training":
        shutil.rmtree(repo / GROUP)
        ckdir = repo / CHECKPOINTS
        ready = lambda: ckdir.is_dir() and any(ckdir.glob("*.pt"))
    else:
        (repo / "reports" / "findings.md").unlink()
        log = repo / "logs" / "reports" / "report.log"
        before = log.stat().st_mtime if log.exists() else 0
        ready = lambda: log.exists() and log.stat().st_mtime > before
    proc = _start(repo)
    assert _wait_for(ready, 300, proc), f"the run never reached {point}: {proc.communicate()[0][-2000:]}"
    time.sleep(rng.uniform(0.0, 0.8))
    os.killpg(proc.pid, getattr(signal, sig))
    proc.communicate(timeout=120)
    _complete_or_absent(repo, base)
    needed = recover_after_a_kill(repo, base)
    if sig != "SIGKILL":
        assert needed == []                                   # Snakemake unlocked on its way out


def recover_after_a_kill(repo: Path, base: dict) -> list[str]:
    """What docs/pipeline.md says to do after a kill: `smoothbench check` (it sets aside the
    temporary files a killed job could not clean up, and finds nothing else: every product is
    written whole or not at all), then rerun (`--unlock` first where Snakemake says so)."""
    lines = check(repo).stdout.splitlines()
    temp = [x for x in lines if re.fullmatch(r"smoothbench check: (\S+): left by an interrupted job; moved to "
                                             r"set-aside/\1", x)]
    assert lines[len(temp):] == [lines[-1]] and lines[-1].startswith(
        "smoothbench check: what is said above is in set-aside/ now" if temp else "smoothbench check: the "), lines
    needed = ["smoothbench check"] if temp else []
    needed += recover(repo, make_study(repo), base)
    if temp:
        shutil.rmtree(repo / SET_ASIDE)
    return needed


@pytest.mark.timeout(900)
@pytest.mark.parametrize("generations", [1, 2], ids=["newest-truncated", "both-truncated"])
def test_a_truncated_checkpoint_is_moved_aside_and_training_goes_on(study, generations):
    repo, base = study
    shutil.rmtree(repo / GROUP)
    ckdir = repo / CHECKPOINTS
    proc = _start(repo)
    assert _wait_for(lambda: ckdir.is_dir() and (ckdir / "direct.prev.pt").exists(), 300, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=120)
    names = ["direct.pt", "direct.prev.pt"][:generations]
    for name in names:
        _truncate(ckdir / name)
    recover(repo, make_study(repo), base)
    log = (repo / "logs" / "results" / "train" / "digits" / "symmetric-0.4.log").read_text()
    for name in names:
        assert re.search(rf"{re.escape(name)} is unreadable \(\w+\); moved to {re.escape(name)}\.corrupt", log), log
        assert (ckdir / f"{name}.corrupt").is_file()                          # kept for inspection
    assert ("resumed from epoch" in log) == (generations == 1)
    shutil.rmtree(ckdir)


# --------------------------------------------------------------------------- read-only folder, full disk


def _cli_steps(repo: Path, out: Path, elsewhere: Path) -> dict[str, list[str]]:
    """Each CLI step writing into ``out`` (the rest into ``elsewhere``), with the study's
    real inputs."""
    g = next(g for g in grid.expand_groups(grid.validate_params(STUDY)) if g.noise_rate == "0.4")
    protocol = json.dumps(grid.protocol_for(grid.validate_params(STUDY), "digits"), sort_keys=True)
    train = ["train", "--data", "data/digits.npz", "--labels", "noisy/digits/symmetric-0.4-s0.npz",
             "--cells", g.cells_spec, "--protocol", protocol, "--threads", "1", "--no-progress"]
    return {
        "data": ["data", "digits", "--out", f"{out}/digits.npz"],
        "noise": ["noise", "--data", "data/digits.npz", "--kind", "symmetric", "--rate", "0.4", "--seed", "0",
                  "--out", f"{out}/labels.npz"],
        "train": train + ["--out", f"{out}/group", "--checkpoint-dir", f"{elsewhere}/ck"],
        "train-checkpoints": train + ["--out", f"{elsewhere}/group", "--checkpoint-dir", f"{out}/ck"],
        "collect": ["collect", f"{GROUP}/group.json", "--out", f"{out}/results.csv", "--curves-out",
                    f"{out}/curves.csv"],
        "report": ["report", "--results", "reports/results.csv", "--curves", "reports/curves.csv",
                   "--out-dir", f"{out}/reports"],
    }


# the file each step writes last: its presence says the step finished
LAST_WRITTEN = {"data": "digits.npz", "noise": "labels.npz", "train": "group/group.json", "collect": "curves.csv"}


def _root_only() -> None:
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root to mount a read-only folder or a small tmpfs")


@contextlib.contextmanager
def _mounted(folder: Path, *how: str):
    folder.mkdir(parents=True, exist_ok=True)
    probe = subprocess.run(["mount", *how, str(folder)], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount here: {probe.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@contextlib.contextmanager
def read_only(folder: Path):
    with _mounted(folder, "--bind", str(folder)):
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        yield folder


def _cli(repo: Path, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "smoothbench"), *args], cwd=repo, env=_env(repo), capture_output=True,
                          text=True, timeout=600)


STEPS = ["data", "noise", "train", "collect", "report"]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("step", STEPS)
def test_a_read_only_output_folder_gives_one_line(study, tmp_path, step):
    _root_only()
    repo, _ = study
    with read_only(tmp_path / "ro") as ro:
        proc = _cli(repo, _cli_steps(repo, ro, tmp_path / "elsewhere")[step])
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert re.fullmatch(rf"smoothbench {step}: error: {re.escape(str(ro))}/\S*: read-only file system; "
                        "choose a writable folder", line), line


@pytest.mark.timeout(900)
def test_a_read_only_results_folder_fails_the_job_and_a_rerun_recovers(study):
    """Through Snakemake: the train job's log ends with the one line; nothing trained is
    lost (the rerun resumes from the last checkpoint). (A read-only folder that holds a
    rule's declared output is Snakemake's to report: it fails before the job runs.)"""
    _root_only()
    repo, base = study
    shutil.rmtree(repo / GROUP)
    (repo / GROUP / "cells").mkdir(parents=True)
    log = repo / "logs" / "results" / "train" / "digits" / "symmetric-0.4.log"
    with read_only(repo / GROUP / "cells"):
        proc = smk(repo, "--cores", "2")
        assert proc.returncode != 0 and "Error in rule train" in proc.stdout + proc.stderr
        assert str(log.relative_to(repo)) in proc.stdout + proc.stderr            # Snakemake names the log
        last = log.read_text().strip().splitlines()[-1]
        assert re.fullmatch(rf"smoothbench train: error: {GROUP}/cells/\S*: read-only file system; choose a "
                            "writable folder", last), last
        _complete_or_absent(repo, base)
    recover(repo, make_study(repo), base)
    assert "resumed from epoch 40" in log.read_text()                           # nothing trained was lost


@pytest.mark.timeout(900)
@pytest.mark.parametrize("step", STEPS + ["train-checkpoints"])
def test_a_full_disk_gives_one_line_and_leaves_nothing_half_written(study, tmp_path, step):
    _root_only()
    repo, base = study
    small, elsewhere = tmp_path / "small", tmp_path / "elsewhere"
    with _mounted(small, "-t", "tmpfs", "-o", "size=12k", "tmpfs"):
        (small / "filler").write_bytes(b"\0" * 4096)    # room for folders and a lock file, not for products
        args = _cli_steps(repo, small, elsewhere)[step]
        proc = _cli(repo, args)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        [line] = proc.stderr.strip().splitlines()[-1:]
        assert re.fullmatch(rf"smoothbench {step.split('-')[0]}: error: {re.escape(str(small))}/\S*: no space left "
                            "on the device; free some space and rerun", line), proc.stderr
        assert "Traceback" not in proc.stderr
        left = [p.name for p in small.rglob("*") if p.is_file()]
        assert not [n for n in left if n.startswith(".") and ".tmp" in n], left      # no temporary file
        assert step not in LAST_WRITTEN or not (small / LAST_WRITTEN[step]).exists()
        # once there is room, the same command succeeds; a trained group equals the pipeline's
        subprocess.run(["mount", "-o", "remount,size=64m", str(small)], check=True)
        again = _cli(repo, args)
        assert again.returncode == 0, again.stderr
        if step.startswith("train"):
            out = Path(args[args.index("--out") + 1])
            assert (out / "group.json").read_bytes() == (repo / GROUP / "group.json").read_bytes()
    assert snapshot(repo) == base


# --------------------------------------------------------------------------- bad params, concurrent runs


BAD_PARAMS = [  # (what to change, text the one line must hold)
    ({"datasets": ["imagenet"]}, "datasets[0]"),
    ({"noise": {"symmetric": [1.5]}}, "noise.symmetric[0]"),
    ({"noise": {"nonsense": [0.2]}}, "noise"),
    ({"methods": {"ls": [1.5]}}, "methods.ls[0]"),
    ({"methods": {"nls": [0.4]}}, "methods.nls[0]"),
    ({"seeds": [-1]}, "seeds[0]"),
    ({"seeds": "zero"}, "seeds"),
    ({"noise_seed": "abc"}, "noise_seed"),
    ({"dataset_noise": {"digits": {"symmetric": [7]}}}, "dataset_noise"),
    ({"noise_options": {"symmetric": {"bogus": 1}}}, "noise_options"),
    ({"protocol": {"default": {"batch_size": 0}}}, "protocol.default.batch_size"),
    ({"protocol": {"default": {"variants": {"direct": {"epochs": -3}}}}}, "protocol.default.variants.direct.epochs"),
    ({"data": {"cache_dir": 5}}, "data.cache_dir"),
    ({"output": {"results_dir": ""}}, "output.results_dir"),
    ({"colour": "blue"}, "colour"),
]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("change, key", BAD_PARAMS, ids=[k for _, k in BAD_PARAMS])
def test_a_bad_params_value_stops_before_any_job_with_one_line(study, change, key):
    repo, base = study
    good = (repo / "params.yaml").read_text()
    try:
        (repo / "params.yaml").write_text(yaml.safe_dump(grid.deep_merge(STUDY, change), sort_keys=False))
        proc = smk(repo, "--cores", "2")
    finally:
        (repo / "params.yaml").write_text(good)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("params.yaml")]
    assert key in line, line
    assert "rule " not in proc.stdout + proc.stderr                      # no job ran
    assert snapshot(repo) == base


@pytest.mark.timeout(300)
def test_a_yaml_syntax_error_names_line_and_column(study):
    repo, _ = study
    good = (repo / "params.yaml").read_text()
    lines = good.splitlines()
    lines[2] = lines[2] + " ]["
    try:
        (repo / "params.yaml").write_text("\n".join(lines) + "\n")
        proc = smk(repo, "-n")
    finally:
        (repo / "params.yaml").write_text(good)
    assert proc.returncode != 0
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("params.yaml")]
    assert re.search(r"not valid YAML \(line 3, column \d+\)", line), line


@pytest.mark.timeout(300)
def test_config_values_are_read_as_yaml(study):
    repo, _ = study
    proc = smk(repo, "-n", "--config", "seeds=[0,1]")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^train\s+2$", proc.stdout, re.MULTILINE)                 # the two seed-1 groups, typed as ints
    proc = smk(repo, "-n", "--config", "seeds=[zero]")
    assert proc.returncode != 0
    [line] = [x for x in proc.stderr.splitlines() if "(with --config)" in x]
    assert "seeds[0]" in line


@pytest.mark.timeout(900)
def test_a_second_run_is_refused_while_one_runs(study):
    repo, base = study
    shutil.rmtree(repo / GROUP)
    log = repo / "logs" / "results" / "train" / "digits" / "symmetric-0.4.log"
    before = log.stat().st_mtime_ns

    def started() -> bool:      # Snakemake removes a job's old log as the job starts, then writes it
        try:
            return log.stat().st_mtime_ns != before
        except FileNotFoundError:
            return True

    first = _start(repo)
    assert _wait_for(started, 300, first)                               # its train job runs: it holds the lock
    second = smk(repo, "--cores", "2")
    assert second.returncode != 0 and "cannot be locked" in second.stdout + second.stderr
    assert "rule " not in second.stdout + second.stderr                # no job of its own ran
    out, _ = first.communicate(timeout=600)
    assert first.returncode == 0, out[-3000:]
    recover(repo, subprocess.CompletedProcess(first.args, first.returncode, out, ""), base)
