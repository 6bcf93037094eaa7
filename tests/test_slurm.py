"""The cluster path on a real SLURM: a single-node cluster with accounting, stood up by
tools/slurm-testcluster.sh (Debian packages, as root), and a tiny study through the
shipped profile `workflow/profiles/slurm` with no command-line overrides:

- every job goes through sbatch, and the reports equal a local run's byte for byte;
- a train job cancelled with scancel (after its first checkpoint) is retried and resumes;
- a CPU protocol's train job asks for no GPU, a CUDA protocol's asks for one (--gpus=1).

Marked slurm and slow; skipped, saying why, where it cannot run (not root, no apt, no
plugin). About three minutes.
"""

from __future__ import annotations

import copy
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from test_pipeline import BIN, TINY_PARAMS, _env, clone_repo, deleted_tracked_files, tree_md5s

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "slurm-testcluster.sh"
STUDY = copy.deepcopy(TINY_PARAMS)
# a group trains long enough (1000 epochs, ~15 s, a checkpoint every 10) to be cancelled mid-run
STUDY["protocol"]["default"]["variants"]["direct"]["epochs"] = 1000
STUDY["protocol"]["default"].update(checkpoint_every=10)


def _why_not() -> str | None:
    if sys.platform != "linux":
        return "SLURM test cluster: Linux only"
    if os.geteuid() != 0:
        return "SLURM test cluster: needs root (it installs Debian packages and starts daemons)"
    if not shutil.which("apt-get") and not shutil.which("slurmctld"):
        return "SLURM test cluster: no apt-get to install slurm-wlm, slurmdbd, munge, mariadb-server"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')"
    return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = _why_not()
    if why:
        pytest.skip(why)
    state = tmp_path_factory.mktemp("slurm-state")
    # KillWait 0: a cancelled job's trainer (which gets no SIGTERM, tools/slurm-notes.md (f))
    # is SIGKILLed at once rather than 30 s later, when it might have finished its epochs
    env = {**os.environ, "SMOOTHBENCH_SLURM_STATE": str(state), "SMOOTHBENCH_SLURM_KILLWAIT": "0"}
    t0 = time.time()
    start = subprocess.run([str(SCRIPT), "start", "--gpus", "1"], env=env, capture_output=True, text=True,
                           timeout=900)
    if start.returncode != 0 and "apt" in start.stderr and "failed" in start.stderr:
        pytest.skip(f"SLURM test cluster: the Debian packages could not be installed: {start.stderr[-300:]}")
    assert start.returncode == 0, start.stdout + start.stderr
    print(f"test cluster up in {time.time() - t0:.1f} s:\n{start.stderr}")
    try:
        yield {"SLURM_CONF": str(state / "etc" / "slurm.conf")}
    finally:
        subprocess.run([str(SCRIPT), "stop"], env=env, capture_output=True, text=True, timeout=300)


def _slurm_env(repo: Path, cluster: dict) -> dict:
    return {**_env(repo), **cluster}


def _squeue(cluster: dict) -> list[list[str]]:
    out = subprocess.run(["squeue", "-h", "-o", "%i|%k|%T"], env={**os.environ, **cluster}, capture_output=True,
                         text=True).stdout
    return [line.split("|") for line in out.splitlines()]


def _group_checkpoints(repo: Path, comment: str) -> Path:
    """The checkpoint folder of the train job whose sbatch comment is
    rule_train_wildcards_<dataset>_<kind>_<rate> (one job per setting, all its seeds; one folder
    per study, keyed by its results folder)."""
    dataset, kind, rate = comment.split("rule_train_wildcards_", 1)[1].rsplit("_", 2)
    return repo / "checkpoints" / "results" / dataset / f"{kind}-{rate}"


@pytest.mark.timeout(1500)
def test_study_through_the_slurm_profile(cluster, tmp_path):
    repo = clone_repo(tmp_path / "slurm", STUDY)
    log = open(tmp_path / "slurm.log", "w")
    t0 = time.time()
    proc = subprocess.Popen([str(BIN / "snakemake"), "--workflow-profile", "workflow/profiles/slurm", "--verbose"],
                            cwd=repo, env=_slurm_env(repo, cluster), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    # cancel a running train job once it has checkpointed
    cancelled = None
    deadline = time.time() + 600
    while cancelled is None and time.time() < deadline and proc.poll() is None:
        for job, comment, state in _squeue(cluster):
            if "rule_train" in comment and state == "RUNNING" and list(_group_checkpoints(repo, comment).rglob("*.pt")):
                subprocess.run(["scancel", job], env={**os.environ, **cluster}, check=True)
                cancelled = job
                break
        time.sleep(0.5)
    assert cancelled, "no train job was seen running with a checkpoint"
    rc = proc.wait(timeout=900)
    log.close()
    text = (tmp_path / "slurm.log").read_text()
    print(f"study through the SLURM profile: {time.time() - t0:.0f} s, scancel'ed job {cancelled}")
    assert rc == 0, text[-4000:]
    assert "SLURM status is: 'CANCELLED'" in text and "Trying to restart job" in text
    resumed = "\n".join(p.read_text() for p in (repo / "logs" / "results" / "train").rglob("*.log"))
    assert "resumed from epoch" in resumed
    # every job through sbatch: the DAG's 8 jobs (data, 2 noise, 2 train, collect, choose, report) + the retry
    sbatch = [line for line in text.splitlines() if "sbatch call:" in line]
    assert len(sbatch) == 9, "\n".join(sbatch)
    train_calls = [line for line in sbatch if "rule_train" in line]
    assert len(train_calls) == 3 and not any("--gpus" in line for line in sbatch)   # a CPU study asks no GPU
    # the reports equal a local run's, byte for byte
    local = clone_repo(tmp_path / "local", STUDY)
    subprocess.run([str(BIN / "snakemake"), "--cores", "2"], cwd=local, env=_env(local), check=True,
                   capture_output=True, timeout=900)
    assert tree_md5s(repo / "reports") == tree_md5s(local / "reports")
    assert deleted_tracked_files(repo) == []


@pytest.mark.timeout(600)
def test_cuda_protocol_asks_for_a_gpu(cluster, tmp_path):
    study = copy.deepcopy(TINY_PARAMS)
    study["protocol"]["default"]["device"] = "cuda"
    repo = clone_repo(tmp_path / "cuda", study)
    log_path = tmp_path / "cuda.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(BIN / "snakemake"), "--workflow-profile", "workflow/profiles/slurm", "--verbose"],
                                cwd=repo, env=_slurm_env(repo, cluster), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline = time.time() + 400
        while time.time() < deadline and proc.poll() is None:
            if any("sbatch call:" in x and "rule_train" in x for x in log_path.read_text().splitlines()):
                break
            time.sleep(0.5)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)                # Snakemake cancels its jobs and stops
        proc.wait(timeout=120)
    lines = [x for x in log_path.read_text().splitlines() if "sbatch call:" in x]
    train = [x for x in lines if "rule_train" in x]
    assert train and all("--gpus=1" in x and "--cpus-per-gpu=8" in x for x in train), "\n".join(lines)
    assert not any("--gpus" in x for x in lines if "rule_train" not in x)
    yaml.safe_load((repo / "params.yaml").read_text())     # the clone is intact
