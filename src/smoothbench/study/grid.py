"""The study grid: a validated study -> its groups, training jobs and cells.

A **group** is (dataset, noise kind, noise rate, seed) with its cells; a **job** trains every
group of a setting (dataset, noise kind, rate: all its seeds) as one stack. Used by the
Snakefile and the command line alike. Reading and validating a study is ``study``'s; its
public functions are grid's too, where callers have always found them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from .. import methods as registry
from ..core.vocabulary import TEST_CORRECT_FILE, Cell, group_id
from .params import annotation_files, deep_merge, family_of, load_params, method_grid, noise_grid, noise_rates, protocol_for, read_study, setting_method_grids, study_from_command_line, study_schema, typed, validate_params

# --------------------------------------------------------------------------- groups


@dataclass(frozen=True)
class Group:
    """One job: the cells that share dataset, noise and seed, trained together."""

    dataset: str
    noise_kind: str
    noise_rate: str  # canonical text (fmt_rate): '0.4', '0', or a CIFAR-N label set name
    seed: int
    cells: tuple[Cell, ...]
    results_dir: str = "results"
    variants: tuple[str, ...] = ("direct",)  # the protocol variants every cell is trained under

    @property
    def n_cells(self) -> int:
        return len(self.cells) * len(self.variants)

    @property
    def id(self) -> str:
        return group_id(self.dataset, self.noise_kind, self.noise_rate, self.seed)

    @property
    def rel_dir(self) -> str:
        return f"{self.dataset}/{self.noise_kind}-{self.noise_rate}/seed{self.seed}"

    @property
    def out_dir(self) -> str:
        return f"{self.results_dir}/{self.rel_dir}"

    @property
    def group_json(self) -> str:
        return f"{self.out_dir}/group.json"

    @property
    def test_correct(self) -> str:
        """The group's per-test-sample correctness, beside its group.json."""
        return f"{self.out_dir}/{TEST_CORRECT_FILE}"

    @property
    def data_path(self) -> str:
        return f"data/{self.dataset}.npz"

    @property
    def labels_path(self) -> str:
        return f"noisy/{self.dataset}/{self.noise_kind}-{self.noise_rate}-s{self.seed}.npz"

    @property
    def cells_spec(self) -> str:
        return registry.format_cells(self.cells)

    @property
    def setting(self) -> tuple[str, str, str]:
        return (self.dataset, self.noise_kind, self.noise_rate)


@dataclass(frozen=True)
class Job:
    """One training job: every group (seed) of a setting, trained as one stack."""

    groups: tuple[Group, ...]

    @property
    def dataset(self) -> str:
        return self.groups[0].dataset

    @property
    def noise_kind(self) -> str:
        return self.groups[0].noise_kind

    @property
    def noise_rate(self) -> str:
        return self.groups[0].noise_rate

    @property
    def id(self) -> str:
        return f"{self.dataset}-{self.noise_kind}-{self.noise_rate}"

    @property
    def checkpoint_dir(self) -> str:
        """The job's resume points, per study (keyed by its results folder): two studies of one
        setting in one clone (other methods, other output folders) keep their own."""
        return f"checkpoints/{folder_key(self.groups[0].results_dir)}/{self.dataset}/{self.noise_kind}-{self.noise_rate}"


def folder_key(folder: str) -> str:
    """An output folder as a relative path below another folder (``logs/``, ``checkpoints/``):
    its parts, ``..`` as ``__``, without a leading ``/``."""
    parts = [p if p != ".." else "__" for p in os.path.normpath(folder).split(os.sep) if p and p != "."]
    return "/".join(parts) or "_"


def expand_jobs(params: dict) -> list[Job]:
    """The training jobs of a validated study: one per setting (dataset, noise kind, rate), its
    groups in seed order."""
    by: dict[tuple, list[Group]] = {}
    for g in expand_groups(params):
        by.setdefault(g.setting, []).append(g)
    return [Job(tuple(gs)) for gs in by.values()]


def study_cells(params: dict, dataset: str, kind: str | None = None, rate: str | None = None) -> list[Cell]:
    """The cells of the groups of ``dataset`` (of its setting ``kind``, ``rate`` when given: with
    the cells ``setting_methods`` adds to it): its methods x settings, the defaults those of its
    family, in registry order."""
    family = family_of(params, dataset)
    grids = [method_grid(params, dataset)] + (setting_method_grids(params, dataset, kind, rate) if kind else [])
    return registry.sort_cells(c for grid_ in grids for name, items in grid_.items()
                               for c in registry.cells_of(name, items, family=family))


def expand_groups(params: dict) -> list[Group]:
    """Every group of a validated study: datasets x (noise kind, rate) x seeds, in params
    order. CIFAR-N label sets (kind ``human``) and label sets of your own (``annotations``)
    go only with the dataset they belong to."""
    results_dir = str((params.get("output") or {}).get("results_dir", "results"))
    groups = []
    for dataset in params["datasets"]:
        variants = tuple(protocol_for(params, dataset)["variants"])
        for kind, rate in noise_rates(params, dataset):
            cells = tuple(study_cells(params, dataset, kind, rate))
            for seed in params["seeds"]:
                groups.append(Group(dataset, kind, rate, int(seed), cells, results_dir, variants))
    return groups


def report_keys(params: dict) -> dict[tuple[str, str, str], set[str]]:
    """The (dataset, noise kind, protocol variant) triples of a study, sorted, each with the
    methods of its cells: what the reports are made of."""
    keys: dict[tuple[str, str, str], set[str]] = {}
    for g in expand_groups(params):
        for v in g.variants:
            keys.setdefault((g.dataset, g.noise_kind, v), set()).update(c.method for c in g.cells)
    return dict(sorted(keys.items()))


def report_shapes(params: dict) -> dict:
    """The (dataset, noise kind, protocol variant) triples of a study, sorted, each with its
    ``report.shape.Shape``: its methods, noise rates, seeds and whether its dataset's protocol
    holds out a split (what decides which report files there are)."""
    from ..report.shape import Shape

    rates: dict[tuple, set[str]] = {}
    for g in expand_groups(params):
        for v in g.variants:
            rates.setdefault((g.dataset, g.noise_kind, v), set()).add(g.noise_rate)
    return {key: Shape(frozenset(methods), len(rates[key]), len(params["seeds"]),
                       protocol_for(params, key[0])["val_fraction"] > 0)
            for key, methods in report_keys(params).items()}


def model_epochs(params: dict) -> int:
    """The study's training cost in model-epochs (one model, one pass over its training set):
    per group, each distinct warm-up once (as many models as its widest cell has) plus every
    variant's own phase for every model of every cell (peer cells twice: their second forward
    and backward pass). Evaluation passes are not counted."""
    total = 0
    for g in expand_groups(params):
        variants = protocol_for(params, g.dataset)["variants"].values()
        warmups = {json.dumps({k: v for k, v in var["warmup"].items() if k != "branch"}, sort_keys=True):
                   var["warmup"]["epochs"] for var in variants}
        methods = [registry.get(c.method) for c in g.cells]
        models = sum(m.models * (2 if m.peer else 1) for m in methods)
        total += max(m.models for m in methods) * sum(warmups.values()) + models * sum(var["epochs"] for var in variants)
    return total
