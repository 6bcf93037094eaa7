"""One GPU per concurrent training job (``gpus.claim_gpu``), without CUDA: real processes
claim from a simulated list of GPU UUIDs, and the test checks the locks from outside with
its own flock calls. ``smoothbench train`` on a faked CUDA runtime claims, says so, and
hands the engine the claimed device."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from smoothbench.cli import commands as cli
from smoothbench.engine import gpus, training as train

UUIDS = ["GPU-aaaa1111", "GPU-bbbb2222", "GPU-cccc3333"]

# a claimer: waits for the start signal (so that all of them claim at the same moment),
# claims, says which, and holds the claim until its stdin is closed
CLAIMER = """
import os, sys, time
from smoothbench.engine.gpus import claim_gpu
uuids, lock_dir, go, only = sys.argv[1].split(","), sys.argv[2], sys.argv[3], sys.argv[4]
while not os.path.exists(go):
    time.sleep(0.01)
claim = claim_gpu(uuids, lock_dir, only=None if only == "-" else int(only), poll=0.02,
                  say=lambda line: print("WAIT", line, flush=True))
print("CLAIMED", claim.index, flush=True)
sys.stdin.read()
"""


def _start(lock_dir: Path, go: Path, uuids=UUIDS, only: str = "-") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-c", CLAIMER, ",".join(uuids), str(lock_dir), str(go), only],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def _line(proc: subprocess.Popen, within: float = 60) -> str:
    """The next line the process prints (a guard against a hang, not a timing assertion)."""
    ready, _, _ = select.select([proc.stdout], [], [], within)
    assert ready, "the claimer printed nothing"
    return proc.stdout.readline().strip()


def _held_by_someone(path: Path) -> bool:
    """Whether another process holds an flock on ``path``: try to take it ourselves."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)              # also drops our own lock if we got it
    return False


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def test_concurrent_jobs_claim_distinct_gpus_a_surplus_one_waits_and_a_crash_frees_its_gpu(tmp_path, procs):
    locks = tmp_path / "locks"
    go = {name: tmp_path / name for name in ("holders", "surplus", "late")}
    # all start (and import) together; each group claims when its start file appears
    holders = [_start(locks, go["holders"]) for _ in UUIDS]
    surplus, late = _start(locks, go["surplus"]), _start(locks, go["late"])
    procs += [*holders, surplus, late]
    go["holders"].touch()                                   # the holders claim at once
    first = [_line(p) for p in holders]
    assert sorted(first) == [f"CLAIMED {i}" for i in range(len(UUIDS))], first   # none shared
    index_of = {p: int(line.split()[1]) for p, line in zip(holders, first)}
    assert all(_held_by_someone(locks / f"{u}.lock") for u in UUIDS)              # each really held

    go["surplus"].touch()
    line = _line(surplus)
    assert line.startswith("WAIT waiting: all 3 visible GPUs are claimed by other jobs"), line
    released = holders[1]
    released.stdin.close()                                  # the job ends: its GPU is free
    released.wait()
    assert _line(surplus) == f"CLAIMED {index_of[released]}"

    crashed = holders[0]
    os.killpg(crashed.pid, signal.SIGKILL)                  # no clean-up runs: the kernel drops the flock
    crashed.wait()
    assert not _held_by_someone(locks / f"{UUIDS[index_of[crashed]]}.lock")
    go["late"].touch()
    assert _line(late) == f"CLAIMED {index_of[crashed]}"


def test_an_explicit_device_waits_for_that_device_only(tmp_path, procs):
    locks, go = tmp_path / "locks", tmp_path / "go"
    go.touch()
    held = gpus.claim_gpu(UUIDS, locks, only=1)           # this test holds GPU 1; 0 and 2 are free
    asker = _start(locks, go, only="1")
    procs.append(asker)
    assert _line(asker).startswith(f"WAIT waiting: cuda:1 is claimed by other jobs (locks in {locks})")
    held.release()
    assert _line(asker) == "CLAIMED 1"
    assert _held_by_someone(locks / f"{UUIDS[1]}.lock")


