# One job per group: all its cells trained together (smoothbench train).


rule train:
    input:
        unpack(
            lambda wc: trusted_inputs(
                _trusted_train(wc),
                {"data": DATA.format(**wc), "labels": LABELS.format(**wc), "code": CODE["train"] + [SCHEMA]},
                [GROUP_JSON.format(**wc)],
            )
        ),
    output:
        GROUP_JSON,
    conda:
        SOFTWARE_ENV,
    log:
        "logs/train/{dataset}/{kind}-{rate}/seed{seed}.log",
    params:
        cells=lambda wc: group_of(wc).cells_spec,
        protocol=lambda wc: protocol_json(wc.dataset),
        out_dir=lambda wc, output: os.path.dirname(output[0]),
        checkpoint_dir=CHECKPOINTS,
    # CPU results are bit-reproducible for a fixed thread count: 1 by default (parallel
    # groups use the cores); `--set-threads train=N` changes it
    threads: 1
    # what a cluster job needs, from the study: a GPU exactly when the protocol trains on
    # CUDA (with CPUs and memory for it), else one CPU; kept here rather than in a profile,
    # where a command-line --set-resources would replace them
    resources:
        **TRAIN_RESOURCES,
    shell:
        "smoothbench train --data {input.data} --labels {input.labels} --cells {params.cells:q}"
        " --protocol {params.protocol:q} --out {params.out_dir:q}"
        " --checkpoint-dir {params.checkpoint_dir:q} --threads {threads} --no-progress > {log} 2>&1"


rule train_all:
    input:
        [g.group_json for g in GROUPS],
