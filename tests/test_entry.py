"""The command line's entry and exit: `smoothbench run` (Snakemake's --configfile and --config
checked first, one line each, where Snakemake's own command line stops with a traceback or a
message naming no file), and the one line an interrupted step ends its log with instead of a
KeyboardInterrupt traceback (SIGINT, Ctrl-C's signal to the whole process group, and SIGTERM).
Fast: the checks stop before Snakemake starts; the interrupts are real signals to a real
`smoothbench train` on a small dataset."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from helpers import train_command, write_dataset, write_labels

from smoothbench.pipeline import runner
from smoothbench.study import params as study


def smoothbench(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smoothbench.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


# --------------------------------------------------------------------------- smoothbench run

def _bad_runs(tmp: Path) -> list[tuple[list[str], str]]:
    (tmp / "folder").mkdir()
    (tmp / "empty.yaml").write_text("")
    (tmp / "list.yaml").write_text("- datasets\n")
    (tmp / "broken.yaml").write_text("datasets: [digits\n")
    (tmp / "twice.yaml").write_text("datasets: [digits]\nmethods:\n  ls: [0.2]\n  ls: [0.4]\n")
    return [
        (["--configfile", "folder"], "--configfile folder: is a folder; give a study file (YAML), e.g. "
                                     "config/paper-cifar10.yaml"),
        (["--configfile", "empty.yaml"], "--configfile empty.yaml: is empty; a study file holds a mapping of study "
                                         "keys (datasets, noise, methods, seeds, ...)"),
        (["--configfile=list.yaml"], "--configfile list.yaml: must hold a mapping of study keys (datasets, noise, "
                                     "methods, seeds, ...), got list"),
        (["--configfile", "nosuch.yaml"], "--configfile nosuch.yaml: no such file"),
        (["--configfiles", "empty.yaml", "folder"], "--configfile empty.yaml: is empty; a study file holds a mapping "
                                                    "of study keys (datasets, noise, methods, seeds, ...)"),
        (["--config", "seeds=[0]", "methods.ls=[0.4]"], "--config methods.ls=[0.4]: Snakemake takes top-level keys "
                                                       "only; give methods as a mapping, e.g. --config "
                                                       "'methods={ls: [0.4]}'"),
        (["-C", "protocol.default.batch_size=32"], "--config protocol.default.batch_size=32: Snakemake takes "
                                                   "top-level keys only; give protocol as a mapping, e.g. --config "
                                                   "'protocol={default: {batch_size: 32}}'"),
        (["--config", "seeds"], "--config seeds: give KEY=VALUE, e.g. --config seeds=[0,1]"),
        (["--configfile", "twice.yaml"], "twice.yaml: methods.ls: written twice (line 3 and line 4); a key may "
                                         "appear once in a mapping (YAML keeps only the last): keep one"),
    ]


def test_run_stops_on_what_snakemake_s_own_command_line_would_stop_on(tmp_path):
    for args, message in _bad_runs(tmp_path):
        proc = smoothbench(tmp_path, "run", "-n", *args, "--cores", "1")
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert proc.stderr.splitlines() == [f"smoothbench run: error: {message}"], args
        assert proc.stdout == ""
    proc = smoothbench(tmp_path, "run", "-n", "--configfile", "broken.yaml")
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert re.fullmatch(r"smoothbench run: error: broken\.yaml: not valid YAML \(line 2, column 1\): .+", line), line


def test_run_reads_the_options_as_snakemake_s_parser_does():
    argv = ["--cores", "2", "--configfile", "a.yaml", "b.yaml", "-n", "--config=seeds=[0]", "all",
            "-C", "x=1", "y=2", "--dry-run"]
    assert runner.snakemake_study_args(argv) == (["a.yaml", "b.yaml"], ["seeds=[0]", "x=1", "y=2"])


def test_what_run_suggests_is_what_snakemake_takes():
    """The suggested --config value, parsed the way Snakemake parses it and typed as the workflow
    types it, gives the dotted key's value."""
    from snakemake.cli import parse_config

    suggested = "methods={ls: [0.4]}"
    assert study.typed(parse_config([suggested])) == {"methods": {"ls": [0.4]}}
    with pytest.raises(ValueError, match="Invalid config definition"):
        parse_config(["methods.ls=[0.4]"])                      # what run catches first


def test_run_becomes_snakemake_when_the_arguments_are_fine(tmp_path):
    (tmp_path / "study.yaml").write_text("datasets: [digits]\n")
    proc = smoothbench(tmp_path, "run", "--version", "--configfile", "study.yaml", "--config", "seeds=[0]")
    snakemake = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "--version"], capture_output=True,
                               text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == snakemake.stdout and re.fullmatch(r"\d+\.\d+\.\d+\n", proc.stdout)


def test_run_uses_the_local_profile_unless_another_is_named():
    """`smoothbench run` (make study) is Snakemake with the local profile: an interrupted run's
    incomplete outputs are made again (Snakemake's --rerun-incomplete) and inputs are compared
    by checksum up to 1 GB; a profile named on the command line replaces it."""
    profile = yaml.safe_load((Path(__file__).resolve().parents[1] / runner.PROFILE / "config.yaml").read_text())
    assert profile["rerun-incomplete"] is True and profile["max-checksum-file-size"] == "1GB"
    assert runner.with_profile(["--cores", "2", "-n"]) == ["--workflow-profile", runner.PROFILE, "--cores", "2", "-n"]
    for named in (["--workflow-profile", "workflow/profiles/slurm"], ["--profile=site"]):
        assert runner.with_profile(["-n", *named]) == ["-n", *named]


