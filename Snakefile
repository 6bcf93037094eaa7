# smoothbench: label smoothing (LS), negative label smoothing (NLS) and label flipping
# under label noise. The DAG of the study lives here; DVC (dvc.yaml) runs its targets.
#
#   snakemake --cores N                        the whole study in params.yaml (= report_all)
#   snakemake --cores N data_all | train_all   a part of it
#   snakemake --workflow-profile workflow/profiles/default --cores N
#                                              with the local profile (rerun triggers, keep-going)
#   snakemake --workflow-profile workflow/profiles/slurm --configfile config/paper-cifar10.yaml
#                                              a preset study on a SLURM cluster, a GPU per group
#   snakemake --report report.zip              the figures and tables as a Snakemake report
#
# The study is params.yaml, read by workflow/rules/common.smk (not by a `configfile:`
# directive, so that a YAML error is reported with its line and column). A --configfile is a
# complete study: it REPLACES params.yaml (it is not merged into it); --config KEY=VALUE
# overrides single keys (values read as YAML: seeds=[0] is a list of integers). The study is
# validated (schema + checks, smoothbench.study.grid) before any job; a bad value stops here with
# one line naming the file and the key.
# Rules call the `smoothbench` command line, never the library. Jobs log to logs/: logs/data,
# logs/noise, and per output folder logs/<results_dir>/train, logs/<reports_dir>/{collect,report}.log.
# Snakemake decides what reruns (its records in .snakemake/, read by Snakemake alone): a changed
# param, input or library module (each rule takes the code of its step as inputs) reruns what it
# affects. After `git clone`, `make pull` (smoothbench pull: dvc pull, then snakemake --touch
# when dvc status says the workspace is what dvc.lock pins) leaves nothing to rerun.
# `smoothbench check` reads every product and sets aside the ones that cannot be used.

include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


# Every product is a target, so that one that is missing (deleted, or set aside as unusable by
# `smoothbench check`) is made again even where what follows it is present.
rule all:
    default_target: True
    input:
        rules.data_all.input,
        rules.train_all.input,
        rules.report_all.input,


onstart:
    _before_the_first_job()  # a folder a missing product cannot be written into: one line (common.smk)


onsuccess:
    _reproduction_check()  # one line: reports/ against the committed copy expected/ (common.smk)
