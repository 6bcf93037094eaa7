"""The model registry: every architecture a protocol can name (``protocol.model``), each one entry.

A model is one ``register(Model(...))`` call (``registry.Model``): its name, the inputs it takes
(vectors, images), its ``model_args`` with types, defaults and ranges (``registry.Arg``), and
its builder. The params schema's ``protocol.model`` enum and each model's ``model_args`` check
are generated from these entries, and the engine builds through ``build_model``. The builders
of the models below live in their own modules (``mlp``, ``cnn``, ``resnet``, ``fastnet``, on the
stacked layers of ``engine.layers`` and the shared parts of ``base``) and are imported when a
model is built: importing the registry imports no torch. ``measure`` counts a model's
parameters, multiply-adds and training memory.

Any other module of this folder is imported by itself after these entries: a new model is one
module holding its entry and its builder (which imports torch when it is called, so that parsing
the workflow stays free of it; docs/extending.md, "Add a model").
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable

from .registry import (REGISTRY, Arg, Model, build_model, check_args, get, input_problem, names,  # noqa: F401
                       register, schema_defs)


def _builder(module: str, attribute: str) -> Callable[..., Any]:
    """The builder ``attribute`` of module ``module`` of this package, imported when first called."""

    def build(*args: Any, **model_args: Any) -> Any:
        return getattr(importlib.import_module(f"{__name__}.{module}"), attribute)(*args, **model_args)

    return build


WIDTH = Arg("width", "number", 1.0, "channel multiplier of every layer", low=0.0, low_open=True)


def _pool_needs_images(shape: tuple[int, ...], args: dict) -> tuple[str, str] | None:
    """The MLP pools images only, by blocks no larger than they are."""
    if args["pool"] > 1 and len(shape) != 3:
        return "pool", f"pooling (> 1) is for image inputs (C, H, W); these are vectors {shape}: set pool: 1"
    if args["pool"] > 1 and min(shape[1:]) < args["pool"]:
        return "pool", f"larger than the images ({shape[1]} x {shape[2]} pixels)"
    return None


register(Model(
    "mlp", "fully connected ReLU layers (images flattened, optionally average-pooled first)", ("vector", "image"),
    (Arg("hidden", "integers", [256, 256], "widths of the hidden layers, in order", low=1),
     Arg("pool", "integer", 1, "images: average each pool x pool block of pixels first (1: none)", low=1)),
    _builder("mlp", "MLP"), check_inputs=_pool_needs_images))
register(Model(
    "cnn", "a small CNN: conv-BN-ReLU stages of 32, 64, 128 channels, global average pooling", ("image",),
    (WIDTH,), _builder("cnn", "SmallCNN")))
register(Model(
    "resnet18", "CIFAR ResNet-18: 3x3 stem, BasicBlock stages (2, 2, 2, 2) of 64-512 channels", ("image",),
    (WIDTH,), _builder("resnet", "resnet18")))
register(Model(
    "resnet34", "CIFAR ResNet-34: 3x3 stem, BasicBlock stages (3, 4, 6, 3) of 64-512 channels", ("image",),
    (WIDTH,), _builder("resnet", "resnet34")))
register(Model(
    "fastnet", "a small fast CIFAR net after airbench: GELU, max-pool blocks, scaled logits", ("image",),
    (WIDTH,
     Arg("logit_scale", "number", 1.0 / 9, "the logits' multiplier (airbench's 1/9)", low=0.0, low_open=True),
     Arg("bn_momentum", "number", 0.1, "BatchNorm's running-statistics momentum", low=0.0, high=1.0)),
    _builder("fastnet", "FastNet")))

# the built-in models' implementations (they import torch) and the registry's own modules
_NOT_ENTRIES = {"registry", "base", "measure", "mlp", "cnn", "resnet", "fastnet"}
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in _NOT_ENTRIES and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
