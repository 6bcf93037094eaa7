"""The pipeline as users run it: the real `snakemake`, `dvc` and `make`, in a real `git clone`
of this repository with its committed files (plus the working tree's uncommitted changes, so
that the code under test is what runs).

The fast tests check that dvc.yaml agrees with the code and params.yaml. The slow ones
(`pytest -m slow tests/test_pipeline.py`) run the workflow on a tiny study: lint, dry run, a
full run, a changed params.yaml, a changed module, a bad study, and the DVC round trip
(repro, no-op repro, rebuilt reports without retraining, `dvc repro --dry` and `dvc pull`
on a fresh clone, push / clone / pull with nothing to redo, `dvc exp run -S` with another
study). test_study.py runs the default study and the paper presets from a fresh clone.
"""

from __future__ import annotations

import ast
import copy
import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from smoothbench.study import grid
from smoothbench.report import build as report
from test_layout import LAYERS, PKG, imported_modules

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the virtualenv's snakemake, dvc and smoothbench

TINY_PARAMS = {
    "datasets": ["digits"],
    "dataset_files": {},
    "dataset_methods": {},
    "noise": {"symmetric": [0.0, 0.4]},
    "methods": {"ce": [0.0], "ls": [0.4], "nls": [-0.4], "flip": [0.36]},
    "seeds": [0],
    "noise_seed": None,
    "dataset_noise": {},
    "noise_options": {},
    "protocol": {"default": {"model": "mlp", "model_args": {"hidden": [32]}, "batch_size": 128,
                             "variants": {"direct": {"epochs": 2}}, "checkpoint_every": 1, "device": "cpu"}},
    "data": {"cache_dir": "cache"},
    "output": {"results_dir": "results", "reports_dir": "reports"},
}

GIT_ENV = dict(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.org")


# --------------------------------------------------------------------------- helpers


def _exe(name: str) -> str:
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed")
    return found


def _env(repo: Path) -> dict:
    # a newcomer's shell: not the environment of the `make test` that may have started pytest
    # (a nested make prints "Entering directory" lines that a user typing `make pull` never sees),
    # and one that writes Python's bytecode caches (__pycache__ in the clone's src/) as Python does
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "PYTHONDONTWRITEBYTECODE")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(repo / "src")  # the clone's library, not the installed checkout's
    env["DVC_NO_ANALYTICS"] = "1"
    env.update(GIT_ENV)
    return env


def run(repo: Path, *args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    cmd = [_exe(args[0]) if args[0] in ("snakemake", "dvc") else args[0], *args[1:]]
    proc = subprocess.run(cmd, cwd=repo, env=_env(repo), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}")
    return proc


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, env={**os.environ, **GIT_ENV}, capture_output=True, text=True,
                          check=True).stdout


