# The study (params.yaml or a --configfile) -> validated params -> groups, cells, protocols.
# Everything here runs when the workflow is parsed; jobs only call the `smoothbench` CLI.

import json
import os
import shlex
import sys


# The workflow runs its own checkout's code (its src/), whatever else is importable (an
# install from another clone, a shared environment): the rules import it from there, and jobs
# call the `smoothbench` command installed beside the Python that runs Snakemake (so
# `.venv/bin/snakemake` works without activating the virtualenv) with that src/ first on
# PYTHONPATH.
_SRC = os.path.join(workflow.basedir, "src")
# (the prefix is formatted like a command: doubled braces are the shell's own)
shell.prefix(f"set -euo pipefail; export PATH={shlex.quote(os.path.dirname(sys.executable))}:\"$PATH\"; "
             "export PYTHONPATH=" + shlex.quote(_SRC) + "${{PYTHONPATH:+:$PYTHONPATH}}; ")
sys.path.insert(0, _SRC)
import smoothbench  # noqa: E402

if not os.path.realpath(smoothbench.__file__).startswith(os.path.realpath(_SRC) + os.sep):
    print(f"smoothbench: this workflow ({workflow.basedir}) found the smoothbench package of "
          f"{os.path.dirname(os.path.dirname(smoothbench.__file__))} instead of its own src/; "
          "run Snakemake from a Python where no other copy is imported first (e.g. this clone's .venv)",
          file=sys.stderr)
    sys.exit(1)
from smoothbench import noise as noise_kinds  # noqa: E402
from smoothbench.data import datasets as data, userfiles as userdata  # noqa: E402
from smoothbench.pipeline import integrity, steps  # noqa: E402
from smoothbench.study import grid  # noqa: E402


def _validated_study():
    """The study of this run (params.yaml, or the --configfile presets, with --config on top),
    validated; a bad value stops here with one line naming the file and key (no traceback)."""
    settings = workflow.config_settings
    try:
        raw, source = grid.study_from_command_line(
            os.path.relpath(os.path.join(workflow.basedir, "params.yaml")) if not settings.configfiles else None,
            [os.path.relpath(str(f)) for f in settings.configfiles], dict(settings.config or {}))
        source = source.replace(os.path.join(workflow.basedir, ""), "")
        return grid.validate_params(raw, source=source), source
    except (ValueError, FileNotFoundError) as exc:
        print(f"{exc}", file=sys.stderr)
        sys.exit(1)


STUDY, STUDY_SOURCE = _validated_study()
config.clear()
config.update(STUDY)  # what the rules see is the validated study, defaults filled in

GROUPS = grid.expand_groups(STUDY)
# one noise job and one train job per setting (dataset, noise kind, rate): all its seeds at once
JOBS = grid.expand_jobs(STUDY)
JOB_BY_WILDCARDS = {(j.dataset, j.noise_kind, j.noise_rate): j for j in JOBS}
SEEDS = list(STUDY["seeds"])
DATASETS = list(STUDY["datasets"])
RESULTS = STUDY["output"]["results_dir"].rstrip("/")
REPORTS = STUDY["output"]["reports_dir"].rstrip("/")
CACHE_DIR = STUDY["data"]["cache_dir"]
PROTOCOLS = {ds: grid.protocol_for(STUDY, ds) for ds in DATASETS}

# The library code each rule's command runs: every file of the subpackages of its step
# (smoothbench.pipeline.steps), as inputs, so that a changed module reruns the jobs that run it
# (the params schema, whose defaults the noise and train steps read, is core's).
CODE = {step: steps.code_files(step, workflow.basedir) for step in steps.STEP_CODE}

# file patterns (the wildcards are the group coordinates; rate is the canonical text)
DATA = "data/{dataset}.npz"
LABELS = "noisy/{dataset}/{kind}-{rate}-s{seed}.npz"
LABEL_STATS = "noisy/{dataset}/{kind}-{rate}-s{seed}.json"
GROUP_JSON = f"{RESULTS}/{{dataset}}/{{kind}}-{{rate}}/seed{{seed}}/group.json"
TEST_CORRECT = os.path.join(os.path.dirname(GROUP_JSON), grid.TEST_CORRECT_FILE)
# a setting's files, one per seed (patterns with the other wildcards left in)
SEED_LABELS = expand(LABELS, seed=SEEDS, allow_missing=True)
SEED_LABEL_STATS = expand(LABEL_STATS, seed=SEEDS, allow_missing=True)
SEED_GROUP_JSONS = expand(GROUP_JSON, seed=SEEDS, allow_missing=True)
SEED_TEST_CORRECT = expand(TEST_CORRECT, seed=SEEDS, allow_missing=True)
RESULTS_CSV = f"{REPORTS}/results.csv"
CURVES_CSV = f"{REPORTS}/curves.csv"
CORRECT_NPZ = f"{REPORTS}/{grid.TEST_CORRECT_FILE}"
CHOICES_CSV = f"{REPORTS}/choices.csv"


