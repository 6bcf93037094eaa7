"""The model registry's vocabulary: a model, its arguments, and building one.

A **model** is one registry entry (``register(Model(...))``): its name (the value of
``protocol.model``), the inputs it takes (vectors, images or both), its ``model_args``
(each an ``Arg``: type, default, range, meaning) and its builder, a callable
``builder(num_models, input_shape, num_classes, **model_args)`` that returns a stacked
model (``base.StackedModel``) with every argument given. The params schema's
``protocol.model`` enum and each model's ``model_args`` check are generated here
(``schema_defs``); ``build_model`` checks the arguments against the same schema, fills in
the defaults, builds the stack and initialises it. Nothing here imports torch: the workflow
imports the registry to parse, a builder imports torch when it is called.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ...core import schema

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
SHAPES = {"vector": "(D,)", "image": "(C, H, W)"}     # the inputs a model can take: one sample's shape
INPUTS = tuple(SHAPES)
KINDS = {"integer": "an integer", "number": "a number", "integers": "a list of integers"}


@dataclass(frozen=True)
class Arg:
    """One ``model_args`` key: its type (``integer``, ``number``, or ``integers``, a list of
    integers each within the range), default, range and meaning."""

    name: str
    kind: str
    default: Any
    meaning: str
    low: float | None = None       # None: unbounded below
    high: float | None = None      # None: unbounded above
    low_open: bool = False         # low itself excluded
    high_open: bool = False

    def schema(self) -> dict:
        """The JSON-schema node of the argument."""
        bounds: dict = {}
        if self.low is not None:
            bounds["exclusiveMinimum" if self.low_open else "minimum"] = self.low
        if self.high is not None:
            bounds["exclusiveMaximum" if self.high_open else "maximum"] = self.high
        node: dict = {"description": self.meaning, "default": copy.deepcopy(self.default)}
        if self.kind == "integers":
            return {**node, "type": "array", "items": {"type": "integer", **bounds}}
        return {**node, "type": self.kind, **bounds}


@dataclass(frozen=True)
class Model:
    """One architecture a protocol can name, as a stack of ``num_models`` independent copies."""

    name: str
    meaning: str
    inputs: tuple[str, ...]
    args: tuple[Arg, ...]
    builder: Callable[..., Any]
    # (input_shape, model_args with defaults) -> (an argument, why it cannot take these inputs), or None
    check_inputs: Callable[[tuple[int, ...], dict], tuple[str, str] | None] | None = None

    def __post_init__(self) -> None:
        import re

        if not re.match(NAME_PATTERN, self.name):
            raise ValueError(f"model name {self.name!r}: lowercase letters, digits and _, starting with a letter")
        if not self.inputs or set(self.inputs) - set(INPUTS):
            raise ValueError(f"model {self.name}: inputs {self.inputs}; allowed: {', '.join(INPUTS)}")
        for arg in self.args:
            if arg.kind not in KINDS:
                raise ValueError(f"model {self.name}: argument {arg.name} of kind {arg.kind!r}; "
                                 f"allowed: {', '.join(KINDS)}")
        if len({a.name for a in self.args}) != len(self.args):
            raise ValueError(f"model {self.name}: an argument is listed twice")

    def args_schema(self) -> dict:
        """The JSON-schema node of this model's ``model_args``."""
        return {"type": "object", "additionalProperties": False,
                "description": f"model_args of {self.name}",
                "properties": {a.name: a.schema() for a in self.args}}

    def complete(self, model_args: dict) -> dict:
        """``model_args`` with every argument left out at its default (the registry's)."""
        return {a.name: copy.deepcopy(model_args.get(a.name, a.default)) for a in self.args}


REGISTRY: dict[str, Model] = {}


def register(model: Model) -> Model:
    if model.name in REGISTRY:
        raise ValueError(f"model {model.name!r} is registered twice")
    REGISTRY[model.name] = model
    return model


