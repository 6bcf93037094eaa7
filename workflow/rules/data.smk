# Datasets and noisy labels: data/{dataset}.npz, noisy/{dataset}/{kind}-{rate}-s{seed}.{npz,json}
# (one noise job per setting writes the labels of every seed)


rule data:
    input:
        code=CODE["data"],
        files=lambda wc: dataset_file_inputs(wc.dataset),
    output:
        DATA,
    conda:
        SOFTWARE_ENV,
    log:
        "logs/data/{dataset}.log",
    params:
        cache_dir=CACHE_DIR,
        files=lambda wc: dataset_file_args(wc.dataset),
    resources:
        mem_mb=8000,  # CIFAR: the raw batches and the canonical arrays side by side
        runtime=60,
    shell:
        "smoothbench data {wildcards.dataset} {params.files} --out {output} --cache-dir {params.cache_dir:q}"
        " > {log} 2>&1"


rule noise:
    input:
        data=DATA,
        code=CODE["noise"],
        annotations=annotation_inputs,
    output:
        labels=SEED_LABELS,
        stats=SEED_LABEL_STATS,
    conda:
        SOFTWARE_ENV,
    log:
        "logs/noise/{dataset}/{kind}-{rate}.log",
    params:
        options=lambda wc: noise_option_args(wc.dataset, wc.kind, wc.rate),
        noise_seed=lambda wc: "" if STUDY["noise_seed"] is None else f"--noise-seed {STUDY['noise_seed']}",
        seeds=" ".join(str(s) for s in SEEDS),
    shell:
        "smoothbench noise --data {input.data} --kind {wildcards.kind} --rate {wildcards.rate}"
        " --seed {params.seeds} {params.noise_seed} --out {output.labels} {params.options} > {log} 2>&1"


rule data_all:
    input:
        expand(DATA, dataset=DATASETS),
        [LABELS.format(dataset=g.dataset, kind=g.noise_kind, rate=g.noise_rate, seed=g.seed) for g in GROUPS],
        [LABEL_STATS.format(dataset=g.dataset, kind=g.noise_kind, rate=g.noise_rate, seed=g.seed) for g in GROUPS],
