"""DVC takes any study the schema accepts that names its output folders: one that leaves out
every other key with a default, and one whose output folders are not results/ and reports/
(dvc.yaml's outputs are params.yaml's output.results_dir and output.reports_dir, DVC's
templating: moving them needs one `dvc repro`); one without them gets DVC's one line. A lock
made by `dvc repro` matches a fresh clone that runs the study (`make study`): nothing DVC
hashes holds a cache. And the commands docs/running.md gives to see what an experiment
changed do show it.

Slow: `dvc repro` in real clones.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from test_pipeline import (
    BIN,
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

# a study of the required keys (and a tiny protocol): every key with a default left out
MINIMAL = {"datasets": ["digits"], "noise": {"symmetric": [0.4]}, "methods": {"ce": [0.0], "ls": [0.4]},
           "seeds": [0], "protocol": copy.deepcopy(TINY_PARAMS["protocol"])}
LEFT_OUT = {"noise_options", "data", "dataset_noise", "dataset_methods", "dataset_files", "noise_seed", "output",
            "analysis", "setting_methods"}
# ... and with the output folders DVC's templating reads from params.yaml (it has no defaults)
WITH_OUTPUT = dict(MINIMAL, output={"results_dir": "results", "reports_dir": "reports"})


def test_the_minimal_study_leaves_out_every_key_with_a_default():
    assert set(grid.validate_params(MINIMAL)) - set(MINIMAL) == LEFT_OUT


def _lock_outs(repo: Path) -> set[str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {o["path"] for s in lock.values() for o in s.get("outs", [])}


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_dvc_repro_takes_any_valid_study_and_its_output_folders(tmp_path):
    repo = clone_repo(tmp_path / "repo", MINIMAL)
    # 0. no output folders: every dvc command stops with one line naming the key
    proc = run(repo, "dvc", "repro", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stdout + proc.stderr
    assert (proc.stdout + proc.stderr).strip().splitlines() == [
        "ERROR: failed to parse 'stages.train.outs' in 'dvc.yaml': Could not find 'output.results_dir'"]
    assert not (repo / "data").exists()

    # 1. every other key with a default left out: no "Parameters '...' are missing from 'params.yaml'"
    (repo / "params.yaml").write_text(yaml.safe_dump(WITH_OUTPUT, sort_keys=False))
    proc = run(repo, "dvc", "repro")
    assert _stages_run(proc) == ["data", "train", "report"]
    assert result_cells(repo / "reports" / "results.csv") == expected_cells(MINIMAL)
    assert {"results", "reports/results.csv", "reports/tables"} <= _lock_outs(repo)
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-q", "-m", "the minimal study")

    # 2. the lock matches a fresh clone that runs the study (issue 24.4): no cache, no editor
    #    file is part of what DVC hashes (.dvcignore), and the study's products are the same bytes
    fresh = tmp_path / "fresh"
    run(tmp_path, "git", "clone", "-q", str(repo), str(fresh))
    run(fresh, "make", "study", f"BIN={BIN}")
    assert list((fresh / "src" / "smoothbench" / "methods").glob("__pycache__/*.pyc"))   # what running leaves
    (fresh / "src" / "smoothbench" / "methods" / "gls.py~").write_text("an editor's backup\n")
    # nothing changed: no dependency, and every output is what the lock pins (only not yet in
    # this clone's DVC cache, which has none of them)
    status = json.loads(run(fresh, "dvc", "status", "--json").stdout)
    changes = {(stage, kind, state) for stage, entries in status.items() for entry in entries
               for kind, paths in entry.items() for state in paths.values()}
    assert changes == {(stage, "changed outs", "not in cache") for stage in ("data", "train", "report")}, status
    lock = (fresh / "dvc.lock").read_bytes()
    proc = run(fresh, "dvc", "repro")                     # stores them; Snakemake has nothing to do
    assert (proc.stdout + proc.stderr).count("Nothing to be done") == 3 and "rule " not in proc.stdout
    assert (fresh / "dvc.lock").read_bytes() == lock
    assert run(fresh, "dvc", "status").stdout.strip() == "Data and pipelines are up to date."

    # 3. other output folders (and another seed): ONE dvc repro trains into them and pins them
    study = dict(MINIMAL, seeds=[0, 1], output={"results_dir": "results-t", "reports_dir": "reports-t"})
    (repo / "params.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    proc = run(repo, "dvc", "repro")
    assert _stages_run(proc) == ["data", "train", "report"]
    assert result_cells(repo / "reports-t" / "results.csv") == expected_cells(study)
    outs = _lock_outs(repo)
    assert {"results-t", "reports-t/results.csv", "reports-t/tables", "reports-t/figures"} <= outs
    assert not {o for o in outs if o.split("/")[0] in ("results", "reports")}
    # ... and on every rerun: nothing to do, for DVC and for Snakemake
    proc = run(repo, "dvc", "repro")
    assert _stages_run(proc) == [] and "Data and pipelines are up to date" in proc.stdout
    assert nothing_to_do(run(repo, "snakemake", "-n"))

    # 4. what changed, as docs/running.md says to look at it: the seeds are there (a plain
    #    `dvc exp show --only-changed` drops them past the terminal's width, after the metrics)
    diff = run(repo, "dvc", "params", "diff").stdout.splitlines()
    assert diff[0].split() == ["Path", "Param", "HEAD", "workspace"]
    rows = {tuple(x.split(None, 2)[1:2]): x.split(None, 2)[2] for x in diff[1:] if x.strip()}
    assert rows[("seeds",)].split() == ["[0]", "[0,", "1]"]
    assert rows[("output.results_dir",)].split() == ["results", "results-t"]
    table = run(repo, "dvc", "exp", "show", "--only-changed", "--md").stdout.splitlines()
    header = [c.strip() for c in table[0].strip("|").split("|")]
    seeds = header.index("seeds")
    cells = {r.strip("|").split("|")[0].strip(): [c.strip() for c in r.strip("|").split("|")]
             for r in table[2:] if r.startswith("|")}
    assert cells["workspace"][seeds] == "[0, 1]"
    assert [v[seeds] for k, v in cells.items() if k != "workspace"] == ["[0]"]
    assert deleted_tracked_files(repo) == []
