"""The figure registry: every figure of the report, each ONE entry.

An entry is one ``register(Figure(...))`` call beside its drawing function: its name (the
files are ``fig_<name>_<dataset>_<noise kind>_<variant>`` in PNG and SVG), its title (its
category in ``snakemake --report``), its caption (what it shows), what a (dataset, noise kind,
variant) needs for the figure to show something (``needs``: methods that must all have cells;
``wants``: a test of its ``Shape``: e.g. two seeds for an interval, a held-out split for an
honest epoch), and ``draw``: a function of one (dataset, noise kind, variant), its settings
(noise rates in order) and the study's ``Results`` that returns the matplotlib figure.
``write_figures`` draws and saves every entry a study has, ``figure_files`` names the files,
and the workflow declares them from the same entries: a figure with nothing to show is
neither drawn nor promised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ... import methods as registry
from ..results import Key, Results
from ..seedstats import Setting
from ..shape import Shape
from .style import FIGURE_FORMATS, FOLDERS, rc, save, tag

NAME_PATTERN = r"[a-z][a-z0-9_]*"


@dataclass(frozen=True)
class Figure:
    name: str
    title: str
    caption: str
    draw: Callable[[Key, list[Setting], Results], Any]    # -> a matplotlib Figure
    needs: frozenset[str] = field(default_factory=frozenset)   # methods the setting must have
    wants: Callable[[Shape], bool] | None = None                # what else it must hold

    def wanted(self, shape: Shape | set[str]) -> bool:
        """Whether a (dataset, noise kind, variant) of this shape (or with cells of these
        methods) has this figure."""
        shape = Shape.of(shape)
        return self.needs <= shape.methods and (self.wants is None or self.wants(shape))

    def stem(self, key: Key) -> str:
        return f"fig_{self.name}_{tag(key)}"

    def path(self, key: Key, ext: str) -> str:
        """Its file in one format for one (dataset, noise kind, variant), relative to the report folder."""
        return f"{FOLDERS[ext]}/{self.stem(key)}.{ext}"

    def files(self, key: Key) -> list[str]:
        """Its files for one (dataset, noise kind, variant), one per format."""
        return [self.path(key, ext) for ext in FIGURE_FORMATS]


FIGURES: dict[str, Figure] = {}


def register(figure: Figure) -> Figure:
    """Add a figure (ValueError naming it when its name is taken or not allowed, or a method is unknown)."""
    import re

    if not re.fullmatch(NAME_PATTERN, figure.name) or figure.name in FIGURES:
        raise ValueError(f"figure {figure.name!r}: the name must match {NAME_PATTERN} and be new; "
                         f"taken: {', '.join(FIGURES)}")
    unknown = sorted(figure.needs - set(registry.names()))
    if unknown:
        raise ValueError(f"figure {figure.name!r}: method(s) {', '.join(unknown)} are not registered")
    FIGURES[figure.name] = figure
    return figure


def figures_for(shape: Shape | set[str] | None = None) -> list[Figure]:
    """The figures of a (dataset, noise kind, variant) of this shape (None: all), in registry order."""
    return [f for f in FIGURES.values() if shape is None or f.wanted(shape)]


def figure_files(key: Key, shape: Shape | set[str] | None = None) -> list[str]:
    """The figure files of one (dataset, noise kind, variant), relative to the report folder."""
    return [path for f in figures_for(shape) for path in f.files(key)]


def write_figures(results: Results, out: Path) -> None:
    """Draw and save every figure of every (dataset, noise kind, variant) of the results."""
    import matplotlib

    shapes = results.shapes()
    with matplotlib.rc_context(rc()):
        for key, sets in results.settings.items():
            for figure in figures_for(shapes[key]):
                save(figure.draw(key, sets, results), out, figure.stem(key))
