# Collect every group into the tidy tables, make every choice in one place (choices.csv), then
# the paper-style reports. The report files (REPORT_FILES) are declared in common.smk.

rule collect:
    input:
        groups=[g.group_json for g in GROUPS],
        correct=[g.test_correct for g in GROUPS],
        code=CODE["collect"],
    output:
        results=RESULTS_CSV,
        curves=CURVES_CSV,
        correct=CORRECT_NPZ,
    conda:
        SOFTWARE_ENV,
    log:
        COLLECT_LOG,
    shell:
        "smoothbench collect {input.groups} --out {output.results} --curves-out {output.curves}"
        " --correct-out {output.correct} > {log} 2>&1"


rule choose:
    input:
        results=RESULTS_CSV,
        code=CODE["choose"],
    output:
        CHOICES_CSV,
    conda:
        SOFTWARE_ENV,
    log:
        CHOOSE_LOG,
    shell:
        "smoothbench choose --results {input.results} --out {output} > {log} 2>&1"


rule report:
    input:
        results=RESULTS_CSV,
        curves=CURVES_CSV,
        correct=CORRECT_NPZ,
        choices=CHOICES_CSV,
        code=CODE["report"],
    output:
        [report_output(f) for f in REPORT_FILES],
    conda:
        SOFTWARE_ENV,
    log:
        REPORT_LOG,
    params:
        out_dir=lambda wc, input: os.path.dirname(input.results),
        analysis=json.dumps(STUDY["analysis"], sort_keys=True, separators=(",", ":")),
    shell:
        "smoothbench report --results {input.results} --curves {input.curves} --choices {input.choices}"
        " --correct {input.correct} --analysis {params.analysis:q} --out-dir {params.out_dir:q} > {log} 2>&1"


rule report_all:
    input:
        RESULTS_CSV,
        CURVES_CSV,
        CORRECT_NPZ,
        CHOICES_CSV,
        REPORT_FILES,

