"""tools/gpu-check: its usage, its stage runner (a failed or timed-out stage is reported and
the next one runs; the budget skips what no longer fits; the report is rewritten after each
stage) and, slow, the whole check on the CPU with tiny sizes, as CI runs it."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

TOOL = Path(__file__).resolve().parents[1] / "tools" / "gpu-check"


def _tool():
    loader = importlib.machinery.SourceFileLoader("gpu_check", str(TOOL))
    spec = importlib.util.spec_from_loader("gpu_check", loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module            # its dataclasses look their module up while it loads
    loader.exec_module(module)
    return module


def _run(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def _summary(md: str) -> dict[str, str]:
    """stage -> status, from the report's summary table."""
    block = md.split("## Summary", 1)[1].split("\n## ", 1)[0]
    rows = {m.group(1): m.group(2) for m in re.finditer(r"(?m)^\| ([a-z-]+) \| ([a-z ]+) \|", block)}
    assert rows.pop("stage") == "status"         # the header
    return rows


def test_help_explains_every_stage_and_how_to_run_it():
    r = _run("--help")
    assert r.returncode == 0
    for stage in _tool().STAGES:
        assert re.search(rf"(?m)^  {re.escape(stage.name)}\s", r.stdout), stage.name
    assert "make wheels" in r.stdout and "--device cpu --tiny" in r.stdout


def test_usage_errors_are_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    r = subprocess.run([sys.executable, str(TOOL), "--device", "cpu"], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and r.stderr == "gpu-check: error: no folder for the report: give --out DIR or set $OUT\n"
    r = _run("--out", str(tmp_path), "--stages", "step,steps")
    assert r.returncode == 2 and r.stderr.startswith("gpu-check: error: unknown stage 'steps'; allowed: env, install,")
    assert len(r.stderr.splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: --device cuda would run the whole check")
def test_without_a_gpu_the_cuda_check_stops_at_once_and_says_so(tmp_path):
    r = _run("--budget", "60", env={"OUT": str(tmp_path)})
    assert r.returncode == 2
    assert r.stderr.startswith("gpu-check: error: --device cuda but torch sees no GPU; for a CPU smoke run: "
                               "tools/gpu-check --device cpu --tiny")
    assert _summary((tmp_path / "gpu-check.md").read_text())["env"] == "failed"


def test_a_failed_or_timed_out_stage_is_reported_and_the_next_ones_run(tmp_path):
    gc = _tool()
    chk = gc.Check("cpu", True, gc.Runner(tmp_path), tmp_path, deadline=time.monotonic() + 3600)
    child = tmp_path / "child.pid"

    def boom(chk, timeout):
        raise OSError("disk on fire |\n  twice")

    def hangs(chk, timeout):
        # a command whose child would outlive it: the timeout kills the whole process group
        ran = chk.runner.run(["sh", "-c", f"sleep 60 >/dev/null 2>&1 & echo $! > {child}; wait"], timeout)
        return gc.Result().fail("timed out", ran) if ran.rc is None else gc.Result()

    def fine(chk, timeout):
        return gc.Result(note="all good", body="a table")

    def late(chk, timeout):
        chk.deadline = time.monotonic()          # the budget is spent from here on
        return gc.Result(note="last one in")

    stages = [gc.Stage("a", "Stage A", 10, 10, boom), gc.Stage("b", "Stage B", 1, 1, hangs),
              gc.Stage("c", "Stage C", 10, 10, fine, alongside="b"),
              gc.Stage("f", "Stage F", 10, 10, fine, alongside="not-chosen"),   # runs on its own
              gc.Stage("d", "Stage D", 10, 10, late), gc.Stage("e", "Stage E", 10, 10, fine)]
    written = []
    results = gc.run_stages(chk, stages, {s.name: s.budget for s in stages},
                            lambda res: written.append(gc.render(chk, stages, res, ["--tiny"], time.monotonic())))
    statuses = {"a": "failed", "b": "failed", "c": "passed", "f": "passed", "d": "passed", "e": "skipped"}
    assert {n: r.status for n, r in results.items()} == statuses
    assert results["a"].note == "OSError: disk on fire |\n  twice"
    assert "timed out after" in results["b"].body
    assert results["e"].note.startswith("out of time")
    assert len(written) == 6                     # rewritten after every stage
    md = written[-1]
    assert _summary(md) == statuses
    assert "| a | failed | 0 | OSError: disk on fire \\| twice |" in md      # one line, one cell
    for title in ("Stage A", "Stage B", "Stage C", "Stage F", "Stage D", "Stage E"):
        assert f"\n## {title}\n" in md
    pid = int(child.read_text())
    for _ in range(100):                         # a guard against a hang, not a timing assertion
        state = Path(f"/proc/{pid}/stat")
        if not state.exists() or state.read_text().split(") ", 1)[1].startswith("Z"):
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the timed-out command's child {pid} still runs")


def test_a_fresh_copy_leaves_out_products_and_caches(tmp_path, monkeypatch):
    gc = _tool()
    repo = tmp_path / "repo"
    for rel in ("Snakefile", "src/smoothbench/x.py", "src/smoothbench/__pycache__/x.pyc", "src/smoothbench.egg-info/PKG",
                "reports/summary.json", "results/g.json", ".whl/a.whl", "expected/reports/summary.json",
                "tests/data/keep.txt"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text("x")
    monkeypatch.setattr(gc, "REPO", repo)
    gc._copy_tree(tmp_path / "copy")
    copied = sorted(p.relative_to(tmp_path / "copy").as_posix() for p in (tmp_path / "copy").rglob("*") if p.is_file())
    assert copied == ["Snakefile", "expected/reports/summary.json", "src/smoothbench/x.py", "tests/data/keep.txt"]


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_tiny_cpu_check_runs_every_stage_but_cost_and_none_fails(tmp_path):
    # every stage but cost, whose command tests/test_cost.py runs on a preset (its 54-model ResNet
    # stacks take minutes on a CPU without oneDNN; on the GPU machine they are the point)
    gc = _tool()
    stages = [s.name for s in gc.STAGES if s.name != "cost"]
    r = _run("--device", "cpu", "--tiny", "--out", str(tmp_path), "--stages", ",".join(stages),
             timeout=1450)                                                          # its own budget: 1200 s
    md = (tmp_path / "gpu-check.md").read_text()
    assert r.returncode == 0, r.stdout + r.stderr + md[:3000]
    assert _summary(md) == {name: "passed" for name in stages}
    ran = [s for s in gc.STAGES if s.name in stages]
    for stage in ran:
        assert f"\n## {stage.title}\n" in md
    sections = {t: md.split(f"\n## {t}\n", 1)[1].split("\n## ", 1)[0] for t in (s.title for s in ran)}
    step = sections["Training step: stacked vs loop, bf16 and fp32"]
    assert re.search(r"\| +resnet34 \| +stacked \| +bf16 \|", step) and re.search(r"\| +resnet34 \| +loop \| +fp32 \|", step)
    variants = sections["Alternatives to grouped convolutions"]
    assert re.search(r"\| +vmap \| +fp32 \| .*\| +yes \|", variants)
    assert re.search(r"\| +graphs \| +bf16 \| +2 \| +16 \| n/a on CPU \|", variants)
    assert re.search(r"is byte-identical to .*study-b/reports/ \((\d+) files\)",
                     sections["A tiny study twice: identical reports"])
    assert "stacked+compile" in sections["torch.compile"]
    print(r.stdout.strip())
