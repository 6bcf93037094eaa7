"""Label noise: the noise-kind registry, and corrupting a dataset's training labels with a kind.

- ``registry.py`` — ``NoiseKind``: one entry per kind (its rates, its transition matrix or
  corruption, its options, what it needs); rate ranges, transition matrices, options, the
  schema's part and ``--help``'s text, all read off the entries.
- ``sampling.py`` — drawing labels from a transition matrix, the realised transition.
- ``classconditional.py`` (``symmetric``, ``pairflip``, ``asymmetric``), ``instance.py``,
  ``human.py`` (the CIFAR-N label sets), ``annotations.py`` (a file of your own): the kinds,
  each entry beside its corruption.
- ``labels.py`` — the noise step: a dataset file -> its noisy labels and their statistics.

A new kind is one ``register`` call: in one of these modules, or in a new module of this
folder, which is imported here by itself (after the kinds above, by name). The registry's
order is the order of the schema's enum and of ``smoothbench noise --help``.
"""

from __future__ import annotations

import importlib
import pkgutil

from .registry import (REGISTRY, NoiseJob, NoiseKind, Option, check_rate, describe, get, names,  # noqa: F401
                       numeric_names, option_defaults, option_help, rate_range, register, schema_defs, study_options,
                       transition_matrix, with_defaults)
from .sampling import SAMPLERS, corrupt_labels, empirical_transition  # noqa: F401

KINDS = ("classconditional", "instance", "human", "annotations")
_INFRASTRUCTURE = {"registry", "sampling", "labels"}

for _name in KINDS:
    importlib.import_module(f"{__name__}.{_name}")
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in KINDS and _info.name not in _INFRASTRUCTURE and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

from .classconditional import BUILTIN_MAPS, CIFAR100_COARSE, REFERENCE_PAIRS  # noqa: E402,F401
from .human import load_human_labels  # noqa: E402,F401
from .instance import instance_noise  # noqa: E402,F401
from .labels import make_noisy_labels, noise_stats  # noqa: E402,F401
