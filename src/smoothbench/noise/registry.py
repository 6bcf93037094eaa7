"""The noise-kind registry: one entry per way of corrupting the stored training labels.

A noise kind is one ``register(NoiseKind(...))`` call, written beside its corruption in a
module of this folder (``classconditional.py``: symmetric, pairflip, asymmetric;
``instance.py``; ``human.py``: the CIFAR-N label sets; ``annotations.py``: a file of your own)
or in a new module of its own (``noise/__init__`` imports every module of the folder). The
params schema (its ``noise_kind`` enum, ``noise_grid`` and ``noise_options``), the study's
checks, the grid, the noise step and ``smoothbench noise --help`` read the registry.

A kind is one of two sorts:

- **numeric**: its rate is a number in ``rate_range(K)`` = [low, high), and its labels are
  drawn from a seed derived from (dataset, kind, rate, noise seed): from its transition
  matrix T (``matrix``; T[i, j] is the probability that clean class i gets the noisy label j,
  sampled with the kind's ``sampler`` option) or by its own ``corrupt`` function;
- **named**: its "rate" is the name of a label set (``label_sets(study)`` says which dataset
  each belongs to); its labels are read, not drawn, and the seeds are only recorded.

Every corruption returns the noisy labels and a transition matrix (T itself, or the realised
one), a deterministic function of (labels, T or annotations, seed).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from ..core.vocabulary import check_num_classes
from .sampling import corrupt_labels

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"  # a kind's name: a params.yaml key, a folder name, a wildcard value


@dataclass(frozen=True)
class Option:
    """An option of a noise kind: params.yaml ``noise_options.<kind>.<name>``, and the noise
    step's ``--option NAME=VALUE``. ``schema`` is the JSON schema of its params.yaml value (its
    type and allowed values); ``default`` None means unset unless given; ``metavar`` shows the
    value in ``--help`` where the schema has no enum. A ``per_dataset`` option is a mapping
    dataset -> value in params.yaml (its keys must name datasets), and the noise step of a
    dataset gets that dataset's value."""

    name: str
    schema: dict
    meaning: str
    default: Any = None
    metavar: str = "VALUE"
    per_dataset: bool = False

    def schema_node(self) -> dict:
        node = {**self.schema, "description": self.meaning}
        if self.default is not None:
            node["default"] = self.default
        return node

    @property
    def value_text(self) -> str:
        return "|".join(map(str, self.schema["enum"])) if "enum" in self.schema else self.metavar


@dataclass(frozen=True)
class NoiseJob:
    """What a corruption gets: a dataset file's training split and the setting to corrupt it at.

    ``rate`` is the checked number of a numeric kind or the label set of a named one;
    ``options`` are the kind's options with their defaults filled in; ``draw_seed`` is
    ``derive_seed("noise", dataset, kind, rate text, noise_seed)`` (numeric kinds; None for
    named ones) and ``noise_seed`` the seed the study gives the draw."""

    dataset: str
    features: np.ndarray
    labels: np.ndarray
    num_classes: int
    rate: float | str
    options: dict
    draw_seed: int | None
    noise_seed: int


