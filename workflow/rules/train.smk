# One job per setting (dataset, noise kind, rate): every cell of every seed trained together as
# one stack (smoothbench train), each seed's outputs in its own group folder.


rule train:
    input:
        data=DATA,
        labels=SEED_LABELS,
        code=CODE["train"],
    output:
        SEED_GROUP_JSONS,
        SEED_TEST_CORRECT,
    conda:
        SOFTWARE_ENV,
    log:
        TRAIN_LOG,
    params:
        cells=lambda wc: job_of(wc).groups[0].cells_spec,
        protocol=lambda wc: protocol_json(wc.dataset),
        out_dirs=lambda wc, output: " ".join(shlex.quote(os.path.dirname(f)) for f in output[:len(SEEDS)]),
        checkpoint_dir=lambda wc: job_of(wc).checkpoint_dir,
    # CPU results are bit-reproducible for a fixed thread count: 1 by default (parallel
    # jobs use the cores); `--set-threads train=N` changes it
    threads: 1
    # what a cluster job needs, from the study: a GPU exactly when the protocol trains on
    # CUDA (with CPUs and memory for it), else one CPU; kept here rather than in a profile,
    # where a command-line --set-resources would replace them
    resources:
        **TRAIN_RESOURCES,
    shell:
        "smoothbench train --data {input.data} --labels {input.labels} --cells {params.cells:q}"
        " --protocol {params.protocol:q} --out {params.out_dirs}"
        " --checkpoint-dir {params.checkpoint_dir:q} --threads {threads} --no-progress > {log} 2>&1"


rule train_all:
    input:
        [g.group_json for g in GROUPS],
