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
# After `git clone && dvc pull`, nothing reruns: see "provenance" in workflow/rules/common.smk.

include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


# Every product is a target, so that one that is missing (deleted, or set aside as unusable:
# see "product health" in common.smk) is made again even where what follows it is present.
rule all:
    default_target: True
    input:
        rules.data_all.input,
        rules.train_all.input,
        rules.report_all.input,


onsuccess:
    _reproduction_check()  # one line: reports/ against the committed copy expected/ (common.smk)