@dataclass(frozen=True)
class NoiseKind:
    """One registered noise kind.

    - ``description`` — what the corruption does, one line; ``rates`` — its rates in words
      (``[0, (K-1)/K)``, ``a CIFAR-N label set``), for ``--help`` and the schema.
    - numeric kinds: ``rate_range(K) -> (low, high)``; then either ``matrix(K, rate, **kw)``
      (its T; ``matrix_args(job)`` gives ``kw`` from the job's options and dataset) or
      ``corrupt(job) -> (noisy labels, T)``. ``check_options(options, dataset, K)`` says which
      option (key, why) a dataset of the study cannot take, or None.
    - named kinds: ``label_sets(study) -> {label set: dataset}``, ``grid_schema`` (the JSON
      schema of its list in a noise grid), ``check_label_set(study, name, datasets, where)``
      (why a label set cannot go with the grid at ``where`` that applies to ``datasets``, or
      None), and ``corrupt(job)``.
    - ``options`` — its ``Option``s; ``needs`` — what it needs beyond the dataset file, in words.
    - ``transition_from_labels`` — its ``corrupt`` needs only the clean training labels and files
      the study names (not the features; no torch, no network), so the study's validation runs
      it to know a setting's realised T before any job (a method that cannot take that T stops
      the study there). A kind with a ``matrix`` has its T without it.
    """

    name: str
    description: str
    rates: str
    rate_range: Callable[[int], tuple[float, float]] | None = None
    matrix: Callable[..., np.ndarray] | None = None
    matrix_args: Callable[[NoiseJob], dict] | None = None
    corrupt: Callable[[NoiseJob], tuple[np.ndarray, np.ndarray]] | None = None
    options: tuple[Option, ...] = ()
    check_options: Callable[[dict, str, int], tuple[str, str] | None] | None = None
    label_sets: Callable[[dict], Mapping[str, str]] | None = None
    grid_schema: dict | None = None
    check_label_set: Callable[[dict, str, list, str], str | None] | None = None
    needs: str = ""
    transition_from_labels: bool = False

    @property
    def numeric(self) -> bool:
        """Its rate is a number (else the name of a label set)."""
        return self.rate_range is not None

    @property
    def matrix_keywords(self) -> tuple[str, ...]:
        """The keywords its ``matrix`` takes after (K, rate)."""
        if self.matrix is None:
            return ()
        return tuple(inspect.signature(self.matrix).parameters)[2:]

    def option_defaults(self) -> dict:
        return {o.name: o.default for o in self.options}

    def corrupt_job(self, job: NoiseJob) -> tuple[np.ndarray, np.ndarray]:
        """(noisy labels, transition matrix) of a job: its ``corrupt``, or labels drawn from its
        matrix with the job's sampler (``reference``: the noise seed itself, as the reference
        code; ``inverse_cdf``: the derived draw seed)."""
        if self.corrupt is not None:
            return self.corrupt(job)
        t = transition_matrix(self.name, job.num_classes, job.rate,
                              **(self.matrix_args(job) if self.matrix_args else {}))
        sampler = job.options.get("sampler", "inverse_cdf")
        noisy = corrupt_labels(job.labels, t, job.noise_seed if sampler == "reference" else job.draw_seed, sampler)
        return noisy, t


REGISTRY: dict[str, NoiseKind] = {}


def register(kind: NoiseKind) -> NoiseKind:
    """Add ``kind`` to the registry (its order is the order of the schema's enum and of
    ``--help``); a name taken or an entry that breaks the rules is a one-line ``ValueError``."""
    where = f"noise kind {kind.name!r}"

    def fail(problem: str) -> None:
        raise ValueError(f"{where}: {problem}")

    if not isinstance(kind.name, str) or not re.match(NAME_PATTERN, kind.name):
        fail(f"the name must match {NAME_PATTERN}")
    if kind.name in REGISTRY:
        fail("the name is taken (registered twice)")
    if kind.numeric:
        if (kind.matrix is None) == (kind.corrupt is None):
            fail("a numeric kind gives exactly one of matrix (its transition matrix) or corrupt")
        if kind.label_sets is not None or kind.grid_schema is not None or kind.check_label_set is not None:
            fail("label_sets, grid_schema and check_label_set are for named kinds (no rate_range)")
    else:
        if kind.label_sets is None or kind.grid_schema is None or kind.check_label_set is None or kind.corrupt is None:
            fail("a kind without rate_range names label sets: it needs label_sets, grid_schema, "
                 "check_label_set and corrupt")
        if kind.matrix is not None or kind.check_options is not None:
            fail("matrix and check_options are for numeric kinds (with rate_range)")
    if kind.matrix_args is not None and kind.matrix is None:
        fail("matrix_args needs a matrix")
    option_names = [o.name for o in kind.options]
    if len(set(option_names)) != len(option_names):
        fail(f"option names must be distinct, got {', '.join(option_names)}")
    REGISTRY[kind.name] = kind
    return kind


def names() -> tuple[str, ...]:
    """The registered noise kinds, in registry order."""
    return tuple(REGISTRY)


def numeric_names() -> tuple[str, ...]:
    return tuple(n for n, k in REGISTRY.items() if k.numeric)


def matrix_names() -> tuple[str, ...]:
    return tuple(n for n, k in REGISTRY.items() if k.matrix is not None)


