"""The report's figures, PNG and SVG, byte-reproducible: a registry of entries (``registry``)
and the drawing code grouped by concept:

- ``style``       what every figure shares: style, fixed margins, deterministic saving, palettes;
- ``per_method``  the claims at a glance and the leaderboard (each method with its interval);
- ``smooth_rate`` figures over the smooth rate r: accuracy, heatmaps, memorisation, calibration,
                  flipping against LS at the matching rate;
- ``curves``      figures over epochs: the training curves.

A new figure is one ``register(Figure(...))`` call beside its drawing function, in one of
these modules or in a new module of this folder (imported here by itself, after these, by
name). Registry order is the order of the files and of ``snakemake --report``'s categories.
"""

from __future__ import annotations

import importlib
import pkgutil

from .registry import FIGURES, Figure, figure_files, figures_for, register, write_figures  # noqa: F401
from .style import FIGURE_FORMATS, FOLDERS  # noqa: F401

MODULES = ("per_method", "smooth_rate", "curves")
_INFRASTRUCTURE = {"registry", "style"}

for _name in MODULES:
    importlib.import_module(f"{__name__}.{_name}")
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in MODULES and _info.name not in _INFRASTRUCTURE and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
