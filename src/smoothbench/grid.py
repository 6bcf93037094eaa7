"""The study grid: params.yaml -> groups and cells, their ids and their seeds.

Used by the Snakefile (through ``smoothbench grid``-free imports in common.smk) and by
the command line alike, so both name cells and derive seeds the same way.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

METHODS = ("ce", "ls", "nls", "flip")


def derive_seed(*parts: object) -> int:
    """A seed in [0, 2**63) determined by ``parts`` (joined with '/' after ``str``)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def fmt_rate(rate: float | str) -> str:
    """Canonical text of a rate: ``0.2 -> '0.2'``, ``-1.0 -> '-1'``, names stay names."""
    if isinstance(rate, str):
        try:
            rate = float(rate)
        except ValueError:
            return rate
    return f"{float(rate):g}"


@dataclass(frozen=True, order=True)
class Cell:
    """One method at one rate inside a group. ``rate`` is r for ce/ls/nls, ε for flip."""

    method: str
    rate: float

    def __post_init__(self) -> None:
        check_method_rate(self.method, self.rate)

    @property
    def id(self) -> str:
        return f"{self.method}_{fmt_rate(self.rate)}"

    @property
    def smooth_rate(self) -> float:
        """The r passed to the GLS loss (flip cells train with plain CE on flipped labels)."""
        return 0.0 if self.method == "flip" else float(self.rate)

    @property
    def flip_rate(self) -> float:
        return float(self.rate) if self.method == "flip" else 0.0


def check_method_rate(method: str, rate: float) -> None:
    if method not in METHODS:
        raise ValueError(f"method {method!r} is unknown; allowed: {', '.join(METHODS)}")
    r = float(rate)
    if r != r:
        raise ValueError(f"rate of {method} is NaN")
    if method == "ce" and r != 0.0:
        raise ValueError(f"ce takes rate 0, got {rate}")
    if method == "ls" and not 0.0 < r <= 1.0:
        raise ValueError(f"ls rate must lie in (0, 1], got {rate}")
    if method == "nls" and not r < 0.0:
        raise ValueError(f"nls rate must be < 0, got {rate}")
    if method == "flip" and not 0.0 < r <= 1.0:
        raise ValueError(f"flip rate must lie in (0, 1], got {rate}")


def parse_cells(spec: str) -> list[Cell]:
    """``'ce:0,ls:0.2,nls:-0.4,flip:0.18'`` -> cells, sorted and without duplicates."""
    cells = set()
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        method, sep, rate = item.partition(":")
        if not sep:
            if method == "ce":
                rate = "0"
            else:
                raise ValueError(f"cell {item!r} needs METHOD:RATE, e.g. ls:0.2")
        try:
            value = float(rate)
        except ValueError:
            raise ValueError(f"cell {item!r}: rate {rate!r} is not a number") from None
        cells.add(Cell(method.strip(), value))
    if not cells:
        raise ValueError("the cells spec is empty; give e.g. 'ce:0,ls:0.2'")
    return sorted(cells, key=lambda c: (METHODS.index(c.method), c.rate))


def format_cells(cells: list[Cell]) -> str:
    return ",".join(f"{c.method}:{fmt_rate(c.rate)}" for c in cells)


def group_id(dataset: str, kind: str, rate: float | str, seed: int) -> str:
    return f"{dataset}-{kind}-{fmt_rate(rate)}-s{seed}"


# --------------------------------------------------------------------------- the study file
#
# params.yaml -> validated params (defaults filled) -> groups. The JSON schema in
# workflow/schemas/params.schema.yaml holds types, ranges, enums and defaults; the checks
# below hold what a schema cannot say. Every error is ONE line:
#     "<file>: <key path> = <value>: <what is allowed>"

SCHEMA_RELPATH = Path("workflow") / "schemas" / "params.schema.yaml"

NOISE_KINDS = ("symmetric", "pairflip", "asymmetric", "instance", "human")

# CIFAR-N label sets (kind "human") and the dataset each belongs to
HUMAN_LABEL_SETS = {
    "aggre": "cifar10",
    "random1": "cifar10",
    "random2": "cifar10",
    "random3": "cifar10",
    "worst": "cifar10",
    "noisy100": "cifar100",
}


