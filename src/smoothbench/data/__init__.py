"""Datasets: the registry, and everything between a dataset's source and the file training reads.

- ``registry.py`` — ``DatasetSpec``: one entry per dataset (classes, input shape, family, sizes,
  source, reader, raw files and download); ``register``, ``get_spec``, ``names``, ``describe``.
- ``embedded.py`` — datasets built from installed packages, each entry beside its builder.
- ``published.py`` — datasets read from their published raw files, each entry beside its reader.
- ``datasets.py`` — the canonical ``.npz`` file: build (``smoothbench data``), check, load.
- ``userfiles.py`` — a researcher's own files: a dataset given by files, labels given by a file.

A new dataset is one ``register`` call: in one of the modules above, or in a new module of this
folder, which is imported here by itself (after ``embedded`` and ``published``, by name). The
registry's order is the order of ``smoothbench data --list`` and of the params schema's enum.
"""

from __future__ import annotations

import importlib
import pkgutil

from .registry import (DATASETS, FAMILIES, DatasetSpec, describe, embedded_names, get_spec,  # noqa: F401
                       names, register, schema_defs)

SOURCES = ("embedded", "published")
_INFRASTRUCTURE = {"registry", "datasets", "userfiles"}

for _name in SOURCES:
    importlib.import_module(f"{__name__}.{_name}")
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in SOURCES and _info.name not in _INFRASTRUCTURE and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
