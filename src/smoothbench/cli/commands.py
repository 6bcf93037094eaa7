"""The ``smoothbench`` command: one subcommand per pipeline step.

Each subcommand parses its arguments and calls one library function; the Snakefile
calls these subcommands, never the library directly. Heavy imports (torch, pandas)
happen inside the subcommand, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from pathlib import Path

from . import stops


def _cmd_data(args: argparse.Namespace) -> None:
    from .. import data
    from ..data import datasets

    if args.list:
        print(data.describe())
        return
    if not args.name or not args.out:
        raise ValueError("give a dataset NAME and --out FILE (or --list to see the registered datasets)")
    datasets.build_dataset(args.name, args.out, cache_dir=args.cache_dir, fmt=args.format, path=args.path)


def _parse_options(items: list[str]) -> dict:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--option {item!r} must be KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _cmd_noise(args: argparse.Namespace) -> None:
    from ..noise import labels as noise

    if len(args.seed) != len(args.out):
        raise ValueError(f"give one --out file per --seed ({len(args.seed)} seeds, {len(args.out)} --out)")
    for seed, out in zip(args.seed, args.out):
        noise.make_noisy_labels(args.data, args.kind, args.rate, seed, out, options=_parse_options(args.option),
                                noise_seed=args.noise_seed)


def _load_protocol(text: str) -> dict:
    """``--protocol`` is inline JSON or a path to a YAML/JSON file holding a mapping."""
    text = text.strip()
    if text.startswith("{"):
        return json.loads(text)
    path = Path(text)
    if not path.exists():
        raise ValueError(f"--protocol {text!r} is neither inline JSON nor an existing file")
    import yaml

    obj = yaml.safe_load(path.read_text())
    if not isinstance(obj, dict):
        raise ValueError(f"--protocol file {text} must hold a mapping")
    return obj


def _set_threads(n: int | None) -> None:
    if n is not None:
        if n < 1:
            raise ValueError(f"--threads must be >= 1, got {n}")
        import torch

        torch.set_num_threads(n)


def _dataset_family(data_path: str) -> str | None:
    """The family of the registered dataset a canonical file holds (None: a dataset of your own,
    or a file the engine will refuse with its own one-line error)."""
    import numpy as np

    from .. import data

    try:
        with np.load(data_path, allow_pickle=False) as z:
            name = str(z["name"])
    except Exception:
        return None
    return data.DATASETS[name].family if name in data.DATASETS else None


def _cmd_train(args: argparse.Namespace) -> None:
    from .. import data
    from ..engine import training as train
    from ..methods import parse_cells

    stops.die_with_parent()
    _set_threads(args.threads)
    if args.family is not None and args.family not in data.FAMILIES:
        raise ValueError(f"--family {args.family!r} is unknown; allowed: {', '.join(data.FAMILIES)}")
    if len(args.out) != len(args.labels):
        raise ValueError(f"give one --out folder per --labels file ({len(args.labels)} labels, {len(args.out)} --out)")
    protocol = _load_protocol(args.protocol)
    device, claim = _claim_device(args.device, protocol)
    try:
        train.train_setting(
            data_path=args.data,
            labels_paths=args.labels,
            cells=parse_cells(args.cells, args.family or _dataset_family(args.data)),
            protocol=protocol,
            out_dirs=args.out,
            checkpoint_dir=args.checkpoint_dir,
            device=device,
            progress=not args.no_progress,
            memory_budget_mib=args.memory_budget,
        )
    finally:
        if claim is not None:
            claim.release()


def _claim_device(requested: str, protocol: dict):
    """The device to train on: a CUDA job claims one physical GPU for its lifetime (the first
    free one, or the ``cuda:N`` asked for; it waits while they are held) and makes it the
    current device; the log says which, in one line. Returns (device for the engine, claim).

    The engine gets ``cuda`` (the current device), not ``cuda:N``: its checkpoints are keyed
    by the device it names, and a resumed job may well claim another GPU than the killed one.
    """
    from ..engine import gpus
    from ..engine.device import resolve_device
    from ..engine.protocol import Protocol

    if requested == "auto":
        requested = Protocol.from_dict(protocol).device
    dev = resolve_device(requested)
    if dev.type != "cuda":
        return requested, None
    _, claim = gpus.claim_cuda_device(dev)
    return "cuda", claim


def _cmd_methods(args: argparse.Namespace) -> None:
    from .. import methods

    print(methods.describe())


def _cmd_collect(args: argparse.Namespace) -> None:
    from ..report import collect

    collect.collect(args.groups, results_out=args.out, curves_out=args.curves_out, correct_out=args.correct_out)


def _cmd_choose(args: argparse.Namespace) -> None:
    from ..report import choices

    choices.write_choices(args.results, args.out)


def _cmd_report(args: argparse.Namespace) -> None:
    from ..report import build as report

    analysis = None
    if args.analysis is not None:
        try:
            analysis = json.loads(args.analysis)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--analysis {args.analysis!r}: not JSON ({exc.msg})") from None
        if not isinstance(analysis, dict):
            raise ValueError(f"--analysis {args.analysis!r}: must be a JSON object of params.yaml's analysis keys")
    report.build_reports(args.results, args.curves, args.out_dir, reference_dir=args.reference_dir,
                         choices_csv=args.choices, correct=args.correct, analysis=analysis)


def _cmd_sources(args: argparse.Namespace) -> None:
    from ..report import sources

    print(sources.sources(args.reports, args.fixed_noise, args.bootstrap), end="")


def _cmd_compare(args: argparse.Namespace) -> int:
    from ..report import build as report

    result = report.compare_reports(args.built, args.expected)
    print(report.comparison_line(result, args.built.rstrip("/"), args.expected.rstrip("/")))
    return 0 if not (result["differ"] or result["missing"] or result["extra"]) else 1


def _cmd_validate(args: argparse.Namespace) -> None:
    from ..study import grid

    params = grid.load_params(args.params)
    groups = grid.expand_groups(params)
    ncells = sum(g.n_cells for g in groups)
    variants = sorted({v for g in groups for v in g.variants})
    print(f"{args.params}: valid — {len(groups)} groups, {ncells} cells (variants: {', '.join(variants)}), "
          f"{grid.model_epochs(params)} model-epochs")


def _cmd_check(args: argparse.Namespace) -> int:
    from ..pipeline import integrity, runner
    from ..study import grid

    raw, source = grid.study_from_command_line("params.yaml", args.configfile or [],
                                               runner.config_overrides(args.config or []))
    study = grid.validate_params(raw, source=source)
    products = integrity.study_products(study)
    lines = integrity.check(products, integrity.product_folders(study), act=not args.dry_run,
                            analysis=study["analysis"])
    for line in lines:
        print(f"smoothbench check: {line}")
    present = sum(os.path.isfile(p) for p in products)
    if not lines:
        print(f"smoothbench check: the {present} products of {source} that are there are usable")
    elif not args.dry_run:
        print(f"smoothbench check: what is said above is in {integrity.SET_ASIDE}/ now; the next run (make study) "
              "makes it again, and what depends on it")
    return 1 if lines and args.dry_run else 0


def _cmd_pull(args: argparse.Namespace) -> int:
    from ..pipeline import runner

    return runner.pull(checkout=args.checkout)


def _cmd_grid(args: argparse.Namespace) -> None:
    from ..study import grid

    params = grid.load_params(args.params)
    for g in grid.expand_groups(params):
        print(f"{g.id}\t{','.join(g.variants)}\t{g.cells_spec}")


def _cmd_bench(args: argparse.Namespace) -> None:
    _set_threads(args.threads)
    if args.what == "loss":
        from ..bench import loss

        loss.bench_loss(device=args.device, repeats=args.repeats)
    elif args.what == "cost":
        import glob

        from ..bench import cost

        cost.cost_tables(args.presets or sorted(glob.glob("config/paper-*.yaml")), device=args.device,
                         images=args.images, tiny=args.quick)
    elif args.what == "train" and args.study is not None:
        from ..bench import study

        study.bench_study(args.study or None, setting=args.setting, seeds=args.seeds)
    elif args.what == "train":
        from ..bench import train

        train.bench_train(device=args.device, epochs=args.epochs, quick=args.quick, model_names=_names(args.models),
                          num_cells=args.cells, train_size=args.train_size)
    else:
        from ..bench import step

        step.bench_step(device=args.device, model_names=_names(args.models),
                        num_models=_ints(args.num_models, "--num-models"), batch=args.batch, steps=args.steps,
                        warmup=args.warmup, variants=_names(args.variants), quick=args.quick, compile_=args.compile,
                        fast_kernels=args.fast_kernels, precision=args.precision, repeatable=args.repeatable)


def _names(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _ints(text: str | None, flag: str) -> list[int] | None:
    try:
        return [int(t) for t in _names(text)] if text else None
    except ValueError:
        raise ValueError(f"{flag} {text!r}: allowed a comma-separated list of integers, e.g. 1,4,18") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="smoothbench",
        description=(
            "Benchmark label smoothing (LS), negative label smoothing (NLS) and label "
            "flipping under label noise. Each subcommand is one pipeline step; the "
            "Snakefile chains them (run `snakemake --cores N` for the whole study)."
        ),
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from .. import data, noise  # the registries: the data and noise commands' help lists them

    s = sub.add_parser("data", help="write a registered dataset, or one of your own files, as the canonical .npz",
                       description="Convert a registered dataset to the canonical .npz file. Embedded datasets "
                       f"({', '.join(data.embedded_names())}) need no network: they ship with installed "
                       "packages. The others are read from --cache-dir in their published on-disk format "
                       "(downloaded when online). `smoothbench data --list` shows every registered dataset "
                       "and where it comes from.")
    s.add_argument("name", nargs="?", help="dataset name (see `smoothbench data --list`)")
    s.add_argument("--out", help="output .npz path")
    s.add_argument("--list", action="store_true", help="list the registered datasets and exit")
    s.add_argument("--cache-dir", default="cache", help="folder for downloaded raw files (default: %(default)s)")
    s.add_argument("--format", default=None, metavar="npz|image_folder",
                   help="NAME is a dataset of your own files (not a registered name): an npz of arrays "
                   "or a folder of images per class (docs/formats.md, 'Your own data')")
    s.add_argument("--path", default=None, help="the .npz file or the image folder (with --format)")
    s.set_defaults(func=_cmd_data)

    s = sub.add_parser("noise", help="corrupt a dataset's training labels",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description=textwrap.fill(
                           "Corrupt the training labels of a dataset file with a noise kind at a rate, "
                           "deterministically from --seed. Writes the labels (.npz) and their realised statistics "
                           "(same path, .json). The noise kinds:", 79) + "\n\n" + "\n".join(
                           textwrap.fill(line, 79, subsequent_indent="    ") for line in noise.describe().splitlines()))
    s.add_argument("--data", required=True, help="dataset .npz written by `smoothbench data`")
    s.add_argument("--kind", required=True, help=", ".join(noise.names()))
    s.add_argument("--rate", required=True,
                   help="noise rate (its valid range depends on the kind and K); for "
                   f"{' and '.join(n for n in noise.names() if n not in noise.numeric_names())}: a label set's name")
    s.add_argument("--seed", type=int, required=True, nargs="+",
                   help="the study's seed(s) (each names a group; one labels file per seed)")
    s.add_argument("--noise-seed", type=int, default=None,
                   help="seed of the draw (default: --seed); the same value for every seed shares one draw")
    s.add_argument("--out", required=True, nargs="+",
                   help="output .npz path per seed, in --seed order (statistics go beside each as .json)")
    s.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="kind-specific option: " + noise.option_help())
    s.set_defaults(func=_cmd_noise)

    s = sub.add_parser("train", help="train every group of a setting together (one stack)",
                       description="Train every cell of every group of one setting (one dataset, noise kind and "
                       "rate; one group per seed, each with its own noisy labels) as one stacked computation: "
                       "the cells of a seed on the same batches, one loss call per step for every method. Writes "
                       "each group's outputs into its --out folder (give the --labels files and --out folders in "
                       "the same order). Resumes from the last checkpoint in --checkpoint-dir if there is one.")
    s.add_argument("--data", required=True, help="dataset .npz")
    s.add_argument("--labels", required=True, nargs="+", help="noisy-label .npz files from `smoothbench noise`, one per seed")
    s.add_argument("--cells", required=True,
                   help="cells spec: METHOD[:VALUE[:VALUE...]] items, e.g. 'ce:0,ls:0.2,sce:0.1:1,forward' "
                   "(values in the order of `smoothbench methods`; left out: the defaults of --family)")
    s.add_argument("--family", default=None,
                   help="dataset family whose literature values fill the parameters left out of --cells "
                   "(default: the registered dataset's own; for a dataset of your own, the methods' fallback values)")
    s.add_argument("--protocol", required=True, help="training protocol: inline JSON or a YAML/JSON file")
    s.add_argument("--out", required=True, nargs="+", help="output folder of each group, in --labels order")
    s.add_argument("--checkpoint-dir", default=None,
                   help="checkpoint folder (default: the first OUT/.checkpoint; removed once the setting is done)")
    s.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda or cuda:N")
    s.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice); results are bit-reproducible for a "
                   "fixed thread count, on any x86-64 CPU")
    s.add_argument("--memory-budget", type=float, default=None, metavar="MIB",
                   help="device memory the stacks may use (default: 90%% of the GPU's free memory; no limit on the "
                   "CPU; or the env SMOOTHBENCH_MEMORY_BUDGET_MIB); a larger stack trains in passes")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_train)

    s = sub.add_parser("methods", help="list the registered methods, their parameters and references",
                       description="Every method a cell can train with (the registry, smoothbench.methods): its "
                       "name (the key in params.yaml `methods:`), label, parameters with symbol, range, default "
                       "and meaning, the method it is compared against, and its reference.")
    s.set_defaults(func=_cmd_methods)

    s = sub.add_parser("collect", help="gather group.json files into the tidy results table",
                       description="Gather every cell of the given group.json files into one tidy CSV (one row "
                       "per cell), their per-epoch curves into another, and their per-test-sample correctness "
                       "(each group's test_correct.npz) into one array file.")
    s.add_argument("groups", nargs="+", help="group.json files written by `smoothbench train`")
    s.add_argument("--out", required=True, help="results CSV")
    s.add_argument("--curves-out", required=True, help="curves CSV (all cells, all epochs)")
    s.add_argument("--correct-out", default=None,
                   help="per-test-sample correctness (default: test_correct.npz beside the results CSV)")
    s.set_defaults(func=_cmd_collect)

    s = sub.add_parser("choose", help="every choice the report makes, from the results table (choices.csv)",
                       description="Make every choice of the report in one place: per setting, variant, method and "
                       "selection the chosen parameters (honest: by the mean held-out accuracy on the NOISY labels, "
                       "no test label), the chosen variant and the ranks. The tables, leaderboard, claims, findings "
                       "and figures read this table.")
    s.add_argument("--results", required=True, help="results CSV from `smoothbench collect`")
    s.add_argument("--out", required=True, help="choices CSV")
    s.set_defaults(func=_cmd_choose)

    s = sub.add_parser("report", help="paper-style tables, figures and summary from the results table",
                       description="Write Markdown/LaTeX/CSV tables, seaborn figures (PNG and SVG), findings.md and "
                       "summary.json from the tidy results, the choices table and the per-test-sample correctness.")
    s.add_argument("--results", required=True, help="results CSV from `smoothbench collect`")
    s.add_argument("--curves", required=True, help="curves CSV from `smoothbench collect`")
    s.add_argument("--choices", default=None, help="choices CSV from `smoothbench choose` (default: choices.csv "
                   "beside the results CSV)")
    s.add_argument("--correct", default=None, help="per-test-sample correctness from `smoothbench collect` "
                   "(default: test_correct.npz beside the results CSV)")
    s.add_argument("--analysis", default=None, metavar="JSON",
                   help="params.yaml's analysis keys as JSON (alpha, equivalence_margin, bootstrap, "
                   "collapse_points; left out: their defaults)")
    s.add_argument("--out-dir", required=True, help="reports folder")
    s.add_argument("--reference-dir", default=None, help="folder of published reference numbers (CSV)")
    s.set_defaults(func=_cmd_report)

    s = sub.add_parser("sources", help="where the uncertainty comes from: test sample, seeds, noise draw",
                       description="Split the standard error of the mean over seeds into its sources, per setting, "
                       "for CE's honest test accuracy and for NLS at its chosen rate minus CE: the test sample "
                       "(the same test set for every seed) and the seeds (all they draw); with the reports of the same "
                       "study run with noise_seed: N (--fixed-noise), the seeds' part is split into initialisation and "
                       "batch order, and the noise draw. Points; prints a Markdown table.")
    s.add_argument("reports", help="a reports folder (results.csv, curves.csv, choices.csv, test_correct.npz)")
    s.add_argument("--fixed-noise", default=None, metavar="REPORTS",
                   help="the reports of the same study with one noise draw for every seed (noise_seed: N)")
    s.add_argument("--bootstrap", type=int, default=2000, help="bootstrap replicates (default: %(default)s)")
    s.set_defaults(func=_cmd_sources)

    s = sub.add_parser("compare", help="compare built reports with a committed copy, byte for byte",
                       description="The reproduction check: compare every file of a report folder with a "
                       "committed copy of it (expected/ holds the default study's). Prints one line; exits "
                       "1 when a file differs, is missing or is extra, 2 when a folder is missing or holds no "
                       "report files.")
    s.add_argument("built", nargs="?", default="reports", help="the report folder (default: %(default)s)")
    s.add_argument("expected", nargs="?", default="expected", help="the committed copy (default: %(default)s)")
    s.set_defaults(func=_cmd_compare)

    # `smoothbench run ARGS` is handled before parsing (runner.py); listed here for --help
    sub.add_parser("run", help="snakemake ARGS, its --configfile and --config values checked first (make study)")

    s = sub.add_parser("validate", help="validate a params file against the schema",
                       description="Validate a study params file; print one line per error, naming the key.")
    s.add_argument("params", nargs="?", default="params.yaml")
    s.set_defaults(func=_cmd_validate)

    s = sub.add_parser("check", help="read every product of the study; set aside the unusable ones",
                       description="Product health: read every product of the study (params.yaml, or the "
                       "--configfile study with --config on top, as Snakemake takes them) with its jobs' readers; "
                       "move each one that cannot be used, and the temporary files of killed jobs, to set-aside/ "
                       "(one line each). The next run makes them again. Run it when no run is going on.")
    s.add_argument("--configfile", nargs="+", help="the study's file(s), as given to Snakemake")
    s.add_argument("--config", nargs="+", metavar="KEY=VALUE", help="study keys over it, as given to Snakemake")
    s.add_argument("-n", "--dry-run", action="store_true", help="say what is unusable, move nothing (exit 1 if any)")
    s.set_defaults(func=_cmd_check)

    s = sub.add_parser("pull", help="dvc pull, then Snakemake's records of the pulled products (make pull)",
                       description="dvc pull; then, when dvc status says the workspace is what dvc.lock pins, "
                       "snakemake --touch --forceall, so that Snakemake has its own records of the pulled products "
                       "and nothing reruns. With --checkout: dvc checkout (DVC's cache only) instead of dvc pull.")
    s.add_argument("--checkout", action="store_true", help="dvc checkout instead of dvc pull (no remote needed)")
    s.set_defaults(func=_cmd_pull)

    s = sub.add_parser("grid", help="list the groups and cells of a params file")
    s.add_argument("params", nargs="?", default="params.yaml")
    s.set_defaults(func=_cmd_grid)

    s = sub.add_parser("bench", help="benchmarks that print a table (loss core, training step, training engine)",
                       description="Speed benchmarks. `bench loss`: the vectorised GLS loss vs a Python loop over "
                       "models and vs explicit one-hot soft-target CE. `bench step`: one training step of M models "
                       "on CIFAR-shaped batches, stacked (grouped convolutions) vs a loop over separate models, "
                       "with peak memory and the fraction of the GPU's bf16 peak from counted FLOPs. "
                       "`bench train`: the group-vectorised engine vs one process per cell. `bench cost`: GPU-hours "
                       "of study files (the paper presets by default) from epoch times measured with the engine.")
    s.add_argument("what", choices=["loss", "step", "train", "cost"])
    s.add_argument("--device", default="auto",
                   help="auto, cpu or cuda (auto: CPU, plus CUDA when present; step: CUDA when present, else CPU)")
    s.add_argument("--repeats", type=int, default=20, help="timed repeats per configuration (loss)")
    s.add_argument("--epochs", type=int, default=3, help="epochs per run (train)")
    s.add_argument("--quick", action="store_true",
                   help="small configurations, a CPU smoke run (step: width 0.125, M=1,2, batch 16, 3 steps; "
                   "train: 4 cells, image models at width 0.125 on 1,024 images; cost: width 0.0625, 32 images)")
    s.add_argument("--models", default=None,
                   help="comma-separated models (step: fastnet,resnet18,resnet34 by default; train: mlp on the CPU, "
                   "mlp,fastnet,resnet18,resnet34 on CUDA)")
    s.add_argument("--num-models", default=None, metavar="M,M,...",
                   help="stack sizes M (step; default 1,4,18)")
    s.add_argument("--batch", type=int, default=None, help="batch size (step; default 128)")
    s.add_argument("--steps", type=int, default=None, help="timed steps per configuration (step; default 10)")
    s.add_argument("--warmup", type=int, default=None, help="untimed steps before them (step; default 3)")
    s.add_argument("--variants", default=None,
                   help="how the M models run (step; default stacked,loop): stacked (one stack, grouped "
                   "convolutions, the engine's layout: channels-last on CUDA, NCHW on the CPU), stacked-nchw, "
                   "stacked-nhwc (a forced layout), loop (M separate models), vmap (torch.func: one ordinary "
                   "model vmapped over stacked parameters), graphs (the stacked step as a CUDA graph; CUDA only)")
    s.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32", "both"],
                   help="step: bf16 autocast, fp32, or a row of each; auto as the engine: bf16 on CUDA, fp32 on "
                   "the CPU (default: %(default)s)")
    s.add_argument("--repeatable", action="store_true",
                   help="step: build each configuration twice more and say whether two steps give bit-identical "
                   "parameters (the engine's determinism)")
    s.add_argument("--compile", action="store_true", help="torch.compile every model (step)")
    s.add_argument("--fast-kernels", action="store_true",
                   help="cuDNN autotuning, TF32 and non-deterministic kernels instead of the engine's deterministic "
                   "settings (step): what determinism costs")
    s.add_argument("--cells", type=int, default=None, help="number of cells, the first N of the default 11 (train)")
    s.add_argument("--study", nargs="?", const="", default=None, metavar="FILE",
                   help="train: a study's training job (default FILE: the checkout's params.yaml) against one process "
                   "per group and one per cell, on the CPU")
    s.add_argument("--setting", default=None, metavar="DATASET/KIND/RATE",
                   help="train --study: the setting (default: the study's first)")
    s.add_argument("--seeds", type=int, default=3, help="train --study: its first N seeds (default %(default)s)")
    s.add_argument("--train-size", type=int, default=None,
                   help="CIFAR-shaped training images (train; default 20,000, quick 1,024)")
    s.add_argument("--presets", nargs="+", default=None, metavar="FILE",
                   help="study files to cost (cost; default config/paper-*.yaml)")
    s.add_argument("--images", type=int, default=None,
                   help="synthetic training images per measured epoch (cost; default 256, quick 32)")
    s.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    s.set_defaults(func=_cmd_bench)
    return p


# Bit-reproducible CPU training across x86-64 machines: MKL and ATen otherwise pick their
# kernels by the CPU (AVX-512 here, AVX2 there), and the last bits of every sum differ. MKL's
# one code path that every x86-64 CPU runs alike is COMPATIBLE (SSE2): it honours its AVX2 path
# on Intel CPUs only and silently takes its CPU-dependent AUTO path elsewhere (AMD's). ATen's
# own kernels are pinned to AVX2, which every x86-64 CPU of the last decade has. The engine
# switches oneDNN off on the CPU (engine.device.set_determinism).
REPRODUCIBLE_CPU = {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "avx2"}


def _reproducible_cpu() -> None:
    import os
    import platform

    if platform.machine().lower() in ("x86_64", "amd64") and "torch" not in sys.modules:
        for key, value in REPRODUCIBLE_CPU.items():
            os.environ.setdefault(key, value)


def main(argv: list[str] | None = None) -> int:
    _reproducible_cpu()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["run"]:   # everything after `run` is Snakemake's (its --help included)
        from ..pipeline.runner import run_snakemake

        return run_snakemake(argv[1:])
    args = build_parser().parse_args(argv)
    stops.catch()
    try:
        code = args.func(args)
    except (ValueError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"smoothbench {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except OSError as exc:  # read-only folder, full disk, ...: one line with the path and what to do
        print(f"smoothbench {args.command}: error: {stops.os_error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C (SIGINT) or SIGTERM: one line ends the log, no traceback
        return stops.report(args, exc)
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