def find_schema(start: str | Path | None = None) -> Path:
    """The params schema: ``workflow/schemas/params.schema.yaml`` in the first folder
    above ``start`` (default: this module) that has one, i.e. the repository root."""
    here = Path(start) if start is not None else Path(__file__)
    here = here.resolve()
    for folder in [here] + list(here.parents):
        candidate = folder / SCHEMA_RELPATH
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"params schema {SCHEMA_RELPATH} not found in any folder above {here}; "
        "smoothbench validates params from a source checkout (pip install -e .)"
    )


_SCHEMA_CACHE: dict[Path, dict] = {}


def load_schema(path: str | Path | None = None) -> dict:
    import yaml

    p = Path(path).resolve() if path is not None else find_schema()
    if p not in _SCHEMA_CACHE:
        with open(p, encoding="utf-8") as f:
            _SCHEMA_CACHE[p] = yaml.safe_load(f)
    return _SCHEMA_CACHE[p]


def load_params(path: str | Path, schema_path: str | Path | None = None) -> dict:
    """Read a study file (YAML), validate it and fill its defaults (see ``validate_params``)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such params file") from None
    try:
        params = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ValueError(f"{path}: not valid YAML{where}: {problem}") from None
    return validate_params(params, source=str(path), schema_path=schema_path)


def validate_params(params: Any, source: str = "params", schema_path: str | Path | None = None) -> dict:
    """Check a study against the schema and the rules the schema cannot express.

    Returns a deep copy with every default filled in. On the first problem raises
    ``ValueError`` with one line naming the file (``source``), the key path, the value
    and what is allowed, e.g. ``params.yaml: methods.ls[2] = 1.5: ls rates must lie in (0, 1]``.
    """
    import jsonschema

    if not isinstance(params, dict):
        raise ValueError(f"{source}: must hold a mapping of study keys (datasets, noise, methods, seeds, ...), "
                         f"got {type(params).__name__}")
    schema = load_schema(schema_path)
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema)
    errors = list(validator.iter_errors(params))
    if errors:
        raise ValueError(f"{source}: {_schema_error_text(_pick_error(errors), schema)}")
    out = copy.deepcopy(params)
    _fill_defaults(schema, out, schema)
    out["seeds"] = [int(s) for s in out["seeds"]]
    _semantic_checks(out, source, schema)
    return out


# ---------------------------------------------------------------- schema error messages


def _keypath(parts: Any) -> str:
    text = ""
    for p in parts:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else str(p))
    return text or "(top level)"


def _value_text(value: Any, limit: int = 60) -> str:
    try:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _pick_error(errors: list) -> Any:
    """The error to report: the first in document order, descending into anyOf/oneOf."""
    import jsonschema

    err = sorted(errors, key=lambda e: [str(p) for p in e.absolute_path])[0]
    while err.context and err.validator != "propertyNames":
        err = jsonschema.exceptions.best_match(err.context)
    return err


def _resolve(node: dict, root: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"params schema: only local $ref supported, got {ref}")
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        extra = {k: v for k, v in node.items() if k != "$ref"}
        node = {**target, **extra}
    return node


def _allowed_names(schema_node: dict, root: dict) -> list[str]:
    node = _resolve(schema_node, root)
    if "enum" in node:
        return [str(v) for v in node["enum"]]
    if "const" in node:
        return [str(node["const"])]
    names: list[str] = []
    for sub in node.get("anyOf", []) + node.get("oneOf", []):
        names += _allowed_names(sub, root)
    return names


def _schema_error_text(err: Any, root: dict) -> str:
    path = list(err.absolute_path)
    where = _keypath(path)
    schema = err.schema if isinstance(err.schema, dict) else {}
    v = err.validator
    if v == "additionalProperties" and isinstance(err.instance, dict):
        known = set(schema.get("properties", {}))
        unknown = sorted(k for k in err.instance if k not in known)
        allowed = ", ".join(sorted(known)) or "none"
        key = unknown[0] if unknown else "?"
        return f"{_keypath(path + [key])}: unknown key; allowed: {allowed}"
    if v == "propertyNames" or "propertyNames" in err.absolute_schema_path:
        # jsonschema reports the offending key as the instance, at the mapping's path
        names_schema = _resolve(err.validator_value, root) if v == "propertyNames" else _property_names_schema(err, root)
        names_schema = names_schema or {}
        key = err.instance
        if isinstance(key, dict):  # the mapping itself: find the first key the names schema rejects
            import jsonschema

            check = jsonschema.validators.validator_for(root)({**names_schema, "$defs": root.get("$defs", {})})
            key = next((k for k in key if not check.is_valid(k)), "?")
        if "pattern" in names_schema:
            return f"{_keypath(path + [str(key)])}: key {_value_text(key)} must match {names_schema['pattern']}"
        allowed = ", ".join(_allowed_names(names_schema, root))
        return f"{_keypath(path + [str(key)])}: unknown key" + (f"; allowed: {allowed}" if allowed else "")
    if v == "enum":
        return f"{where} = {_value_text(err.instance)}: allowed: {', '.join(str(x) for x in err.validator_value)}"
    if v == "const":
        return f"{where} = {_value_text(err.instance)}: allowed: {err.validator_value}"
    if v == "type":
        want = err.validator_value
        want = " or ".join(want) if isinstance(want, list) else want
        article = "an" if str(want)[:1] in "aeiou" else "a"
        return f"{where} = {_value_text(err.instance)}: must be {article} {want}"
    bounds = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
    if v in bounds:
        return f"{where} = {_value_text(err.instance)}: must be {bounds[v]} {err.validator_value}"
    if v == "required":
        missing = [k for k in err.validator_value if k not in (err.instance or {})]
        return f"{_keypath(path + [missing[0]]) if missing else where}: missing; this key is required"
    if v == "minLength":
        return f"{where} = {_value_text(err.instance)}: must not be empty"
    if v == "pattern":
        return f"{where} = {_value_text(err.instance)}: must match {err.validator_value}"
    return f"{where} = {_value_text(err.instance)}: {err.message}"


def _property_names_schema(err: Any, root: dict) -> dict | None:
    """The ``propertyNames`` schema of the mapping an error was raised in, if any."""
    node: Any = root
    for part in err.absolute_schema_path:
        node = _resolve(node, root) if isinstance(node, dict) else node
        if part == "propertyNames":
            return node.get("propertyNames")
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return None


# ---------------------------------------------------------------- defaults


def _fill_defaults(node: dict, instance: Any, root: dict) -> None:
    """Fill ``default`` values of missing keys, recursively along ``properties`` only
    (per-dataset protocol overrides, under ``additionalProperties``, stay partial)."""
    node = _resolve(node, root)
    if not isinstance(instance, dict):
        return
    for key, sub in node.get("properties", {}).items():
        sub_r = _resolve(sub, root)
        if key not in instance and "default" in sub_r:
            instance[key] = copy.deepcopy(sub_r["default"])
        if key in instance:
            _fill_defaults(sub_r, instance[key], root)


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
    root = load_schema(schema_path)
    protocols = params.get("protocol") or {}
    merged = deep_merge(protocols.get("default") or {}, protocols.get(dataset) or {})
    _fill_defaults(root["$defs"]["protocol"], merged, root)
    return merged


# ---------------------------------------------------------------- semantic checks


_GOT_SUFFIX = re.compile(r",? got .*$")


def _semantic_checks(p: dict, source: str, root: dict) -> None:
    def fail(where: str, value: Any, why: str) -> None:
        raise ValueError(f"{source}: {where} = {_value_text(value)}: {why}")

    all_datasets = ", ".join(root["$defs"]["dataset"]["enum"])
    if not p["datasets"]:
        fail("datasets", [], f"the grid is empty; list at least one of {all_datasets}")
    _no_duplicates(p["datasets"], "datasets", fail)
    if not p["seeds"]:
        fail("seeds", [], "the grid is empty; list at least one seed (an integer >= 0)")
    _no_duplicates(p["seeds"], "seeds", fail)

    # methods: rate ranges (grid.check_method_rate) and at least one cell
    ncells = 0
    for method, rates in p["methods"].items():
        for i, rate in enumerate(rates):
            try:
                check_method_rate(method, rate)
            except ValueError as exc:
                why = _GOT_SUFFIX.sub("", str(exc)).replace(f"{method} rate ", f"{method} rates ")
                fail(f"methods.{method}[{i}]", rate, why)
        _no_duplicates([fmt_rate(r) for r in rates], f"methods.{method}", fail, rates)
        ncells += len(rates)
    if ncells == 0:
        fail("methods", p["methods"], f"the grid is empty; give at least one rate to one of {', '.join(METHODS)}")

    # noise: rate ranges per kind, CIFAR-N label sets per dataset
    for kind, rates in p["noise"].items():
        if kind == "human":
            for i, name in enumerate(rates):
                owner = HUMAN_LABEL_SETS[name]
                if owner not in p["datasets"]:
                    sets = ", ".join(f"{k} ({d})" for k, d in HUMAN_LABEL_SETS.items())
                    fail(f"noise.human[{i}]", name, f"the label set {name} belongs to {owner}, which is not in "
                         f"datasets; human label sets: {sets}")
        else:
            from .noise import rate_range  # the noise module owns the valid ranges (noise imports grid)

            for i, rate in enumerate(rates):
                for ds in p["datasets"]:
                    k = _num_classes(ds)
                    low, high = rate_range(kind, k)
                    if math.isnan(rate) or not low <= rate < high:
                        fail(f"noise.{kind}[{i}]", rate, f"{kind} noise rates must lie in "
                             f"[{low:g}, {high:g}) for {ds} (K = {k} classes)")
        _no_duplicates([fmt_rate(r) for r in rates], f"noise.{kind}", fail, rates)
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

        if proto["epochs"] + proto["warmup"]["epochs"] < 1:
            fail(where("epochs"), proto["epochs"], "a group needs at least 1 epoch in all (warmup.epochs + epochs)")
        for prefix in ("", "warmup."):
            phase = proto["warmup"] if prefix else proto
            opt, sch = phase["optimizer"], phase["schedule"]
            if opt["nesterov"] and opt["momentum"] <= 0:
                key, value = f"{prefix}optimizer.momentum", opt["momentum"]
                if where(key).startswith("protocol.default.") and not where(
                        f"{prefix}optimizer.nesterov").startswith("protocol.default."):
                    key, value = f"{prefix}optimizer.nesterov", True
                fail(where(key), value, "nesterov needs momentum > 0; set nesterov: false or a momentum in (0, 1)")
            if sch["name"] == "multistep":
                ms = sch["milestones"]
                if not ms:
                    fail(where(f"{prefix}schedule.milestones"), ms, "multistep needs milestones "
                         "(increasing epochs at which the lr is multiplied by gamma), e.g. [40, 80]")
                if any(b <= a for a, b in zip(ms, ms[1:])):
                    fail(where(f"{prefix}schedule.milestones"), ms, "milestones must be strictly increasing")


def _num_classes(dataset: str) -> int:
    """K of a registered dataset (the schema has already checked that it is registered)."""
    from .data import get_spec

    return int(get_spec(dataset).num_classes)


def _no_duplicates(items: list, where: str, fail: Any, shown: list | None = None) -> None:
    seen: dict = {}
    for i, item in enumerate(items):
        if item in seen:
            fail(f"{where}[{i}]", (shown or items)[i], f"listed twice (also at {where}[{seen[item]}])")
        seen[item] = i


def _noise_rates(params: dict, dataset: str) -> list[tuple[str, str]]:
    """(kind, canonical rate) pairs that apply to ``dataset``, in params order."""
    out = []
    for kind, rates in params["noise"].items():
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
        return format_cells(list(self.cells))


def study_cells(params: dict) -> list[Cell]:
    """The cells of every group: methods x rates, in METHODS order then by rate."""
    cells = {Cell(method, float(rate)) for method, rates in params["methods"].items() for rate in rates}
    return sorted(cells, key=lambda c: (METHODS.index(c.method), c.rate))


def expand_groups(params: dict) -> list[Group]:
    """Every group of a validated study: datasets x (noise kind, rate) x seeds, in params
    order. CIFAR-N label sets (kind ``human``) go only with the dataset they belong to."""
    cells = tuple(study_cells(params))
    results_dir = str((params.get("output") or {}).get("results_dir", "results"))
    groups = []
    for dataset in params["datasets"]:
        for kind, rate in _noise_rates(params, dataset):
            for seed in params["seeds"]:
                groups.append(Group(dataset, kind, rate, int(seed), cells, results_dir))
    return groups


def report_pairs(params: dict) -> list[tuple[str, str]]:
    """The (dataset, noise kind) pairs of a study, sorted: what the reports are made of."""
    return sorted({(g.dataset, g.noise_kind) for g in expand_groups(params)})
