"""The training protocol: how a group is trained.

``Protocol`` and its parts are frozen dataclasses built from the protocol mapping of
params.yaml (``protocol.default`` merged with ``protocol.DATASET``). One source each:

- types, ranges, enums and defaults live in the params schema
  (``$defs/protocol`` of workflow/schemas/params.schema.yaml); ``Protocol.from_dict``
  validates against it and fills its defaults (the dataclass defaults are the same
  values, asserted by a test);
- the rules a schema cannot express (a group needs an epoch, Nesterov needs momentum,
  multistep needs increasing milestones) are ``check_rules`` below, used by
  ``from_dict`` and by the study validation in ``grid`` alike.

``learning_rate`` gives a phase's schedule at a step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

from . import schema


@dataclass(frozen=True)
class OptimizerConfig:
    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4


@dataclass(frozen=True)
class ScheduleConfig:
    name: str = "cosine"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1


@dataclass(frozen=True)
class PhaseConfig:
    epochs: int = 0
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)


@dataclass(frozen=True)
class AugmentConfig:
    crop_padding: int = 0
    hflip: bool = False


@dataclass(frozen=True)
class Protocol:
    """How a group is trained. ``epochs``/``optimizer``/``schedule`` describe the main
    (GLS) phase; ``warmup`` an optional CE phase shared by all cells before it."""

    model: str = "mlp"
    model_args: dict = field(default_factory=dict)
    batch_size: int = 128
    epochs: int = 30
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    warmup: PhaseConfig = field(default_factory=PhaseConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    val_fraction: float = 0.1
    checkpoint_every: int = 5
    ece_bins: int = 15
    device: str = "auto"
    precision: str = "auto"

    @classmethod
    def from_dict(cls, d: dict | None, source: str | None = None) -> "Protocol":
        """Validate a protocol mapping against the schema, fill its defaults, check its
        rules; one-line ``ValueError`` naming the key on the first problem."""
        d = dict(d or {})
        root = schema.load_schema()
        node = root["$defs"]["protocol"]
        schema.check(d, source, node, base=("protocol",), root=root)
        schema.fill_defaults(node, d, root)
        for key, value, why in check_rules(d):
            text = f"protocol.{key} = {schema.value_text(value)}: {why}"
            raise ValueError(text if source is None else f"{source}: {text}")
        phase = dict(d["warmup"])
        return cls(**{
            **d,
            "optimizer": _optimizer(d["optimizer"]),
            "schedule": _schedule(d["schedule"]),
            "warmup": PhaseConfig(int(phase["epochs"]), _optimizer(phase["optimizer"]), _schedule(phase["schedule"])),
            "augment": AugmentConfig(**d["augment"]),
        })

    def to_dict(self) -> dict:
        d = asdict(self)
        for sch in (d["schedule"], d["warmup"]["schedule"]):
            sch["milestones"] = list(sch["milestones"])
        return d


def _optimizer(d: dict) -> OptimizerConfig:
    return OptimizerConfig(**d)


def _schedule(d: dict) -> ScheduleConfig:
    return ScheduleConfig(**{**d, "milestones": tuple(int(m) for m in d["milestones"])})


def check_rules(proto: dict) -> Iterator[tuple[str, Any, str]]:
    """The protocol rules a schema cannot express, on a complete (defaults filled) protocol
    mapping: ``(key path, value, why)`` for each broken one."""
    if proto["epochs"] + proto["warmup"]["epochs"] < 1:
        yield "epochs", proto["epochs"], "a group needs at least 1 epoch in all (warmup.epochs + epochs)"
    for prefix in ("", "warmup."):
        phase = proto["warmup"] if prefix else proto
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


def learning_rate(opt: OptimizerConfig, sch: ScheduleConfig, epoch: int, step: int, steps_per_epoch: int,
                  epochs: int) -> float:
    """Learning rate at ``step`` (0-based) of ``epoch`` (0-based) of a phase of ``epochs`` epochs."""
    if sch.name == "constant":
        return opt.lr
    if sch.name == "multistep":
        return opt.lr * sch.gamma ** sum(1 for m in sch.milestones if epoch >= m)
    t = (epoch * steps_per_epoch + step) / max(1, epochs * steps_per_epoch)
    return 0.5 * opt.lr * (1.0 + math.cos(math.pi * t))