def get(name: str) -> NoiseKind:
    """The entry of ``name``; a one-line ``ValueError`` listing the kinds if unknown."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"noise kind {name!r} is unknown; allowed: {', '.join(REGISTRY)}") from None


# --------------------------------------------------------------------------- rates and matrices


def rate_range(kind: str, num_classes: int) -> tuple[float, float]:
    """The valid rates ``[low, high)`` of a numeric noise kind with ``num_classes`` classes."""
    k = check_num_classes(num_classes)
    entry = REGISTRY.get(kind)
    if entry is None or not entry.numeric:
        raise ValueError(f"kind {kind!r} has no numeric rate; numeric kinds: {', '.join(numeric_names())}")
    return entry.rate_range(k)


def check_rate(kind: str, rate: Any, num_classes: int) -> float:
    """``rate`` as a float, or ValueError naming the allowed range for this kind and K."""
    low, high = rate_range(kind, num_classes)
    try:
        r = float(rate)
    except (TypeError, ValueError):
        raise ValueError(f"rate of {kind} noise must be a number in [{low:g}, {high:g}), got {rate!r}") from None
    if not low <= r < high:  # also rejects NaN
        raise ValueError(
            f"rate {rate!r} is out of range for {kind} noise with {num_classes} classes: "
            f"allowed [{low:g}, {high:g})"
        )
    return r


def transition_matrix(kind: str, num_classes: int, rate: float, **kw: Any) -> np.ndarray:
    """The (K, K) float64 transition matrix of a kind that has one, at a checked rate; ``kw``
    are the keywords of the kind's ``matrix`` (``pairs`` of pairflip; ``class_map`` or
    ``dataset`` of asymmetric)."""
    entry = REGISTRY.get(kind)
    if entry is None or entry.matrix is None:
        raise ValueError(f"kind {kind!r} has no fixed transition matrix; allowed: {', '.join(matrix_names())}")
    k = check_num_classes(num_classes)
    r = check_rate(kind, rate, k)
    allowed = set(entry.matrix_keywords)
    extra = set(kw) - allowed
    if extra:
        raise ValueError(f"{kind} noise takes options {sorted(allowed) or 'none'}, got {sorted(extra)}")
    return entry.matrix(k, r, **kw)


# --------------------------------------------------------------------------- options


def study_options(study: dict, dataset: str, kind: str) -> dict:
    """The options a study gives kind ``kind`` for ``dataset`` (as given, no defaults): its
    ``noise_options.<kind>``, each per-dataset option as this dataset's value (left out where
    the study gives it none for this dataset)."""
    options = dict((study.get("noise_options") or {}).get(kind) or {})
    for option in get(kind).options:
        if option.per_dataset and option.name in options:
            per_dataset = options.pop(option.name) or {}
            if dataset in per_dataset:
                options[option.name] = per_dataset[dataset]
    return options


def option_defaults(kind: str) -> dict:
    """The options a noise kind takes, with their defaults (None: unset unless given)."""
    return get(kind).option_defaults()


def with_defaults(kind: str, options: dict | None) -> dict:
    """``options`` of ``kind`` over its defaults; a one-line ``ValueError`` for an option it does not take."""
    defaults = option_defaults(kind)
    extra = set(options or {}) - set(defaults)
    if extra:
        allowed = ", ".join(sorted(defaults)) or "none"
        raise ValueError(f"option(s) {', '.join(sorted(extra))} not valid for {kind} noise; allowed: {allowed}")
    return {**defaults, **(options or {})}


# --------------------------------------------------------------------------- what reads the registry


def describe() -> str:
    """One line per kind, for ``smoothbench noise --help``: name, what it does, its rates, its
    options and what it needs."""
    lines = []
    for k in REGISTRY.values():
        opts = ", ".join(f"{o.name}={o.value_text}" + (f" (default {o.default})" if o.default is not None else "")
                         for o in k.options)
        lines.append(f"{k.name}: {k.description}; rate: {k.rates}" + (f"; options: {opts}" if opts else "")
                     + (f"; needs {k.needs}" if k.needs else ""))
    return "\n".join(lines)


def option_help() -> str:
    """``--option``'s help: each option with its values and the kinds that take it."""
    by_name: dict[str, tuple[Option, list[str]]] = {}
    for k in REGISTRY.values():
        for o in k.options:
            by_name.setdefault(o.name, (o, []))[1].append(k.name)
    return ", ".join(f"{name}={o.value_text} ({', '.join(kinds)})" for name, (o, kinds) in by_name.items())


def schema_defs() -> dict:
    """The params schema's ``$defs.noise_kind``, ``$defs.noise_grid`` (kind -> its rates) and
    ``$defs.noise_options`` (kind -> its options), from the registry."""
    grid, options = {}, {}
    for k in REGISTRY.values():
        node = k.grid_schema if not k.numeric else {"$ref": "#/$defs/rate_list"}
        grid[k.name] = {**node, "description": f"{k.description}; rate: {k.rates}"}
        options[k.name] = {"type": "object", "additionalProperties": False,
                           "properties": {o.name: o.schema_node() for o in k.options}}
    return {
        "noise_kind": {"enum": list(REGISTRY), "description": "a registered noise kind (generated from smoothbench.noise)"},
        "noise_grid": {"type": "object", "additionalProperties": False, "properties": grid,
                       "description": "noise kind -> its rates (generated from smoothbench.noise)"},
        "noise_options": {"type": "object", "additionalProperties": False, "default": {}, "properties": options,
                          "description": "noise kind -> its options (generated from smoothbench.noise)"},
    }