def _log_folder(folder):
    """logs/<a product folder>: the logs of the train, collect and report jobs of two studies in
    one clone (output.results_dir: results-b) stay apart. The data and noise jobs' products
    (data/, noisy/) are shared by every study of a clone, and so are their logs (logs/data, logs/noise)."""
    return os.path.join("logs", grid.folder_key(folder))


TRAIN_LOG = os.path.join(_log_folder(RESULTS), "train", "{dataset}", "{kind}-{rate}.log")
COLLECT_LOG = os.path.join(_log_folder(REPORTS), "collect.log")
CHOOSE_LOG = os.path.join(_log_folder(REPORTS), "choose.log")
REPORT_LOG = os.path.join(_log_folder(REPORTS), "report.log")

# The software of every job (used with --software-deployment-method conda only; by
# default jobs run in the current environment, `smoothbench` on PATH).
SOFTWARE_ENV = "../envs/smoothbench.yaml"


wildcard_constraints:
    dataset="|".join([*data.DATASETS, *STUDY["dataset_files"]]),
    kind="|".join(noise_kinds.names()),
    rate=r"[A-Za-z0-9][A-Za-z0-9.]*",
    seed=r"[0-9][0-9]*",


def job_of(wildcards):
    key = (wildcards.dataset, wildcards.kind, wildcards.rate)
    try:
        return JOB_BY_WILDCARDS[key]
    except KeyError:
        raise WorkflowError(
            f"setting {'-'.join(key)} is not in the study ({STUDY_SOURCE}); "
            f"its groups: `smoothbench grid {STUDY_SOURCE.split(',')[0].split(' ')[0]}`"
        ) from None


def protocol_json(dataset):
    """The complete protocol of a dataset as compact, key-sorted JSON. It is a param of
    the train jobs, so any change to it reruns that dataset's groups."""
    try:
        proto = PROTOCOLS[dataset]
    except KeyError:
        proto = grid.protocol_for(STUDY, dataset)
    return json.dumps(proto, sort_keys=True, separators=(",", ":"))


def noise_option_args(dataset, kind, rate=None):
    """`--option KEY=JSON` arguments of the noise step for one dataset and kind.
    noise_options.asymmetric.map is given per dataset, noise_options.annotations.files per
    label set (the job's rate: only its own file); other options apply to all."""
    options = noise_kinds.study_options(STUDY, dataset, kind)
    if kind == "annotations" and "files" in options:
        options["files"] = {name: f for name, f in options["files"].items() if name == rate}
    args = []
    for key in sorted(options):
        value = options[key]
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
        args.append(f"--option {shlex.quote(f'{key}={text}')}")
    return " ".join(args)


def dataset_file_inputs(dataset):
    """The files a dataset of your own is read from (every image of an image folder), so that
    a changed, added or removed file reruns its data job; none for a registered dataset."""
    entry = STUDY["dataset_files"].get(dataset)
    return userdata.input_files(entry["format"], entry["path"]) if entry else []


def dataset_file_args(dataset):
    """`--format F --path P` of the data step for a dataset of your own, else nothing."""
    entry = STUDY["dataset_files"].get(dataset)
    return f"--format {entry['format']} --path {shlex.quote(entry['path'])}" if entry else ""


def annotation_inputs(wc):
    """The annotation file of a noise job of kind annotations (its label set is the rate)."""
    entry = grid.annotation_files(STUDY).get(wc.rate) if wc.kind == "annotations" else None
    return [entry["path"]] if entry else []


def train_gpus(dataset):
    return 1 if PROTOCOLS.get(dataset, {}).get("device") == "cuda" else 0