# --------------------------------------------------------------------------- interrupts

EPOCHS = 400
PROTOCOL = json.dumps({"model": "mlp", "model_args": {"hidden": [16]}, "batch_size": 64, "device": "cpu",
                       "checkpoint_every": 5, "variants": {"direct": {"epochs": EPOCHS}}})


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("toy")
    data = write_dataset(tmp / "toy.npz")
    return data, write_labels(tmp, data)


def _interrupt(cmd: list[str], ckpt: Path, sig: int) -> tuple[int, str]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while not (ckpt / "direct.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)
    assert proc.poll() is None, "training ended before it could be interrupted; make it longer"
    os.killpg(proc.pid, sig)                  # as Ctrl-C reaches every process of Snakemake's group
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_train_ends_with_one_line_saying_where(toy, tmp_path, sig, code):
    data, labels = toy
    ckpt = tmp_path / "ck"
    cmd = train_command(data, labels, "ce:0,ls:0.4", PROTOCOL, "--threads", "1",
                        "--out", str(tmp_path / "out"), "--checkpoint-dir", str(ckpt))
    rc, err = _interrupt(cmd, ckpt, sig)
    assert rc == code, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    last = err.strip().splitlines()[-1]
    m = re.fullmatch(rf"smoothbench train: interrupted \({sig.name}\) at epoch (\d+) of {EPOCHS} \(direct\) of the "
                     rf"setting toy-symmetric-0\.3; a rerun resumes from the last checkpoint \({re.escape(str(ckpt))}\)",
                     last)
    assert m, last
    epoch = int(m.group(1))
    saved = torch.load(ckpt / "direct.pt", weights_only=True)["done"]   # the last checkpoint, the engine's own record
    assert saved % 5 == 0 and saved < epoch <= EPOCHS
    assert not (tmp_path / "out" / "group.json").exists()
    assert not [p for p in (tmp_path / "out").rglob(".*.tmp*")]           # nothing half-written left
    # ... and the rerun does resume from that checkpoint
    resumed = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    line = resumed.stderr.readline()
    os.killpg(resumed.pid, signal.SIGKILL)                                # no need to train the rest here
    resumed.communicate()
    assert line.strip() == f"direct: resumed from epoch {saved}"


def test_other_steps_say_they_were_interrupted(tmp_path):
    """The one line of any other step (no epochs: its outputs are written whole or not at all)."""
    from smoothbench.cli import stops as interrupts

    assert interrupts.line("report", KeyboardInterrupt()) == \
        "interrupted (SIGINT); no half-written output is left: a rerun makes it"
    assert interrupts.line("collect", interrupts.Terminated()) == \
        "interrupted (SIGTERM); no half-written output is left: a rerun makes it"
    assert interrupts.line("train", KeyboardInterrupt(), str(tmp_path)) == \
        (f"interrupted (SIGINT) outside an epoch (reading the inputs or writing the results); no checkpoint yet "
         f"({tmp_path}): a rerun starts afresh")
    (tmp_path / ".direct.pt.x1y2z3w4.tmp.pt").write_bytes(b"")      # half of a first checkpoint is none
    assert interrupts.line("train", KeyboardInterrupt(), str(tmp_path)).endswith(": a rerun starts afresh")
    (tmp_path / "direct.pt").write_bytes(b"")
    assert interrupts.line("train", interrupts.Terminated(), str(tmp_path)) == \
        (f"interrupted (SIGTERM) outside an epoch (reading the inputs or writing the results); a rerun resumes "
         f"from the last checkpoint ({tmp_path})")


def test_an_interrupt_inside_a_phase_run_carries_where_it_stood(toy, tmp_path, monkeypatch):
    """The engine's record, read by the one line: an interrupt raised while epoch 3 of a warm-up
    variant's own phase (1 warm-up epoch + 4 epochs) trains says epoch 4 of 5 of that run; the
    same interrupt raised outside a run carries nothing."""
    from smoothbench.cli import stops
    from smoothbench.engine import phase, position, training as train
    from smoothbench.methods import parse_cells

    data, labels = toy
    proto = {"model": "mlp", "model_args": {"hidden": [8]}, "batch_size": 64, "device": "cpu",
             "variants": {"warm": {"epochs": 4, "warmup": {"epochs": 1}}}}
    real, seen = phase.PhaseRun._train_epoch, []

    def stop_at_third(run):
        seen.append((run.key, run.done))
        if run.phase == "main" and run.done == 2:
            raise stops.Terminated()
        return real(run)

    monkeypatch.setattr(phase.PhaseRun, "_train_epoch", stop_at_third)
    with pytest.raises(stops.Terminated) as info:
        train.train_group(str(data), str(labels), parse_cells("ce:0,ls:0.4"), proto, str(tmp_path / "out"),
                          checkpoint_dir=str(tmp_path / "ck"), progress=False)
    warmup_key = seen[0][0]
    assert warmup_key.startswith("warmup-") and seen[1:] == [("warm", 0), ("warm", 1), ("warm", 2)]
    assert position.of(info.value) == position.Position("toy-symmetric-0.3", "warm", 4, 5)
    assert stops.line("train", info.value, str(tmp_path / "ck")) == (
        f"interrupted (SIGTERM) at epoch 4 of 5 (warm) of the setting toy-symmetric-0.3; a rerun resumes from the "
        f"last checkpoint ({tmp_path / 'ck'})")
    assert position.of(stops.Terminated()) is None