def clone_repo(dest: Path, params: dict | None = None) -> Path:
    """A real ``git clone`` of this repository, committed files included (expected/, dvc.lock,
    ...), with the working tree's uncommitted changes applied and committed in the clone (so
    that the clone runs the code under test); ``params`` (if given) committed as params.yaml."""
    _git(ROOT.parent, "clone", "-q", str(ROOT), str(dest))
    work = set(_git(ROOT, "ls-files", "--cached", "--others", "--exclude-standard").splitlines())
    for rel in sorted(set(_git(dest, "ls-files").splitlines()) - work):
        (dest / rel).unlink()
    for rel in sorted(work):
        src, target = ROOT / rel, dest / rel
        if src.is_file() and (not target.is_file() or target.read_bytes() != src.read_bytes()):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    if params is not None:
        (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _git(dest, "add", "-A")
    if _git(dest, "status", "--porcelain"):
        _git(dest, "commit", "-q", "-m", "work in progress under test")
    return dest


def deleted_tracked_files(repo: Path) -> list[str]:
    """Files git tracks that a run deleted (no run may delete one)."""
    return [line[3:] for line in _git(repo, "status", "--porcelain").splitlines() if line[:2].strip() == "D"]


def job_counts(dry_run_output: str) -> dict[str, int]:
    """The 'Job stats' table of `snakemake -n` as {rule: count}."""
    lines = dry_run_output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats"))
    counts = {}
    for line in lines[start + 3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        counts[m.group(1)] = int(m.group(2))
    counts.pop("total", None)
    return counts


def nothing_to_do(proc: subprocess.CompletedProcess) -> bool:
    return "Nothing to be done" in proc.stdout + proc.stderr


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def expected_cells(params: dict) -> list[tuple]:
    return sorted((g.dataset, g.noise_kind, g.noise_rate, str(g.seed), c.id)
                  for g in grid.expand_groups(grid.validate_params(params)) for c in g.cells)


def result_cells(path: Path) -> list[tuple]:
    with open(path, newline="") as f:
        return sorted((r["dataset"], r["noise_kind"], r["noise_rate"], r["seed"], r["cell_id"])
                      for r in csv.DictReader(f))


# --------------------------------------------------------------------------- fast: dvc.yaml


def dvc_stages(root: Path = ROOT) -> dict:
    """dvc.yaml's stages with `${output.X}` filled in from params.yaml, as DVC's templating does
    (params.yaml is its default variables file)."""
    output = yaml.safe_load((root / "params.yaml").read_text())["output"]
    text = (root / "dvc.yaml").read_text()
    for name, folder in output.items():
        text = text.replace("${output." + name + "}", folder)
    assert "${" not in text, "dvc.yaml uses a variable that params.yaml does not define"
    return yaml.safe_load(text)["stages"]


STAGE_RULES = {"data": ["data"], "train": ["data", "train"], "report": ["data", "train", "report"]}


def _rule_steps(rule: str) -> set[str]:
    """The `smoothbench` subcommands a rule file runs."""
    return set(re.findall(r"smoothbench (\w+)", (ROOT / "workflow" / "rules" / f"{rule}.smk").read_text()))


def _imported_subpackages(step: str) -> set[str]:
    """The library subpackages a `smoothbench` subcommand runs: its function's imports in
    cli/commands.py and everything those import, read from the source here (independently of
    smoothbench.pipeline.steps)."""
    cli_tree = ast.parse((PKG / "cli" / "commands.py").read_text())
    todo = []
    for fn in cli_tree.body:
        if isinstance(fn, ast.FunctionDef) and fn.name == f"_cmd_{step}":
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and node.level == 2:
                    todo += [node.module] if node.module else [a.name for a in node.names]
    assert todo, f"smoothbench {step} imports nothing of the library"
    seen: set[str] = set()
    while todo:
        sub = todo.pop().split(".")[0]
        if sub not in seen:
            seen.add(sub)
            for f in (PKG / sub).rglob("*.py"):
                todo += [m.split(".")[0] for m in imported_modules(f)]
    return seen


def test_each_step_takes_the_code_of_every_subpackage_it_runs():
    """The subpackages a step declares cover what its command imports; each is a folder of the
    library below the step's command line (no pipeline, study, bench or cli code)."""
    from smoothbench.pipeline import steps

    rules = set().union(*(_rule_steps(r) for r in STAGE_RULES["report"]))
    assert rules == set(steps.STEP_CODE)
    for step, subs in steps.STEP_CODE.items():
        missing = _imported_subpackages(step) - set(subs)
        assert not missing, f"step {step} runs {', '.join(sorted(missing))} too: add it to STEP_CODE"
        assert set(subs) <= set(LAYERS) - {"study", "pipeline", "bench", "cli"}, step


def test_the_direction_of_that_check_is_caught(monkeypatch):
    """A step that declares less than it imports is caught (a planted omission)."""
    from smoothbench.pipeline import steps

    monkeypatch.setitem(steps.STEP_CODE, "train", ("core", "data", "noise", "engine"))
    with pytest.raises(AssertionError, match="step train runs methods too"):
        test_each_step_takes_the_code_of_every_subpackage_it_runs()


@pytest.mark.parametrize("stage", ["data", "train", "report"])
def test_dvc_deps_are_the_subpackages_of_each_stage_s_steps(stage):
    """Each stage depends on the subpackages of its steps and of its upstream stages' steps (the
    rules' own code inputs, smoothbench.pipeline.steps), and on their rule files."""
    from smoothbench.pipeline import steps

    deps = dvc_stages()[stage]["deps"]
    listed = {Path(d).name for d in deps if d.startswith("src/smoothbench/")}
    derived = {sub for rule in STAGE_RULES[stage] for step in _rule_steps(rule) for sub in steps.STEP_CODE[step]}
    assert listed == derived, f"dvc.yaml stage {stage}: deps should list " + ", ".join(
        f"src/smoothbench/{m}" for m in sorted(derived))
    assert {d for d in deps if d.startswith("workflow/rules/")} == {f"workflow/rules/{r}.smk" for r in STAGE_RULES[stage]}


def test_a_step_s_code_files_are_the_checkout_s_files_of_its_subpackages(tmp_path):
    """What the rules take as code inputs is what git tracks below the step's subpackages:
    no cache, editor or hidden file (whose every change would rerun jobs); and DVC leaves the
    same names out of what it hashes (.dvcignore), so dvc.lock matches a clean checkout."""
    from smoothbench.pipeline import steps

    tracked = set(_git(ROOT, "ls-files", "--cached", "--others", "--exclude-standard", "src/smoothbench").splitlines())
    for step, subs in steps.STEP_CODE.items():
        expected = {f for f in tracked if f.split("/")[2] in subs}
        assert set(steps.code_files(step, ROOT)) == expected, step
    junk = ["methods/__pycache__/gls.cpython-311.pyc", "methods/gls.pyc", "methods/.gls.py.swp", "methods/gls.py~",
            "methods/.DS_Store"]
    assert not [j for j in junk if steps.is_code(Path(j))]
    assert steps.is_code(Path("report/references/wei2022.csv"))
    ignored = run(ROOT, "dvc", "check-ignore", *(f"src/smoothbench/{j}" for j in junk), check=False).stdout.split()
    assert ignored == [f"src/smoothbench/{j}" for j in junk]


def test_no_stage_depends_on_another_stages_outputs():
    """What lets `dvc repro --dry` run on a fresh clone, where no output exists yet."""
    stages = dvc_stages()
    outs = {next(iter(o)) if isinstance(o, dict) else o for s in stages.values()
            for key in ("outs", "metrics", "plots") for o in s.get(key, [])}
    for name, stage in stages.items():
        assert not set(stage["deps"]) & outs, name
        for key in ("outs", "metrics", "plots"):
            for o in stage.get(key, []):
                assert o[next(iter(o))].get("persist") is True, (name, o)   # Snakemake decides what reruns


def test_dvc_report_stage_names_folders_not_files():
    """The report stage's outputs hold for any study: folders for tables and figures."""
    stage = dvc_stages()["report"]
    declared = {next(iter(o)) if isinstance(o, dict) else o
                for key in ("outs", "metrics", "plots") for o in stage.get(key, [])}
    for study in (grid.load_params(ROOT / "params.yaml"), grid.validate_params(TINY_PARAMS)):
        reports = study["output"]["reports_dir"]
        files = [f"{reports}/{f}" for f in report.report_files(grid.report_keys(study))]
        for f in files + [f"{reports}/results.csv", f"{reports}/curves.csv"]:
            assert f in declared or any(f.startswith(d + "/") for d in declared), f"{f} is not a dvc output"
    assert {next(iter(p)) for p in stage["plots"]} == {"reports/figures"}


def test_dvc_deps_and_params_exist():
    stages = dvc_stages()
    outs = {next(iter(o)) if isinstance(o, dict) else o for s in stages.values() for o in s.get("outs", [])}
    assert outs
    for name, stage in stages.items():
        cmd = stage["cmd"].split(" && ")
        assert cmd[-1].startswith("snakemake ") and cmd[-1].endswith(f" {name}_all")
        for dep in stage.get("deps", []):
            assert dep in outs or (ROOT / dep).exists(), f"stage {name}: dep {dep} does not exist"
        # the whole params.yaml, no key list: a key left out for its default cannot be "missing"
        assert stage["params"] == [{"params.yaml": None}], f"stage {name}: params"
    # the stages whose outputs are the study's output folders name them from params.yaml (DVC's templating)
    raw = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    assert "vars" not in raw                                       # params.yaml is DVC's default variables file
    for name, stage in raw["stages"].items():
        named = [next(iter(o)) for key in ("outs", "metrics", "plots") for o in stage.get(key, [])]
        assert all(o.startswith(("${output.results_dir}", "${output.reports_dir}")) for o in named) == (name != "data")


def test_no_dvc_remote_is_committed():
    """A fresh clone has no remote to pull from: `dvc pull` says so in its first line; users
    add theirs once (`dvc remote add --local -d store PATH`)."""
    config = (ROOT / ".dvc" / "config").read_text()
    assert "remote" not in config


# --------------------------------------------------------------------------- slow: snakemake


@pytest.fixture(scope="module")
def smk_repo(tmp_path_factory):
    return clone_repo(tmp_path_factory.mktemp("smk") / "repo", TINY_PARAMS)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_lint_clean(smk_repo):
    proc = run(smk_repo, "snakemake", "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_dry_run_lists_the_jobs(smk_repo):
    proc = run(smk_repo, "snakemake", "-n")
    njobs = len(grid.expand_jobs(grid.validate_params(TINY_PARAMS)))   # one per setting, all its seeds
    assert job_counts(proc.stdout) == {"data": 1, "noise": njobs, "train": njobs, "collect": 1, "choose": 1,
                                       "report": 1, "all": 1}
    proc = run(smk_repo, "snakemake", "-n", "train_all")
    assert job_counts(proc.stdout) == {"data": 1, "noise": njobs, "train": njobs, "train_all": 1}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_documented_walltime_override_reaches_the_train_jobs(smk_repo):
    """docs/cluster.md: `--set-resources train:runtime=10h` gives every train job 600 minutes
    and leaves the rest of the rule's own resources (its GPU, its memory) as they are."""
    text = " ".join((ROOT / "docs" / "cluster.md").read_text().split())
    assert "--set-resources train:runtime=10h" in text and "`runtime=120` (two hours)" in text

    def train_resources(*args):
        """The resources of every train job of a dry run (its job blocks), tmpdir left out."""
        out, rule, found = run(smk_repo, "snakemake", "-n", "--forceall", *args).stdout, None, []
        for line in out.splitlines():
            match = re.fullmatch(r"(?:local)?rule (\w+):", line)
            rule = match.group(1) if match else rule
            if rule == "train" and line.startswith("    resources: "):
                found.append(re.sub(r"tmpdir=[^,]*, ", "", line.removeprefix("    resources: ")))
        assert len(found) == len(grid.expand_jobs(grid.validate_params(TINY_PARAMS))), out[-3000:]
        return set(found)

    assert train_resources() == {"gpu=0, cpus_per_gpu=0, runtime=120, mem_mb=4000, mem=4 GB, mem_mib=3815"}
    assert train_resources("--set-resources", "train:runtime=10h") == {
        "gpu=0, cpus_per_gpu=0, runtime=600, mem_mb=4000, mem=4 GB, mem_mib=3815"}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_invalid_study_fails_before_any_job_with_one_line(smk_repo):
    bad = dict(TINY_PARAMS, methods={"ce": [0.0], "ls": [1.5]})
    (smk_repo / "bad.yaml").write_text(yaml.safe_dump(bad))
    for args in (("-n",), ("--cores", "1")):
        proc = run(smk_repo, "snakemake", *args, "--configfile", "bad.yaml", check=False)
        assert proc.returncode != 0
        assert _error_lines(proc) == ["bad.yaml: methods.ls[0] = 1.5: must be <= 1"]
        assert "Job stats" not in proc.stdout
    # a key written twice: the workflow reads the study file as `smoothbench validate` does
    (smk_repo / "twice.yaml").write_text(yaml.safe_dump(TINY_PARAMS, sort_keys=False) + "seeds: [1]\n")
    proc = run(smk_repo, "snakemake", "-n", "--configfile", "twice.yaml", check=False)
    assert proc.returncode != 0
    lines = (smk_repo / "twice.yaml").read_text().splitlines()
    first = next(i for i, text in enumerate(lines, start=1) if text.startswith("seeds:"))
    assert _error_lines(proc) == [f"twice.yaml: seeds: written twice (line {first} and line {len(lines)}); a key "
                                  "may appear once in a mapping (YAML keeps only the last): keep one"]
    assert not (smk_repo / "data").exists()
    # params.yaml itself, changed on the command line
    proc = run(smk_repo, "snakemake", "-n", "--config", "seeds=[]", check=False)
    assert proc.returncode != 0
    assert _error_lines(proc) == [
        "params.yaml (with --config): seeds = []: the grid is empty; list at least one seed (an integer >= 0)"]
    # --config values are YAML: numbers are numbers
    proc = run(smk_repo, "snakemake", "-n", "-p", "--config", "seeds=[0, 3]", "noise_seed=2")
    assert job_counts(proc.stdout)["train"] == len(TINY_PARAMS["noise"]["symmetric"])   # a job per setting
    log = proc.stdout + proc.stderr
    assert "symmetric-0.4/seed3/group.json" in log and "--seed 0 3 --noise-seed 2" in log


def _error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    """stderr without Snakemake's own notice that command-line config was given."""
    return [line for line in proc.stderr.strip().splitlines()
            if not re.match(r"Config file \S+ is (extended|replaced) by additional config", line)]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_full_run_then_a_changed_study_then_a_changed_module(smk_repo):
    run(smk_repo, "snakemake", "--cores", "2")
    results = smk_repo / "reports" / "results.csv"
    got = result_cells(results)
    assert got == expected_cells(TINY_PARAMS)
    assert len(set(got)) == len(got)
    files = report.report_files(grid.report_shapes(grid.validate_params(TINY_PARAMS)))
    assert sorted(p.relative_to(smk_repo / "reports").as_posix() for p in (smk_repo / "reports").rglob("*")
                  if p.is_file()) == sorted(files + ["results.csv", "curves.csv", "choices.csv", "test_correct.npz"])
    assert not any((smk_repo / "checkpoints").rglob("*.pt"))  # removed once a group is complete
    assert nothing_to_do(run(smk_repo, "snakemake", "-n"))
    # a changed protocol reruns the train jobs (params trigger), and only what follows them
    changed = copy.deepcopy(TINY_PARAMS)
    changed["protocol"]["default"]["variants"]["direct"]["epochs"] = 3
    (smk_repo / "params.yaml").write_text(yaml.safe_dump(changed, sort_keys=False))
    counts = job_counts(run(smk_repo, "snakemake", "-n").stdout)
    assert counts.get("train") == len(grid.expand_jobs(grid.validate_params(TINY_PARAMS)))
    assert "data" not in counts and "noise" not in counts
    # a smaller study: only it is trained, and the reports describe it and nothing else
    smaller = dict(TINY_PARAMS, noise={"symmetric": [0.4]}, methods={"ce": [0.0], "nls": [-0.4]})
    (smk_repo / "params.yaml").write_text(yaml.safe_dump(smaller, sort_keys=False))
    run(smk_repo, "snakemake", "--cores", "2")
    assert result_cells(results) == expected_cells(smaller)
    summary = json.loads((smk_repo / "reports" / "summary.json").read_text())
    assert summary["cells"] == len(expected_cells(smaller))
    with open(smk_repo / "reports" / "tables" / "table_best.csv", newline="") as fh:
        assert {row["noise_rate"] for row in csv.DictReader(fh)} == {"0.4"}                 # noise 0 is gone
    # a changed library module reruns exactly the jobs that run it: a figure module is report/'s,
    # whose code the collect, choose and report steps run (smoothbench.pipeline.steps)
    (smk_repo / "src" / "smoothbench" / "report" / "figures" / "per_method.py").write_text(
        (smk_repo / "src" / "smoothbench" / "report" / "figures" / "per_method.py").read_text() + "\n# a change\n")
    assert job_counts(run(smk_repo, "snakemake", "-n").stdout) == {"collect": 1, "choose": 1, "report": 1, "all": 1}
    run(smk_repo, "snakemake", "--cores", "2")
    # ... and a new file in a subpackage (a method module, say) reruns every job whose step runs it
    (smk_repo / "src" / "smoothbench" / "methods" / "newloss.py").write_text('"""A new module."""\n')
    counts = job_counts(run(smk_repo, "snakemake", "-n").stdout)
    assert counts == {"train": 1, "collect": 1, "choose": 1, "report": 1, "all": 1}, counts
    (smk_repo / "src" / "smoothbench" / "methods" / "newloss.py").unlink()
    assert deleted_tracked_files(smk_repo) == []
    _git(smk_repo, "checkout", "-q", "--", "src", "params.yaml")


# --------------------------------------------------------------------------- slow: dvc


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory):
    return clone_repo(tmp_path_factory.mktemp("dvc") / "repo", TINY_PARAMS)


def _stages_run(proc: subprocess.CompletedProcess) -> list[str]:
    return re.findall(r"Running stage '(\w+)'", proc.stdout + proc.stderr)


def tree_md5s(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` (relative path) -> its md5."""
    return {p.relative_to(folder).as_posix(): md5(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_dvc_round_trip(dvc_repo, tmp_path):
    repo = dvc_repo
    # 0. a fresh clone: `dvc repro --dry` lists the stages; with no remote `make pull` says so in one line
    proc = run(repo, "dvc", "repro", "--dry")
    assert _stages_run(proc) == ["data", "train", "report"], proc.stdout + proc.stderr
    proc = run(repo, "make", "pull", f"BIN={BIN}", check=False)
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.splitlines()[:1] == [
        "smoothbench pull: error: no DVC remote is configured: add yours once (dvc remote add --local -d store PATH), "
        "or train with make study"]
    assert run(repo, "dvc", "pull", check=False).stderr.splitlines()[0] == "No remote provided and no default remote set."

    # 1. dvc repro runs the study through Snakemake
    proc = run(repo, "dvc", "repro")
    assert _stages_run(proc) == ["data", "train", "report"]
    assert result_cells(repo / "reports" / "results.csv") == expected_cells(TINY_PARAMS)
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-q", "-m", "run")

    # 2. nothing changed: nothing runs, for DVC and for Snakemake
    proc = run(repo, "dvc", "repro")
    assert _stages_run(proc) == [] and "Data and pipelines are up to date" in proc.stdout
    assert nothing_to_do(run(repo, "snakemake", "-n"))
    # ... also for the files larger than Snakemake's default checksum limit (1 MB; the default
    # study's curves.csv): dvc repro rewrote some outputs with fresh mtimes, and the local profile
    # (DVC's stages, make study) has Snakemake compare checksums up to 1 GB
    assert nothing_to_do(run(repo, "snakemake", "-n", "--workflow-profile", "workflow/profiles/default"))

    # 3. reports deleted: rebuilt byte-identical from results/, without retraining
    group_jsons = sorted((repo / "results").rglob("group.json"))
    mtimes = [p.stat().st_mtime_ns for p in group_jsons]
    before = tree_md5s(repo / "reports")
    shutil.rmtree(repo / "reports")
    proc = run(repo, "dvc", "repro")
    assert _stages_run(proc) == ["report"]
    assert [p.stat().st_mtime_ns for p in group_jsons] == mtimes
    assert tree_md5s(repo / "reports") == before
    assert run(repo, "git", "status", "--porcelain", "dvc.lock").stdout == ""

    # 4. artifacts replaced by DVC in this checkout (new mtimes, the same content: Snakemake's
    #    records of their checksums still hold): still nothing to redo
    for top in ("data", "noisy", "results"):
        shutil.rmtree(repo / top)
    run(repo, "dvc", "checkout")
    assert _stages_run(run(repo, "dvc", "repro")) == []
    assert nothing_to_do(run(repo, "snakemake", "-n"))
    # ... and with `smoothbench pull --checkout` (DVC's cache, no remote), Snakemake's records renewed
    for top in ("data", "noisy", "results"):
        shutil.rmtree(repo / top)
    proc = run(repo, str(BIN / "smoothbench"), "pull", "--checkout")
    assert proc.stdout.splitlines()[-1] == ("smoothbench pull: the workspace is what dvc.lock pins, and Snakemake's "
                                            "records now say so (snakemake --touch): nothing reruns")
    assert nothing_to_do(run(repo, "snakemake", "-n"))

    # 5. push, fresh clone, `make pull` (dvc pull, then Snakemake's own records of the pulled
    #    files): nothing to redo for DVC nor for Snakemake
    remote = tmp_path / "remote"
    run(repo, "dvc", "remote", "add", "--local", "-d", "store", str(remote))
    run(repo, "dvc", "push")
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    run(clone, "dvc", "remote", "add", "--local", "-d", "store", str(remote))
    proc = run(clone, "make", "pull", f"BIN={BIN}")
    assert proc.stdout.splitlines()[-1] == ("smoothbench pull: the workspace is what dvc.lock pins, and Snakemake's "
                                            "records now say so (snakemake --touch): nothing reruns")
    assert result_cells(clone / "reports" / "results.csv") == expected_cells(TINY_PARAMS)
    proc = run(clone, "dvc", "repro")
    assert _stages_run(proc) == [] and "Data and pipelines are up to date" in proc.stdout
    assert run(clone, "git", "status", "--porcelain").stdout == ""
    # mtimes are arbitrary (a copy, a checkout); make them as wrong as they can be (inputs newest)
    now = time.time()
    for i, top in enumerate(["reports", "results", "noisy", "data", "src", "workflow"]):
        for path in (clone / top).rglob("*"):
            os.utime(path, (now + 10 * i, now + 10 * i))
    proc = run(clone, "snakemake", "-n")
    assert nothing_to_do(proc), proc.stdout
    proc = run(clone, "snakemake", "-n", "--workflow-profile", "workflow/profiles/default")
    assert nothing_to_do(proc), proc.stdout
    # ... Snakemake's records are those of this study: a changed protocol reruns the train jobs
    counts = job_counts(run(clone, "snakemake", "-n", "--config",
                            "protocol={default: {variants: {direct: {epochs: 3}}}}").stdout)
    assert counts == {"train": len(TINY_PARAMS["noise"]["symmetric"]), "collect": 1, "choose": 1, "report": 1,
                      "all": 1}
    # ... a pulled file edited into another readable one is the user's: what depends on it reruns
    victim = sorted((clone / "results").rglob("group.json"))[0]
    pulled = victim.read_text()
    victim.write_text(pulled.replace('"seed": 0', '"seed": 0 '))
    counts = job_counts(run(clone, "snakemake", "-n").stdout)
    assert counts == {"collect": 1, "choose": 1, "report": 1, "all": 1}
    victim.write_text(pulled)
    # ... and another study is not the locked one: what it needs runs
    counts = job_counts(run(clone, "snakemake", "-n", "--config", "seeds=[0, 1]").stdout)
    assert counts["train"] == len(TINY_PARAMS["noise"]["symmetric"])
    # ... which `make pull` says, and marks nothing
    (clone / "params.yaml").write_text(yaml.safe_dump(dict(TINY_PARAMS, seeds=[0, 1]), sort_keys=False))
    proc = run(clone, "make", "pull", f"BIN={BIN}")
    assert proc.stdout.splitlines()[-1].startswith("smoothbench pull: the workspace is not what dvc.lock pins (")
    assert "changed deps params.yaml" in proc.stdout.splitlines()[-1]

    # 6. an experiment with another dataset list through DVC
    proc = run(repo, "dvc", "exp", "run", "-S", "datasets=[breast_cancer]", "-S", "noise.symmetric=[0.2]")
    assert "breast_cancer" in (repo / "reports" / "tables" / "tables.md").read_text()
    assert not any(p.name.startswith("fig_") and "_digits_" in p.name for p in (repo / "reports").rglob("*"))
    assert deleted_tracked_files(repo) == []
