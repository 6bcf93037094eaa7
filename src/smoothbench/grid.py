"""The study grid: params.yaml -> validated study -> groups and their cells.

Used by the Snakefile (workflow/rules/common.smk) and by the command line alike, so
both see the same study. ``validate_params`` checks a study against the params schema
(``schema``) and the rules a schema cannot express (rate ranges per dataset, CIFAR-N
label sets, duplicates, an empty grid, the protocol rules of ``protocol.check_rules``).
Every error is ONE line: ``"<file>: <key path> = <value>: <what is allowed>"``.
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import methods as registry
from . import protocol as protocol_mod
from . import schema
from .cells import HUMAN_LABEL_SETS, NOISE_KINDS, Cell, fmt_rate, group_id
from .data import get_spec
from .noise import option_defaults, rate_range

def read_study(path: str | Path) -> Any:
    """A study file's YAML content, unvalidated; one-line errors with line and column."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such params file") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ValueError(f"{path}: not valid YAML{where}: {problem}") from None


def load_params(path: str | Path, schema_path: str | Path | None = None) -> dict:
    """Read a study file (YAML), validate it and fill its defaults (see ``validate_params``)."""
    return validate_params(read_study(path), source=str(path), schema_path=schema_path)


def typed(value: Any) -> Any:
    """A ``--config`` value as YAML would read it: Snakemake parses ``seeds=[0]`` into
    ``["0"]`` (strings inside lists and mappings); numbers, booleans and null come back."""
    import yaml

    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    if isinstance(value, str):
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        return parsed if parsed is None or isinstance(parsed, (bool, int, float)) else value
    return value


def study_from_command_line(params_file: str | Path, configfiles: list, overrides: dict) -> tuple[dict, str]:
    """The raw study of a Snakemake run: the ``--configfile`` files when given (each a
    whole study; later ones merged over earlier ones), else ``params_file``; then the
    ``--config KEY=VALUE`` overrides merged on top (typed as YAML). Returns (study, the
    source to name in errors)."""
    files = [Path(f) for f in configfiles] or [Path(params_file)]
    study: dict = {}
    for f in files:
        content = read_study(f)
        if content is not None and not isinstance(content, dict):
            raise ValueError(f"{f}: must hold a mapping of study keys (datasets, noise, methods, seeds, ...)")
        study = deep_merge(study, content or {})
    source = ", ".join(str(f) for f in files) + (" (with --config)" if overrides else "")
    return deep_merge(study, typed(overrides)), source


_STUDY_SCHEMAS: dict = {}


def study_schema(schema_path: str | Path | None = None) -> dict:
    """The whole params schema: the file's, with its method part generated from the registry."""
    key = str(schema_path)
    if key not in _STUDY_SCHEMAS:
        root = copy.deepcopy(schema.load_schema(schema_path))
        root["$defs"].update(registry.schema_defs())
        _STUDY_SCHEMAS[key] = root
    return _STUDY_SCHEMAS[key]


def validate_params(params: Any, source: str = "params", schema_path: str | Path | None = None) -> dict:
    """Check a study against the schema and the rules the schema cannot express.

    Returns a deep copy with every default filled in. On the first problem raises
    ``ValueError`` with one line naming the file (``source``), the key path, the value
    and what is allowed, e.g. ``params.yaml: methods.ls[2] = 1.5: ls rates must lie in (0, 1]``.
    """
    if not isinstance(params, dict):
        raise ValueError(f"{source}: must hold a mapping of study keys (datasets, noise, methods, seeds, ...), "
                         f"got {type(params).__name__}")
    root = study_schema(schema_path)
    schema.check(params, source, root=root)
    out = copy.deepcopy(params)
    schema.fill_defaults(root, out, root)
    out["seeds"] = [int(s) for s in out["seeds"]]
    _semantic_checks(out, source, root)
    return out

