"""DVC takes any study the schema accepts: one that leaves out every key with a default, and
one whose output folders are not results/ and reports/ (dvc.yaml's outputs follow
output.results_dir and output.reports_dir through workflow/dvc-folders.yaml, which
`smoothbench dvc-folders` writes from the validated study). And the commands docs/running.md
gives to see what an experiment changed do show it.

The fast tests check the file and its command; the slow one runs `dvc repro` in a real clone.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_pipeline import (
    ROOT,
    TINY_PARAMS,
    _stages_run,
    clone_repo,
    deleted_tracked_files,
    expected_cells,
    nothing_to_do,
    result_cells,
    run,
)

from smoothbench.study import grid
from smoothbench.pipeline import provenance

# a study of the required keys (and a tiny protocol): every key with a default left out
MINIMAL = {"datasets": ["digits"], "noise": {"symmetric": [0.4]}, "methods": {"ce": [0.0], "ls": [0.4]},
           "seeds": [0], "protocol": copy.deepcopy(TINY_PARAMS["protocol"])}
LEFT_OUT = {"noise_options", "data", "dataset_noise", "dataset_methods", "dataset_files", "noise_seed", "output"}


def test_the_minimal_study_leaves_out_every_key_with_a_default():
    assert set(grid.validate_params(MINIMAL)) - set(MINIMAL) == LEFT_OUT


def test_the_committed_folders_are_the_default_study_s():
    committed = yaml.safe_load((ROOT / provenance.DVC_FOLDERS).read_text())["folders"]
    study = yaml.safe_load((ROOT / "params.yaml").read_text())
    output = study.get("output") or {}
    assert committed == {"results": output.get("results_dir", "results"), "reports": output.get("reports_dir", "reports")}


def _dvc_folders(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smoothbench.cli", "dvc-folders", *args], cwd=cwd,
                          capture_output=True, text=True)


CHANGED = ("smoothbench dvc-folders: error: workflow/dvc-folders.yaml named results/ and reports/ as dvc.yaml's "
           "outputs, but params.yaml has output.results_dir results-t and output.reports_dir reports-t: rewritten "
           "for them; run dvc repro again (and commit workflow/dvc-folders.yaml)")


def _folders(cwd: Path) -> dict:
    return yaml.safe_load((cwd / provenance.DVC_FOLDERS).read_text())["folders"]


def test_dvc_folders_follow_the_study_and_the_check_fails_once_when_they_changed(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(MINIMAL))
    proc = _dvc_folders(tmp_path)                                       # written afresh, defaults filled
    assert proc.returncode == 0 and proc.stdout.splitlines() == [
        "workflow/dvc-folders.yaml: dvc.yaml's outputs are now results/ and reports/ (output.results_dir results "
        "and output.reports_dir reports); commit it"]
    assert _folders(tmp_path) == {"results": "results", "reports": "reports"}
    proc = _dvc_folders(tmp_path, "--check")                            # agrees: silent
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(
        dict(MINIMAL, output={"results_dir": "results-t", "reports_dir": "./reports-t/"})))
    proc = _dvc_folders(tmp_path, "--check")                            # changed: rewritten, one line, rc 2
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [CHANGED]
    assert _folders(tmp_path) == {"results": "results-t", "reports": "reports-t"}
    proc = _dvc_folders(tmp_path, "--check")
    assert (proc.returncode, proc.stderr) == (0, "")


@pytest.mark.parametrize("folder", ["/tmp/results", "../results", "."])
def test_a_folder_dvc_cannot_pin_is_one_line(tmp_path, folder):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(dict(MINIMAL, output={"results_dir": folder})))
    proc = _dvc_folders(tmp_path, "--check")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"smoothbench dvc-folders: error: params.yaml: output.results_dir = {folder}: DVC pins folders inside the "
        "repository only; give a relative folder such as results"]
    assert not (tmp_path / provenance.DVC_FOLDERS).exists()


def _lock_outs(repo: Path) -> set[str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {o["path"] for s in lock.values() for o in s.get("outs", [])}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_dvc_repro_takes_any_valid_study_and_its_output_folders(tmp_path):
    repo = clone_repo(tmp_path / "repo", MINIMAL)
    # 1. every key with a default left out: no "Parameters '...' are missing from 'params.yaml'"
    proc = run(repo, "dvc", "repro")
    assert _stages_run(proc) == ["data", "train", "report"]
    assert result_cells(repo / "reports" / "results.csv") == expected_cells(MINIMAL)
    assert {"results", "reports/results.csv", "reports/tables"} <= _lock_outs(repo)
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-q", "-m", "the minimal study")

    # 2. other output folders (and another seed): the first repro stops in one line before
    #    training, having pointed dvc.yaml's outputs at them; the next one pins them
    study = dict(MINIMAL, seeds=[0, 1], output={"results_dir": "results-t", "reports_dir": "reports-t"})
    (repo / "params.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    proc = run(repo, "dvc", "repro", check=False)
    assert proc.returncode != 0
    assert [x for x in (proc.stdout + proc.stderr).splitlines() if x.startswith("smoothbench")] == [CHANGED]
    assert not (repo / "results-t").exists() and "Traceback" not in proc.stdout + proc.stderr
    proc = run(repo, "dvc", "repro")
    assert _stages_run(proc) == ["train", "report"]
    assert result_cells(repo / "reports-t" / "results.csv") == expected_cells(study)
    outs = _lock_outs(repo)
    assert {"results-t", "reports-t/results.csv", "reports-t/tables", "reports-t/figures"} <= outs
    assert not {o for o in outs if o.split("/")[0] in ("results", "reports")}
    # ... and on every rerun: nothing to do, for DVC and for Snakemake
    proc = run(repo, "dvc", "repro")
    assert _stages_run(proc) == [] and "Data and pipelines are up to date" in proc.stdout
    assert nothing_to_do(run(repo, "snakemake", "-n"))

    # 3. what changed, as docs/running.md says to look at it: the seeds are there (a plain
    #    `dvc exp show --only-changed` drops them past the terminal's width, after the metrics)
    diff = run(repo, "dvc", "params", "diff").stdout.splitlines()
    assert diff[0].split() == ["Path", "Param", "HEAD", "workspace"]
    rows = {tuple(x.split(None, 2)[1:2]): x.split(None, 2)[2] for x in diff[1:] if x.strip()}
    assert rows[("seeds",)].split() == ["[0]", "[0,", "1]"]
    assert rows[("output.results_dir",)].split() == ["-", "results-t"]
    table = run(repo, "dvc", "exp", "show", "--only-changed", "--md").stdout.splitlines()
    header = [c.strip() for c in table[0].strip("|").split("|")]
    seeds = header.index("seeds")
    cells = {r.strip("|").split("|")[0].strip(): [c.strip() for c in r.strip("|").split("|")]
             for r in table[2:] if r.startswith("|")}
    assert cells["workspace"][seeds] == "[0, 1]"
    assert [v[seeds] for k, v in cells.items() if k != "workspace"] == ["[0]"]
    assert deleted_tracked_files(repo) == []