# A CUDA job: one GPU with 8 CPUs and 32 GB, a day per seed of the setting (ResNet-34, 18
# stacked cells, 300 epochs in all); a CPU job: one CPU (its thread), 4 GB, two hours.
TRAIN_RESOURCES = {
    "gpu": lambda wc: train_gpus(wc.dataset),
    "cpus_per_gpu": lambda wc: 8 if train_gpus(wc.dataset) else 0,
    "mem_mb": lambda wc: 32000 if train_gpus(wc.dataset) else 4000,
    "runtime": lambda wc: 1440 * len(SEEDS) if train_gpus(wc.dataset) else 120,
}


# --------------------------------------------------------------------------- reports
#
# The report files are named by smoothbench.report.build.report_files for the study's
# (dataset, noise kind, variant) triples; the figures' and tables' registry entries say how
# `snakemake --report` shows them: a category (the figure's title), a subcategory (the
# setting) and labels, the last of them what the file shows (its entry's caption).

from smoothbench.report import build as _report
from smoothbench.report import figures as _figures
from smoothbench.report import table_files as _table_files

REPORT_KEYS = grid.report_shapes(STUDY)
REPORT_FILES = [f"{REPORTS}/{name}" for name in _report.report_files(REPORT_KEYS)]
# every figure's and table's file has the same caption; the "shows" label is its own
REPORT_CAPTION = "../report/caption.rst"


def _report_marks():
    """Report file -> (category, subcategory, labels) of the files `snakemake --report` shows:
    each figure's PNG, and the table files whose entry has a category."""
    marks = {}
    for key, shape in REPORT_KEYS.items():
        setting = " / ".join(key)
        for fig in _figures.figures_for(shape):
            marks[f"{REPORTS}/{fig.path(key, 'png')}"] = (
                fig.title, setting, {"figure": fig.title, "setting": setting, "shows": fig.caption})
    for entry in _table_files.table_files(REPORT_KEYS):
        if entry.category:
            marks[f"{REPORTS}/{entry.path}"] = (entry.category, None,
                                                {"file": os.path.basename(entry.path), "shows": entry.caption})
    return marks


REPORT_MARKS = _report_marks()


def report_output(path):
    """A report file, marked for `snakemake --report` when its registry entry says how to show it."""
    if path not in REPORT_MARKS:
        return path
    category, subcategory, labels = REPORT_MARKS[path]
    return report(path, caption=REPORT_CAPTION, category=category, subcategory=subcategory, labels=labels)


# --------------------------------------------------------------------------- reproduction check
#
# After every successful run that leaves the study's reports complete: one line saying
# whether reports/ is byte-identical to expected/ (the committed copy of the default
# study's reports), and which files differ if not. Another study is not compared. Snakemake
# calls onsuccess (Snakefile) after a run with jobs; a run with nothing to do says it through
# smoothbench's console (`smoothbench run`, make study: the logger plugin in
# src/snakemake_logger_plugin_smoothbench), which calls what is registered here.
EXPECTED = "expected"


def _reproduction_check():
    if not all(os.path.exists(f) for f in REPORT_FILES + [RESULTS_CSV, CURVES_CSV, CORRECT_NPZ, CHOICES_CSV]):
        return
    copy_params = os.path.join(EXPECTED, "params.yaml")
    if not os.path.exists(copy_params):
        print(f"reproduction check: no committed copy {EXPECTED}/ to compare {REPORTS}/ with")
        return
    try:
        same_study = grid.load_params(copy_params) == STUDY
    except (ValueError, FileNotFoundError):
        same_study = False
    if not same_study:
        print(f"reproduction check: {REPORTS}/ describes another study than {EXPECTED}/ "
              f"(the committed default study); nothing compared")
        return
    shell(f"smoothbench compare {shlex.quote(REPORTS)} {EXPECTED} || true")


import snakemake_logger_plugin_smoothbench as _console  # noqa: E402 (src/, beside smoothbench)

_console.at_nothing_to_do(_reproduction_check)


# --------------------------------------------------------------------------- before the first job
#
# A folder that a missing product has to be written into and cannot be (read-only, no
# permission): one line and stop, instead of Snakemake's traceback once the job is scheduled.
# (Snakemake calls onstart only in a run that has jobs to do, not in a dry run.) Products that
# are there but cannot be used are `smoothbench check`'s (smoothbench.pipeline.integrity).

def _before_the_first_job():
    line = integrity.unwritable(integrity.study_products(STUDY))
    if line:
        print(line, file=sys.stderr)
        sys.exit(1)
