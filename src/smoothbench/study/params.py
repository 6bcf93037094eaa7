"""A study: params.yaml (or --configfile files, with --config on top) -> a validated study.

Used by the Snakefile (workflow/rules/common.smk) and by the command line alike, so both
see the same study. ``read_study`` reads a study file strictly (a key written twice is an
error). ``validate_params`` checks a study against the params schema (the file's, with its
parts that name methods, models, datasets and noise kinds generated from their registries:
``study_schema``) and the rules a schema cannot express (rate ranges per dataset, the
methods' settings per dataset, CIFAR-N label sets, files of your own, duplicates, an empty
grid, the protocol rules of ``protocol.check_rules`` and each dataset's model arguments), and
what a job would otherwise find out late: each dataset's inputs against its model and
normalisation (``protocol.check_inputs``), each noise setting's transition matrix where it is
known before any job, and the methods that use it taking it. It fills the defaults. Every
error is ONE line: ``"<file>: <key path> = <value>: <what is allowed>"``. ``grid`` expands a
study into its groups, jobs and cells.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any, Hashable

from .. import data, methods as registry, noise
from ..data import datasets as data_files
from ..engine import models, protocol as protocol_mod
from ..core import schema
from ..data import userfiles as userdata
from ..core.vocabulary import Cell, fmt_rate
from ..noise.annotations import annotation_files

def read_study(path: str | Path) -> Any:
    """A study file's YAML content, unvalidated, read strictly: a key written twice in any
    mapping (nested ones included) is an error, not a silent "the last one wins". Every error
    is one line naming the file, with the line and column (both places for a key written twice).
    Every reader of a study file (the workflow, ``smoothbench validate/grid/run/check``, the
    presets' costs) reads it here."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such params file") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror})") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        twice = _key_written_twice(node, loader)
        if twice:
            key, (line1, col1), (line2, col2) = twice
            where = f"line {line1}, columns {col1} and {col2}" if line1 == line2 else f"line {line1} and line {line2}"
            raise ValueError(f"{path}: {key}: written twice ({where}); a key may appear once in a mapping (YAML "
                             "keeps only the last): keep one")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ValueError(f"{path}: not valid YAML{where}: {problem}") from None
    finally:
        loader.dispose()


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _key_written_twice(root: Any, loader: Any) -> tuple[str, tuple[int, int], tuple[int, int]] | None:
    """The first key (as a key path, e.g. ``methods.ls``) that a mapping of the YAML node tree
    ``root`` writes twice, with the (line, column) of both; None when every key is written once. Keys
    compare as YAML reads them (``0.2`` and ``0.20`` are one key); a merge (``<<: *anchor``) may
    override what it merges, as YAML allows."""
    import yaml

    walked: set[int] = set()

    def walk(node: Any, path: list[str]) -> tuple[str, tuple[int, int], tuple[int, int]] | None:
        if id(node) in walked:      # an alias of a node already walked
            return None
        walked.add(id(node))
        if isinstance(node, yaml.MappingNode):
            lines: dict = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key: Any = ("node", key_node.start_mark.index)     # a key that is not a scalar: itself only
                if isinstance(key_node, yaml.ScalarNode):
                    key = loader.construct_object(key_node, deep=True)
                    if not isinstance(key, Hashable):
                        key = ("node", key_node.start_mark.index)
                mark = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                if key in lines:
                    return ".".join([*path, str(key)]), lines[key], mark
                lines[key] = mark
                found = walk(value_node, [*path, str(key)])     # document order: what is inside it first
                if found:
                    return found
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                found = walk(item, [*path[:-1], f"{path[-1]}[{i}]"] if path else [f"[{i}]"])
                if found:
                    return found
        return None

    return walk(root, [])


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
    """The whole params schema: the file's, with its parts that name methods, models, datasets
    and noise kinds (their enums, the method and noise grids, the noise options) generated from
    the registries."""
    key = (str(schema_path), models.names(), tuple(data.DATASETS), tuple(noise.names()))
    if key not in _STUDY_SCHEMAS:
        root = copy.deepcopy(protocol_mod.schema_root(schema_path))
        root["$defs"].update(registry.schema_defs())
        root["$defs"].update(data.schema_defs())
        root["$defs"].update(noise.schema_defs())
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
    return protocol_mod.complete(merged, protocol_mod.schema_root(schema_path))


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
    clean_labels = _clean_labels_of(p)
    num_classes, input_shapes = _check_own_files(p, source, fail, clean_labels)

    # methods: each setting through the registry (its defaults those of each dataset's family), no
    # duplicates, at least one cell per dataset, a warm-up for the methods that estimate the noise from it
    for ds in p["dataset_methods"]:
        if ds not in p["datasets"]:
            fail(f"dataset_methods.{ds}", p["dataset_methods"][ds], f"{ds} is not in datasets ({', '.join(p['datasets'])})")
    grids = [("methods", p["methods"], [d for d in p["datasets"] if d not in p["dataset_methods"]])] + \
        [(f"dataset_methods.{ds}", g, [ds]) for ds, g in p["dataset_methods"].items()]
    for where_, method_grid, datasets in grids:
        _check_methods(p, where_, method_grid, datasets, fail, num_classes)

    # noise: rate ranges per kind and dataset, CIFAR-N label sets per dataset
    for ds in p["dataset_noise"]:
        if ds not in p["datasets"]:
            fail(f"dataset_noise.{ds}", p["dataset_noise"][ds], f"{ds} is not in datasets ({', '.join(p['datasets'])})")
    shared = [ds for ds in p["datasets"] if ds not in p["dataset_noise"]]
    grids = [("noise", p["noise"], shared)] + [(f"dataset_noise.{ds}", g, [ds]) for ds, g in p["dataset_noise"].items()]
    for where_, noise_grid, datasets in grids:
        _check_noise(p, where_, noise_grid, datasets, fail, num_classes, clean_labels)
    if not any(noise_rates(p, ds) for ds in p["datasets"]):
        fail("noise", p["noise"], "the grid is empty; give at least one rate to one of " + ", ".join(noise.names()))
    _check_setting_methods(p, fail, num_classes)

    # protocols: what the schema cannot say, checked on every dataset's merged protocol
    for ds in [d for d in [*root["$defs"]["dataset"]["enum"], *p["dataset_files"]]
               if d in p["datasets"] or d in p["protocol"]]:
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
        # the model's arguments: where this dataset's override names the model or its arguments, there
        owner = ds if {"model", "model_args"} & set(p["protocol"].get(ds) or {}) else "default"
        models.check_args(proto["model"], proto["model_args"], source, base=("protocol", owner, "model_args"))
        # what depends on the dataset's inputs: the model takes them, normalisation per channel
        for key, value, why in (protocol_mod.check_inputs(proto, input_shapes[ds]) if ds in input_shapes else ()):
            fail(where(key), value, f"for {ds}, {why}")


def _check_methods(p: dict, where: str, method_grid: dict, datasets: list[str], fail: Any,
                   num_classes: dict[str, int], seen: dict[Cell, str] | None = None) -> None:
    """One method grid: every setting valid for its method (with the defaults of each dataset's
    family, and each dataset's K, ``num_classes``), no cell twice (nor one of ``seen``), a
    protocol variant with a warm-up for a dataset whose grid has a method that estimates the
    noise, at least one cell when a dataset uses it."""
    for ds in datasets or [None]:
        found: dict[Cell, str] = dict(seen or {})
        family = family_of(p, ds) if ds is not None else None
        for name, items in method_grid.items():
            method = registry.get(name)
            for i, item in enumerate(items):
                at = f"{where}.{name}[{i}]"
                try:
                    (c,) = registry.cells_of(name, [item], at, family)
                except ValueError as exc:
                    fail(at, item, _GOT_SUFFIX.sub("", str(exc).split(": ", 1)[-1]))
                if c in found:
                    fail(at, item, f"the same cell as {found[c]}")
                found[c] = at
                why = method.dataset_check(c.values, num_classes[ds]) if method.dataset_check and ds else None
                if why:
                    fail(at, item, f"{why} on {ds}")
                if method.estimated and ds is not None:
                    variants = protocol_for(p, ds)["variants"]
                    if all(var["warmup"]["epochs"] == 0 for var in variants.values()):
                        fail(at, item, f"{name} estimates T from a CE warm-up model, and no protocol variant of {ds} "
                                       f"has a warm-up (warmup.epochs 0): give one a warm-up or drop {name}")
        if ds is not None and not found and seen is None:
            fail(where, method_grid, f"the grid is empty; give at least one setting to one of {', '.join(registry.names())}")


def _check_setting_methods(p: dict, fail: Any, num_classes: dict[str, int]) -> None:
    """setting_methods: each entry's dataset in the study, its noise settings among the dataset's,
    its cells valid on the dataset and none already in the dataset's grid (or an earlier entry's)."""
    for i, entry in enumerate(p["setting_methods"]):
        where, ds = f"setting_methods[{i}]", entry["dataset"]
        if ds not in p["datasets"]:
            fail(f"{where}.dataset", ds, f"{ds} is not in datasets ({', '.join(p['datasets'])})")
        own = noise_rates(p, ds)
        for kind, rates in entry["noise"].items():
            for j, rate in enumerate(rates):
                if (kind, fmt_rate(rate)) not in own:
                    fail(f"{where}.noise.{kind}[{j}]", rate, f"{ds} has no such noise setting; its settings: "
                         + ", ".join(f"{k} {r}" for k, r in own))
        family = family_of(p, ds)
        grid_cells = {c: f"{('dataset_methods.' + ds) if ds in p['dataset_methods'] else 'methods'}.{name}"
                      for name, items in method_grid(p, ds).items() for c in registry.cells_of(name, items, "", family)}
        for k, earlier in enumerate(p["setting_methods"][:i]):
            if earlier["dataset"] == ds:
                grid_cells.update({c: f"setting_methods[{k}].methods.{name}" for name, items in earlier["methods"].items()
                                   for c in registry.cells_of(name, items, "", family)})
        _check_methods(p, f"{where}.methods", entry["methods"], [ds], fail, num_classes, seen=grid_cells)


def family_of(params: dict, dataset: str) -> str | None:
    """The benchmark family of a dataset (``smoothbench.data.FAMILIES``), what a method's
    ``default`` resolves by: a registered dataset's own, a dataset of your own files the one its
    ``dataset_files`` entry names (None without one: the methods' fallback family's values)."""
    if dataset in data.DATASETS:
        return data.get_spec(dataset).family
    return ((params.get("dataset_files") or {}).get(dataset) or {}).get("family")


def _clean_labels_of(p: dict) -> Any:
    """``dataset -> its clean training labels`` (``data.datasets.training_labels``: None where a
    registered dataset's files are not on this machine yet), each read once per validation."""
    read: dict[str, Any] = {}

    def labels(dataset: str) -> Any:
        if dataset not in read:
            entry = p["dataset_files"].get(dataset)
            read[dataset] = data_files.training_labels(dataset, p["data"]["cache_dir"],
                                                       entry["format"] if entry else None,
                                                       entry["path"] if entry else None)
        return read[dataset]

    return labels


def _check_noise(p: dict, where: str, noise_grid: dict, datasets: list[str], fail: Any,
                 num_classes: dict[str, int], clean_labels: Any) -> None:
    """One noise grid, for the datasets it applies to (``num_classes``: K of each dataset of the
    study): each numeric kind's rates in its range and its options valid for each dataset's K;
    each named kind's label sets known and belonging to a dataset of the grid; no rate twice;
    each setting's transition matrix, where it is known before any job (``_transition``), one
    that the T-using methods of its dataset take."""
    for name, rates in noise_grid.items():
        kind = noise.get(name)
        if not kind.numeric:
            for i, label_set in enumerate(rates):
                why = kind.check_label_set(p, label_set, datasets, where)
                if why:
                    fail(f"{where}.{name}[{i}]", label_set, why)
                owner = kind.label_sets(p).get(label_set)
                if kind.transition_from_labels and owner in datasets and _methods_using_t(p, owner):
                    t = _transition(p, name, label_set, owner, num_classes[owner], fail, clean_labels=clean_labels)
                    if t is not None:
                        _check_methods_take(p, owner, t, f"the realised T of {name} {label_set}", fail)
        else:
            options = noise.with_defaults(name, p["noise_options"].get(name))
            for ds in datasets if kind.check_options and rates else []:
                problem = kind.check_options(options, ds, num_classes[ds])
                if problem:
                    key, why = problem
                    fail(f"noise_options.{name}.{key}", options[key], why)
            for i, rate in enumerate(rates):
                for ds in datasets:
                    k = num_classes[ds]
                    low, high = noise.rate_range(name, k)
                    if math.isnan(rate) or not low <= rate < high:
                        fail(f"{where}.{name}[{i}]", rate, f"{name} noise rates must lie in "
                             f"[{low:g}, {high:g}) for {ds} (K = {k} classes)")
                    if kind.matrix is not None:
                        t = _transition(p, name, rate, ds, k, fail, at=f"{where}.{name}[{i}]")
                        _check_methods_take(p, ds, t, f"the T of {name} {fmt_rate(rate)}", fail)
        _no_duplicates([fmt_rate(r) for r in rates], f"{where}.{name}", fail, rates)


def _transition(p: dict, kind_name: str, rate: Any, dataset: str, k: int, fail: Any, at: str = "",
                clean_labels: Any = None) -> Any:
    """The transition matrix a setting's noise step will give, where it is known before any job:
    a kind's ``matrix`` at the rate (with the study's options for the dataset: a class map that
    does not fit it stops the study at ``at``, the setting's key), or the realised T of a kind
    with ``transition_from_labels`` from the dataset's clean training labels (None where they
    are not on this machine yet: a registered dataset to be downloaded)."""
    kind = noise.get(kind_name)
    given = noise.study_options(p, dataset, kind_name)
    options = noise.with_defaults(kind_name, given)
    if kind.matrix is not None:
        job = noise.NoiseJob(dataset=dataset, features=None, labels=None, num_classes=k, rate=float(rate),
                             options=options, draw_seed=None, noise_seed=0)
        try:
            return noise.transition_matrix(kind_name, k, float(rate), **(kind.matrix_args(job) if kind.matrix_args
                                                                          else {}))
        except ValueError as exc:
            per_dataset = [o.name for o in kind.options if o.per_dataset and o.name in given]
            if per_dataset:      # the dataset's own option (its class map) is what does not fit
                fail(f"noise_options.{kind_name}.{per_dataset[0]}.{dataset}", given[per_dataset[0]], str(exc))
            fail(at, rate, str(exc))
    labels = clean_labels(dataset)
    if labels is None:
        return None
    job = noise.NoiseJob(dataset=dataset, features=None, labels=labels, num_classes=k, rate=str(rate),
                         options=options, draw_seed=None, noise_seed=0)
    try:
        return kind.corrupt_job(job)[1]
    except ValueError as exc:    # a label file that does not fit the dataset (one label per training sample)
        fail(f"noise_options.{kind_name}", str(rate), str(exc))


def _methods_using_t(p: dict, dataset: str) -> list[tuple[str, Any, Any]]:
    """(key of its first setting, that setting, the method) of each method of ``dataset``'s
    grid that uses the noise's transition matrix."""
    where = f"dataset_methods.{dataset}" if dataset in p["dataset_methods"] else "methods"
    return [(f"{where}.{name}[0]", items[0], registry.get(name)) for name, items in method_grid(p, dataset).items()
            if registry.get(name).transition is not None]


def _check_methods_take(p: dict, dataset: str, t: Any, what: str, fail: Any) -> None:
    """Each T-using method of ``dataset`` takes ``t`` (what its ``transition`` makes of it, the
    very function the engine calls): a ValueError stops the study, naming the method's key."""
    for at, item, method in _methods_using_t(p, dataset):
        try:
            method.transition(t)
        except ValueError as exc:
            fail(at, item, f"{exc} ({what} on {dataset})")


def _check_own_files(p: dict, source: str, fail: Any,
                     clean_labels: Any) -> tuple[dict[str, int], dict[str, tuple[int, ...]]]:
    """Names of datasets (registered, or of your own in dataset_files) wherever the study uses
    them, and the files of datasets and label sets of your own: inside data-in/, readable, in
    their format, one label per training sample (where the dataset's training labels are on
    this machine: ``clean_labels``). Returns K and one sample's input shape of every dataset the
    study names."""
    own = p["dataset_files"]
    allowed = f"allowed: {', '.join(data.DATASETS)}, or a dataset of your own files named in dataset_files" + \
        (f" ({', '.join(own)})" if own else "")
    for i, ds in enumerate(p["datasets"]):
        if ds not in data.DATASETS and ds not in own:
            fail(f"datasets[{i}]", ds, allowed)
    named = [("protocol", k) for k in p["protocol"] if k != "default"]
    named += [(f"noise_options.{kind.name}.{option.name}", k) for kind in noise.REGISTRY.values()
              for option in kind.options if option.per_dataset
              for k in (p["noise_options"].get(kind.name) or {}).get(option.name) or {}]
    for where, key in named:
        if key not in data.DATASETS and key not in own:
            raise ValueError(f"{source}: {where}.{key}: unknown key; "
                             f"{'allowed: default, ' if where == 'protocol' else ''}{allowed.removeprefix('allowed: ')}")
    summaries = {}
    for name, entry in own.items():
        where = f"dataset_files.{name}.path"
        problem = userdata.input_dir_problem(entry["path"])
        if problem:
            fail(where, entry["path"], problem)
        try:
            summaries[name] = userdata.describe(entry["format"], entry["path"])
        except userdata.FileProblem as exc:
            fail(where, entry["path"], exc.problem)

    def k_of(ds: str) -> int:
        return summaries[ds].num_classes if ds in summaries else int(data.get_spec(ds).num_classes)

    for name, entry in annotation_files(p).items():
        where, ds, path = f"noise_options.annotations.files.{name}", entry["dataset"], entry["path"]
        if _reads_as_number(name):
            raise ValueError(f"{source}: {where}: key {name!r} reads as a number; give the label set another name")
        if ds not in data.DATASETS and ds not in own:
            fail(f"{where}.dataset", ds, allowed)
        problem = userdata.input_dir_problem(path)
        if problem:
            fail(f"{where}.path", path, problem)
        try:
            labels = userdata.read_annotations(path)
        except userdata.FileProblem as exc:
            fail(f"{where}.path", path, exc.problem)
        if ds in summaries:
            n_train = summaries[ds].num_train
        else:   # a registered dataset's size, where its files are here (else the noise step checks it)
            clean = clean_labels(ds) if ds in p["datasets"] else None
            n_train = None if clean is None else len(clean)
        problem = userdata.annotation_problem(labels, n_train, k_of(ds), ds)
        if problem:
            fail(f"{where}.path", path, problem)

    def shape_of(ds: str) -> tuple[int, ...]:
        return summaries[ds].input_shape if ds in summaries else tuple(data.get_spec(ds).input_shape)

    return {ds: k_of(ds) for ds in p["datasets"]}, {ds: shape_of(ds) for ds in p["datasets"]}


def _reads_as_number(name: str) -> bool:
    try:
        float(name)
    except ValueError:
        return False
    return True


def _no_duplicates(items: list, where: str, fail: Any, shown: list | None = None) -> None:
    seen: dict = {}
    for i, item in enumerate(items):
        if item in seen:
            fail(f"{where}[{i}]", (shown or items)[i], f"listed twice (also at {where}[{seen[item]}])")
        seen[item] = i


def noise_grid(params: dict, dataset: str) -> dict:
    """The noise grid (kind -> rates) of ``dataset``: its own in dataset_noise, else ``noise``."""
    return (params.get("dataset_noise") or {}).get(dataset, params["noise"])


def noise_rates(params: dict, dataset: str) -> list[tuple[str, str]]:
    """(kind, canonical rate) pairs that apply to ``dataset``, in params order."""
    out = []
    for name, rates in noise_grid(params, dataset).items():
        kind = noise.get(name)
        owners = kind.label_sets(params) if not kind.numeric else {}
        for rate in rates:
            if not kind.numeric and owners.get(rate) != dataset:  # a label set goes with its own dataset only
                continue
            out.append((name, fmt_rate(rate)))
    return out


def method_grid(params: dict, dataset: str) -> dict:
    """The method grid (method -> settings) of ``dataset``: its own in dataset_methods, else ``methods``."""
    return (params.get("dataset_methods") or {}).get(dataset, params["methods"])


def setting_method_grids(params: dict, dataset: str, kind: str, rate: str) -> list[dict]:
    """The method grids ``setting_methods`` adds to one setting (dataset, noise kind, rate text)."""
    return [e["methods"] for e in params.get("setting_methods") or []
            if e["dataset"] == dataset and any(fmt_rate(r) == rate for r in (e["noise"].get(kind) or []))]