def deep_merge(base: dict, override: dict | None) -> dict:
    """A new dict: ``base`` with ``override`` merged in (mappings recursively, all else replaced)."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def protocol_for(params: dict, dataset: str, schema_path: str | Path | None = None) -> dict:
    """The complete training protocol of ``dataset``: ``protocol.default`` deep-merged with
    ``protocol.<dataset>``, every default filled in."""
    protocols = params.get("protocol") or {}
    merged = deep_merge(protocols.get("default") or {}, protocols.get(dataset) or {})
    return protocol_mod.complete(merged, schema.load_schema(schema_path))


# ---------------------------------------------------------------- semantic checks


_GOT_SUFFIX = re.compile(r",? got .*$")


def _semantic_checks(p: dict, source: str, root: dict) -> None:
    def fail(where: str, value: Any, why: str) -> None:
        raise ValueError(f"{source}: {where} = {schema.value_text(value)}: {why}")

    all_datasets = ", ".join(root["$defs"]["dataset"]["enum"])
    if not p["datasets"]:
        fail("datasets", [], f"the grid is empty; list at least one of {all_datasets}")
    _no_duplicates(p["datasets"], "datasets", fail)
    if not p["seeds"]:
        fail("seeds", [], "the grid is empty; list at least one seed (an integer >= 0)")
    _no_duplicates(p["seeds"], "seeds", fail)

    # methods: each setting through the registry, no duplicates, at least one cell per dataset
    for ds in p["dataset_methods"]:
        if ds not in p["datasets"]:
            fail(f"dataset_methods.{ds}", p["dataset_methods"][ds], f"{ds} is not in datasets ({', '.join(p['datasets'])})")
    grids = [("methods", p["methods"], [d for d in p["datasets"] if d not in p["dataset_methods"]])] + \
        [(f"dataset_methods.{ds}", g, [ds]) for ds, g in p["dataset_methods"].items()]
    for where_, method_grid, datasets in grids:
        _check_methods(where_, method_grid, datasets, fail)

    # noise: rate ranges per kind and dataset, CIFAR-N label sets per dataset
    for ds in p["dataset_noise"]:
        if ds not in p["datasets"]:
            fail(f"dataset_noise.{ds}", p["dataset_noise"][ds], f"{ds} is not in datasets ({', '.join(p['datasets'])})")
    shared = [ds for ds in p["datasets"] if ds not in p["dataset_noise"]]
    grids = [("noise", p["noise"], shared)] + [(f"dataset_noise.{ds}", g, [ds]) for ds, g in p["dataset_noise"].items()]
    for where_, noise_grid, datasets in grids:
        _check_noise(p, where_, noise_grid, datasets, fail)
    if not any(_noise_rates(p, ds) for ds in p["datasets"]):
        fail("noise", p["noise"], "the grid is empty; give at least one rate to one of " + ", ".join(NOISE_KINDS))

    # protocols: what the schema cannot say, checked on every dataset's merged protocol
    for ds in [d for d in root["$defs"]["dataset"]["enum"] if d in p["datasets"] or d in p["protocol"]]:
        proto = protocol_for(p, ds)

        def where(key: str) -> str:
            """protocol.<ds>.<key> when the override sets it, else protocol.default.<key>."""
            node: Any = p["protocol"].get(ds) or {}
            for part in key.split("."):
                if not isinstance(node, dict) or part not in node:
                    return f"protocol.default.{key}"
                node = node[part]
            return f"protocol.{ds}.{key}"

        for key, value, why in protocol_mod.check_rules(proto):
            if key.endswith("optimizer.momentum"):
                # a nesterov set by this dataset's override over the default's momentum: name the override
                nesterov = key.replace("momentum", "nesterov")
                if where(key).startswith("protocol.default.") and not where(nesterov).startswith("protocol.default."):
                    key, value = nesterov, True
            fail(where(key), value, why)


def _check_methods(where: str, method_grid: dict, datasets: list[str], fail: Any) -> None:
    """One method grid: every setting valid for its method (and each dataset's K), no cell twice,
    at least one cell when a dataset uses it."""
    seen: dict[Cell, str] = {}
    for name, items in method_grid.items():
        for i, item in enumerate(items):
            at = f"{where}.{name}[{i}]"
            try:
                (c,) = registry.cells_of(name, [item], at)
            except ValueError as exc:
                fail(at, item, _GOT_SUFFIX.sub("", str(exc).split(": ", 1)[-1]))
            if c in seen:
                fail(at, item, f"the same cell as {seen[c]}")
            seen[c] = at
            check = registry.get(name).dataset_check
            for ds in datasets:
                why = check(c.values, _num_classes(ds)) if check else None
                if why:
                    fail(at, item, f"{why} on {ds}")
    if datasets and not seen:
        fail(where, method_grid, f"the grid is empty; give at least one setting to one of {', '.join(registry.names())}")


def _check_noise(p: dict, where: str, noise_grid: dict, datasets: list[str], fail: Any) -> None:
    """Rate ranges of one noise grid for the datasets it applies to, CIFAR-N label sets, pairs."""
    for kind, rates in noise_grid.items():
        if kind == "human":
            for i, name in enumerate(rates):
                owner = HUMAN_LABEL_SETS[name]
                if owner not in p["datasets"]:
                    sets = ", ".join(f"{k} ({d})" for k, d in HUMAN_LABEL_SETS.items())
                    fail(f"{where}.human[{i}]", name, f"the label set {name} belongs to {owner}, which is not in "
                         f"datasets; human label sets: {sets}")
        else:
            pairs = {**option_defaults("pairflip"), **(p["noise_options"].get("pairflip") or {})}["pairs"] \
                if kind == "pairflip" and rates else None
            for ds in datasets if pairs == "reference" else []:
                if _num_classes(ds) != 10:
                    fail("noise_options.pairflip.pairs", pairs, f"the reference pairs are for K = 10 classes; "
                         f"{ds} has K = {_num_classes(ds)}: set noise_options.pairflip.pairs: cyclic")
            for i, rate in enumerate(rates):
                for ds in datasets:
                    k = _num_classes(ds)
                    low, high = rate_range(kind, k)
                    if math.isnan(rate) or not low <= rate < high:
                        fail(f"{where}.{kind}[{i}]", rate, f"{kind} noise rates must lie in "
                             f"[{low:g}, {high:g}) for {ds} (K = {k} classes)")
        _no_duplicates([fmt_rate(r) for r in rates], f"{where}.{kind}", fail, rates)


def _num_classes(dataset: str) -> int:
    """K of a registered dataset (the schema has already checked that it is registered)."""
    return int(get_spec(dataset).num_classes)


def _no_duplicates(items: list, where: str, fail: Any, shown: list | None = None) -> None:
    seen: dict = {}
    for i, item in enumerate(items):
        if item in seen:
            fail(f"{where}[{i}]", (shown or items)[i], f"listed twice (also at {where}[{seen[item]}])")
        seen[item] = i


def noise_grid(params: dict, dataset: str) -> dict:
    """The noise grid (kind -> rates) of ``dataset``: its own in dataset_noise, else ``noise``."""
    return (params.get("dataset_noise") or {}).get(dataset, params["noise"])


def _noise_rates(params: dict, dataset: str) -> list[tuple[str, str]]:
    """(kind, canonical rate) pairs that apply to ``dataset``, in params order."""
    out = []
    for kind, rates in noise_grid(params, dataset).items():
        for rate in rates:
            if kind == "human" and HUMAN_LABEL_SETS.get(rate) != dataset:
                continue
            out.append((kind, fmt_rate(rate)))
    return out


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
    def checkpoint_dir(self) -> str:
        return f"checkpoints/{self.rel_dir}"

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
        return f"checkpoints/{self.dataset}/{self.noise_kind}-{self.noise_rate}"


def expand_jobs(params: dict) -> list[Job]:
    """The training jobs of a validated study: one per setting (dataset, noise kind, rate), its
    groups in seed order."""
    by: dict[tuple, list[Group]] = {}
    for g in expand_groups(params):
        by.setdefault(g.setting, []).append(g)
    return [Job(tuple(gs)) for gs in by.values()]


def method_grid(params: dict, dataset: str) -> dict:
    """The method grid (method -> settings) of ``dataset``: its own in dataset_methods, else ``methods``."""
    return (params.get("dataset_methods") or {}).get(dataset, params["methods"])


def study_cells(params: dict, dataset: str) -> list[Cell]:
    """The cells of every group of ``dataset``: its methods x settings, in registry order."""
    return registry.sort_cells(c for name, items in method_grid(params, dataset).items()
                               for c in registry.cells_of(name, items))


def expand_groups(params: dict) -> list[Group]:
    """Every group of a validated study: datasets x (noise kind, rate) x seeds, in params
    order. CIFAR-N label sets (kind ``human``) go only with the dataset they belong to."""
    results_dir = str((params.get("output") or {}).get("results_dir", "results"))
    groups = []
    for dataset in params["datasets"]:
        cells = tuple(study_cells(params, dataset))
        variants = tuple(protocol_for(params, dataset)["variants"])
        for kind, rate in _noise_rates(params, dataset):
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


def model_epochs(params: dict) -> int:
    """The study's training cost in model-epochs (one model, one pass over its training set):
    per group, each distinct warm-up once (one model) plus every variant's own phase for
    every cell. Evaluation passes are not counted."""
    total = 0
    for g in expand_groups(params):
        variants = protocol_for(params, g.dataset)["variants"].values()
        warmups = {json.dumps({k: v for k, v in var["warmup"].items() if k != "branch"}, sort_keys=True):
                   var["warmup"]["epochs"] for var in variants}
        total += sum(warmups.values()) + len(g.cells) * sum(var["epochs"] for var in variants)
    return total