def names() -> tuple[str, ...]:
    """The registered model names, in registry order."""
    return tuple(REGISTRY)


def get(name: str) -> Model:
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def schema_defs() -> dict:
    """The schema's model part: ``$defs/model`` (the registered names) and, per model,
    ``$defs/model_args_NAME`` (its arguments), which ``$defs/model_choice`` applies to the
    ``model_args`` of a protocol that names the model."""
    defs: dict = {"model": {"description": "a registered model (smoothbench.engine.models)", "enum": list(names())}}
    choice = []
    for model in REGISTRY.values():
        defs[f"model_args_{model.name}"] = model.args_schema()
        choice.append({"if": {"required": ["model"], "properties": {"model": {"const": model.name}}},
                       "then": {"properties": {"model_args": {"$ref": f"#/$defs/model_args_{model.name}"}}}})
    defs["model_choice"] = {"description": "each model's model_args, for a protocol that names its model",
                            "allOf": choice}
    return defs


def check_args(name: str, model_args: dict, source: str | None = None, base: Sequence = ("model_args",)) -> None:
    """One-line ``ValueError`` naming the key (``base`` + the argument) when ``model_args`` does
    not fit model ``name``'s schema: an unknown argument, a value of another type or out of range."""
    model = get(name)
    schema.check(model_args, source, model.args_schema(), base=tuple(base), root=schema.load_schema())


def input_problem(name: str, input_shape: Sequence[int], model_args: dict) -> tuple[str, Any, str] | None:
    """Why model ``name`` with ``model_args`` cannot take inputs of one sample's shape
    ``input_shape``: (the protocol key, ``model`` or ``model_args.ARG``; its value; why), or
    None. The study's validation asks it of each dataset before any job, ``build_model``
    before it builds."""
    model = get(name)
    shape = tuple(int(s) for s in input_shape)
    if len(shape) not in (1, 3) or any(s < 1 for s in shape):
        return "model", name, f"invalid input_shape {shape}: (D,) for vectors or (C, H, W) for images"
    kind = "vector" if len(shape) == 1 else "image"
    if kind not in model.inputs:
        wanted = " or ".join(f"{i} input_shape {SHAPES[i]}" for i in model.inputs)
        takes = [n for n in names() if kind in REGISTRY[n].inputs]
        return "model", name, f"needs {wanted}, got {shape}; for {kind}s use {', '.join(takes) or 'another model'}"
    if model.check_inputs is not None:
        args = model.complete(model_args)
        problem = model.check_inputs(shape, args)
        if problem:
            return f"model_args.{problem[0]}", args[problem[0]], problem[1]
    return None


def build_model(name: str, num_models: int, input_shape: Sequence[int], num_classes: int,
                seed: int, init: str = "kaiming_normal", **model_args) -> Any:
    """A stack of ``num_models`` identical models of architecture ``name``, on the CPU.

    ``input_shape`` is one sample's shape: ``(D,)`` for vectors, ``(C, H, W)`` for images.
    ``model_args`` are checked against the model's entry and completed with its defaults.
    ``init``: ``kaiming_normal`` (He normal, fan_out) or ``torch_default`` (PyTorch's own, the
    reference code's) for the convolutions; every slot holds the same model, drawn from ``seed``.
    """
    from .base import init_model_

    model = get(name)
    if int(num_models) < 1:
        raise ValueError(f"num_models must be >= 1, got {num_models}")
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    shape = tuple(int(s) for s in input_shape)
    check_args(name, model_args, base=("model_args",))
    problem = input_problem(name, shape, model_args)
    if problem:
        key, value, why = problem
        raise ValueError(f"model {name!r} {why}" if key == "model" else f"model {name!r}: {key} = {value}: {why}")
    stack = model.builder(int(num_models), shape, int(num_classes), **model.complete(model_args))
    init_model_(stack, seed, init)
    return stack

