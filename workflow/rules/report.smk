# Collect every group into the tidy tables, then the paper-style reports.
# The report files (REPORT_FILES) are declared in common.smk.

rule collect:
    input:
        groups=[g.group_json for g in GROUPS],
        code=CODE["collect"],
    output:
        results=RESULTS_CSV,
        curves=CURVES_CSV,
    conda:
        SOFTWARE_ENV,
    log:
        COLLECT_LOG,
    shell:
        "smoothbench collect {input.groups} --out {output.results} --curves-out {output.curves} > {log} 2>&1"


rule report:
    input:
        results=RESULTS_CSV,
        curves=CURVES_CSV,
        code=CODE["report"],
    output:
        [report_output(f) for f in REPORT_FILES],
    conda:
        SOFTWARE_ENV,
    log:
        REPORT_LOG,
    params:
        out_dir=lambda wc, input: os.path.dirname(input.results),
    shell:
        "smoothbench report --results {input.results} --curves {input.curves} --out-dir {params.out_dir:q}"
        " > {log} 2>&1"


rule report_all:
    input:
        RESULTS_CSV,
        CURVES_CSV,
        REPORT_FILES,

