"""The training protocol: how a group is trained, and its protocol variants.

``Protocol`` and its parts are frozen dataclasses built from the protocol mapping of
params.yaml (``protocol.default`` merged with ``protocol.DATASET``). One source each:

- types, ranges, enums and defaults live in the params schema (``$defs/protocol`` and
  ``$defs/variant`` of core/params.schema.yaml, its model part generated from the model
  registry: ``schema_root``); ``complete`` fills them, ``Protocol.from_dict`` validates
  against them, and the dataclasses' defaults are read from it (``DEFAULTS``);
- the rules a schema cannot express (Nesterov needs momentum, multistep needs
  increasing milestones, an honest branch point needs a held-out split, normalisation
  constants come in pairs) are ``check_rules`` below, used by ``from_dict`` and by the
  study validation in ``grid`` alike; the model's arguments are checked against the model's
  own schema (``models.check_args``) once the protocol names its model, and what depends on
  a dataset's inputs (the model takes them, one normalisation constant per channel) is
  ``check_inputs``.

A **protocol variant** is how each cell of a group is trained: ``direct`` (from
scratch: ``warmup.epochs`` 0) or with a cross-entropy warm-up shared by the group and a
branch point (``warmup.branch``: ``last``, ``selected`` = best on the held-out noisy
labels, ``best`` = best clean-test accuracy, the reference code's choice). A protocol
names one or more variants; every group trains all of them.

``learning_rate`` gives a phase's schedule at a step.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..core import schema
from . import models

BRANCHES = ("last", "selected", "best")

_ROOTS: dict = {}


def schema_root(path: str | Path | None = None) -> dict:
    """The params schema (the file at ``path``, default the package's) with its model part
    generated from the model registry: the root every protocol is checked and completed against."""
    key = (str(path), models.names())
    if key not in _ROOTS:
        root = copy.deepcopy(schema.load_schema(path))
        root["$defs"].update(models.schema_defs())
        _ROOTS[key] = root
    return _ROOTS[key]


def complete(proto: dict, root: dict | None = None) -> dict:
    """A copy of a protocol mapping with every default filled in, its variants' included."""
    root = root if root is not None else schema_root()
    out = copy.deepcopy(proto)
    schema.fill_defaults(root["$defs"]["protocol"], out, root)
    for variant in out["variants"].values():
        schema.fill_defaults(root["$defs"]["variant"], variant, root)
    return out


# the schema's defaults, read once: the dataclasses below take theirs from here
DEFAULTS = complete({})
_DEFAULT_VARIANT_NAME, _DEFAULT_VARIANT = next(iter(DEFAULTS["variants"].items()))
_DEFAULT_WARMUP = _DEFAULT_VARIANT["warmup"]


def _default(value: Any) -> Any:
    """A dataclass field's default: the schema's value (a copy of it for each instance)."""
    return field(default_factory=lambda: copy.deepcopy(value))


@dataclass(frozen=True)
class OptimizerConfig:
    name: str = _DEFAULT_VARIANT["optimizer"]["name"]
    lr: float = _DEFAULT_VARIANT["optimizer"]["lr"]
    momentum: float = _DEFAULT_VARIANT["optimizer"]["momentum"]
    nesterov: bool = _DEFAULT_VARIANT["optimizer"]["nesterov"]
    weight_decay: float = _DEFAULT_VARIANT["optimizer"]["weight_decay"]


@dataclass(frozen=True)
class ScheduleConfig:
    name: str = _DEFAULT_VARIANT["schedule"]["name"]
    milestones: tuple[int, ...] = tuple(_DEFAULT_VARIANT["schedule"]["milestones"])
    gamma: float = _DEFAULT_VARIANT["schedule"]["gamma"]


@dataclass(frozen=True)
class WarmupConfig:
    """The shared CE warm-up of a variant (epochs 0: none) and where its cells branch off."""

    epochs: int = _DEFAULT_WARMUP["epochs"]
    optimizer: OptimizerConfig = field(default_factory=lambda: _optimizer(_DEFAULT_WARMUP["optimizer"]))
    schedule: ScheduleConfig = field(default_factory=lambda: _schedule(_DEFAULT_WARMUP["schedule"]))
    branch: str = _DEFAULT_WARMUP["branch"]

    @property
    def key(self) -> tuple:
        """What makes two warm-ups the same run (the branch point is chosen after it)."""
        return (self.epochs, self.optimizer, self.schedule)


@dataclass(frozen=True)
class VariantConfig:
    """A protocol variant: each cell's own phase (``epochs``, ``optimizer``, ``schedule``),
    after the shared warm-up when ``warmup.epochs > 0``."""

    name: str = _DEFAULT_VARIANT_NAME
    epochs: int = _DEFAULT_VARIANT["epochs"]
    optimizer: OptimizerConfig = field(default_factory=lambda: _optimizer(_DEFAULT_VARIANT["optimizer"]))
    schedule: ScheduleConfig = field(default_factory=lambda: _schedule(_DEFAULT_VARIANT["schedule"]))
    warmup: WarmupConfig = field(default_factory=WarmupConfig)

    @property
    def has_warmup(self) -> bool:
        return self.warmup.epochs > 0

    @property
    def total_epochs(self) -> int:
        return self.warmup.epochs + self.epochs


@dataclass(frozen=True)
class AugmentConfig:
    crop_padding: int = DEFAULTS["augment"]["crop_padding"]
    hflip: bool = DEFAULTS["augment"]["hflip"]
    pad_fill: str = DEFAULTS["augment"]["pad_fill"]


@dataclass(frozen=True)
class Protocol:
    """How a group is trained: what all its variants share, and the variants."""

    model: str = DEFAULTS["model"]
    model_args: dict = _default(DEFAULTS["model_args"])
    init: str = DEFAULTS["init"]
    batch_size: int = DEFAULTS["batch_size"]
    drop_last: bool = DEFAULTS["drop_last"]
    variants: tuple[VariantConfig, ...] = field(
        default_factory=lambda: tuple(_variant(name, v) for name, v in DEFAULTS["variants"].items()))
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    normalize: dict | None = _default(DEFAULTS["normalize"])
    val_fraction: float = DEFAULTS["val_fraction"]
    checkpoint_every: int = DEFAULTS["checkpoint_every"]
    ece_bins: int = DEFAULTS["ece_bins"]
    device: str = DEFAULTS["device"]
    precision: str = DEFAULTS["precision"]

    @classmethod
    def from_dict(cls, d: dict | None, source: str | None = None) -> "Protocol":
        """Validate a protocol mapping against the schema, fill its defaults, check its
        rules and its model's arguments; one-line ``ValueError`` naming the key on the first problem."""
        d = dict(d or {})
        root = schema_root()
        schema.check(d, source, root["$defs"]["protocol"], base=("protocol",), root=root)
        d = complete(d, root)
        for key, value, why in check_rules(d):
            text = f"protocol.{key} = {schema.value_text(value)}: {why}"
            raise ValueError(text if source is None else f"{source}: {text}")
        models.check_args(d["model"], d["model_args"], source, base=("protocol", "model_args"))
        return cls(**{
            **d,
            "variants": tuple(_variant(name, v) for name, v in d["variants"].items()),
            "augment": AugmentConfig(**d["augment"]),
            "normalize": copy.deepcopy(d["normalize"]),
        })

    def to_dict(self) -> dict:
        d = asdict(self)
        d["variants"] = {v["name"]: {k: x for k, x in v.items() if k != "name"} for v in d["variants"]}
        for v in d["variants"].values():
            for sch in (v["schedule"], v["warmup"]["schedule"]):
                sch["milestones"] = list(sch["milestones"])
        return d


def _optimizer(d: dict) -> OptimizerConfig:
    return OptimizerConfig(**d)


def _schedule(d: dict) -> ScheduleConfig:
    return ScheduleConfig(**{**d, "milestones": tuple(int(m) for m in d["milestones"])})


def _variant(name: str, v: dict) -> VariantConfig:
    w = v["warmup"]
    return VariantConfig(
        name=name, epochs=int(v["epochs"]), optimizer=_optimizer(v["optimizer"]), schedule=_schedule(v["schedule"]),
        warmup=WarmupConfig(int(w["epochs"]), _optimizer(w["optimizer"]), _schedule(w["schedule"]), w["branch"]),
    )


def check_rules(proto: dict) -> Iterator[tuple[str, Any, str]]:
    """The protocol rules a schema cannot express, on a complete (defaults filled) protocol
    mapping: ``(key path, value, why)`` for each broken one."""
    for name, v in proto["variants"].items():
        for prefix, phase in ((f"variants.{name}.", v), (f"variants.{name}.warmup.", v["warmup"])):
            opt, sch = phase["optimizer"], phase["schedule"]
            if opt["nesterov"] and opt["momentum"] <= 0:
                yield (f"{prefix}optimizer.momentum", opt["momentum"],
                       "nesterov needs momentum > 0; set nesterov: false or a momentum in (0, 1)")
            if sch["name"] == "multistep":
                ms = sch["milestones"]
                if not ms:
                    yield (f"{prefix}schedule.milestones", ms, "multistep needs milestones "
                           "(increasing epochs at which the lr is multiplied by gamma), e.g. [40, 80]")
                elif any(b <= a for a, b in zip(ms, ms[1:])):
                    yield f"{prefix}schedule.milestones", ms, "milestones must be strictly increasing"
        if v["warmup"]["epochs"] > 0 and v["warmup"]["branch"] == "selected" and proto["val_fraction"] <= 0:
            yield (f"variants.{name}.warmup.branch", "selected",
                   "branching at the best held-out epoch needs a held-out split (val_fraction > 0)")
    norm = proto["normalize"]
    if norm is not None and len(norm["mean"]) != len(norm["std"]):
        yield "normalize.std", norm["std"], f"needs one value per mean ({len(norm['mean'])})"


def check_inputs(proto: dict, input_shape: tuple[int, ...]) -> Iterator[tuple[str, Any, str]]:
    """The protocol rules that depend on a dataset's inputs (one sample's shape: (D,) vectors or
    (C, H, W) images), on a complete protocol mapping: ``(key path, value, why)`` for each
    broken one. The model must take them (``models.input_problem``) and fixed normalisation
    constants come one per channel (images) or feature (vectors). The study's validation asks
    them of every dataset before any job."""
    problem = models.input_problem(proto["model"], input_shape, proto["model_args"])
    if problem:
        yield problem
    norm = proto["normalize"]
    if norm is not None and len(norm["mean"]) != input_shape[0]:
        what = "channels" if len(input_shape) == 3 else "features"
        yield ("normalize.mean", norm["mean"], f"needs one value per input {what[:-1]}; the inputs have "
               f"{input_shape[0]} {what}")


def learning_rate(opt: OptimizerConfig, sch: ScheduleConfig, epoch: int, step: int, steps_per_epoch: int,
                  epochs: int) -> float:
    """Learning rate at ``step`` (0-based) of ``epoch`` (0-based) of a phase of ``epochs`` epochs."""
    if sch.name == "constant":
        return opt.lr
    if sch.name == "multistep":
        return opt.lr * sch.gamma ** sum(1 for m in sch.milestones if epoch >= m)
    t = (epoch * steps_per_epoch + step) / max(1, epochs * steps_per_epoch)
    return 0.5 * opt.lr * (1.0 + math.cos(math.pi * t))