def test_without_waiting_a_fully_claimed_machine_is_one_line(tmp_path):
    with gpus.claim_gpu(UUIDS[:1], tmp_path) as claim:
        assert claim.index == 0 and claim.path == tmp_path / f"{UUIDS[0]}.lock"
        with pytest.raises(RuntimeError, match=r"^all 1 visible GPUs are claimed by other jobs \(locks in "):
            gpus.claim_gpu(UUIDS[:1], tmp_path, wait=False)
    assert gpus.claim_gpu(UUIDS[:1], tmp_path, wait=False).index == 0   # released on leaving the block
    with pytest.raises(ValueError, match="device cuda:5 does not exist; 3 visible"):
        gpus.claim_gpu(UUIDS, tmp_path, only=5)


def test_the_lock_folder(monkeypatch):
    monkeypatch.delenv(gpus.GPU_LOCKS_ENV, raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert gpus.gpu_lock_dir() == Path("/tmp/smoothbench-gpus")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1234")
    assert gpus.gpu_lock_dir() == Path("/run/user/1234/smoothbench-gpus")
    monkeypatch.setenv(gpus.GPU_LOCKS_ENV, "/scratch/locks")
    assert gpus.gpu_lock_dir() == Path("/scratch/locks")


# ----------------------------------------------------------------------------- the train command

@pytest.fixture
def fake_cuda(monkeypatch, tmp_path):
    """Two visible 'GPUs' (torch.cuda faked), locks in tmp_path; records what the engine got."""
    fakes = [SimpleNamespace(name="Fake H200", uuid="aaaa1111"), SimpleNamespace(name="Fake H200", uuid="bbbb2222")]
    seen = {"set_device": [], "train": []}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(fakes))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: fakes[i])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: fakes[i].name)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: seen["set_device"].append(i))
    monkeypatch.setattr(cli.stops, "die_with_parent", lambda: None)  # not on the pytest process

    def fake_train(**kw):
        # the claim is held while the engine trains
        lock = tmp_path / "locks" / "GPU-bbbb2222.lock"
        seen["train"].append((kw["device"], lock.exists() and _held_by_someone(lock)))
        return [{}]

    monkeypatch.setattr(train, "train_setting", fake_train)
    monkeypatch.setenv(gpus.GPU_LOCKS_ENV, str(tmp_path / "locks"))
    return seen


def _train(tmp_path, *extra):
    return cli.main(["train", "--data", "d.npz", "--labels", "l.npz", "--cells", "ce:0", "--protocol", "{}",
                     "--out", str(tmp_path / "out"), *extra])


def test_train_claims_the_first_free_gpu_says_so_and_trains_on_it(fake_cuda, tmp_path, capsys):
    locks = tmp_path / "locks"
    other_job = gpus.claim_gpu(["GPU-aaaa1111"], locks)          # another job holds GPU 0
    assert _train(tmp_path) == 0                                    # device auto: CUDA is 'available'
    assert capsys.readouterr().err.splitlines() == [
        f"device: cuda:1 (Fake H200, GPU-bbbb2222), claimed {locks}/GPU-bbbb2222.lock"]
    assert fake_cuda["set_device"] == [1]
    # the engine trains on the current device, claimed, and the claim ends with the job
    assert fake_cuda["train"] == [("cuda", True)]
    assert not _held_by_someone(locks / "GPU-bbbb2222.lock")
    other_job.release()


def test_train_on_the_cpu_claims_nothing(fake_cuda, tmp_path, capsys):
    assert _train(tmp_path, "--device", "cpu") == 0
    assert capsys.readouterr().err == ""
    assert fake_cuda["set_device"] == [] and fake_cuda["train"] == [("cpu", False)]
    assert not (tmp_path / "locks").exists()


def test_uuid_text_as_nvidia_smi_writes_it(monkeypatch):
    props = {0: SimpleNamespace(uuid="58fd1f3a-0b7c-2c3e-9d4f-3e1b2a5c6d7e"), 1: SimpleNamespace(uuid="MIG-1234"),
             2: SimpleNamespace(uuid="", pci_domain_id=0, pci_bus_id=65, pci_device_id=0)}
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props[i])
    assert gpus.gpu_uuid(0) == "GPU-58fd1f3a-0b7c-2c3e-9d4f-3e1b2a5c6d7e"
    assert gpus.gpu_uuid(1) == "MIG-1234"
    assert gpus.gpu_uuid(2) == "pci-0-65-0"

