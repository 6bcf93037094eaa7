"""The table registry: the report's table and text files, one entry each.

An entry is one ``register(TableFile(...))`` call: the file's path relative to the report
folder, what a study needs for it to be written (``needs``: methods with cells; ``wants``: a
test of the study's shapes, e.g. a held-out split somewhere; none: every study), and its
writer, a function of the study's ``Results`` that returns the file's content (text, or an
object written as deterministic JSON). A table with nothing to show is neither written nor
promised. ``build_reports`` writes the entries in registry
order, ``report_files`` names them, and the workflow declares them; an entry with a
``category`` is shown in ``snakemake --report`` under it, with its ``caption``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import findings, leaderboard, noise_estimates, tables
from .. import methods as registry
from ..core.files import write_json, write_text
from ..core.selection import SELECTION_TITLES, SELECTIONS
from .collect import csv_text, rate_key, read_references
from .results import Key, Results
from .shape import Shape


@dataclass(frozen=True)
class TableFile:
    path: str                                   # relative to the report folder
    write: Callable[[Results], Any]             # the content: text, or an object written as JSON
    needs: frozenset[str] = field(default_factory=frozenset)   # methods the study must have
    needs_any: frozenset[str] = field(default_factory=frozenset)   # of which the study must have one (empty: none)
    category: str | None = None                 # its category in `snakemake --report` (None: not shown)
    caption: str = ""                           # what it holds, for `snakemake --report`
    # what else the study must hold: a test of its shapes (per (dataset, noise kind, variant)) and
    # the published reference numbers
    wants: Callable[[dict[Key, Shape], list[dict]], bool] | None = None

    def wanted(self, shapes: dict[Key, Shape], references: list[dict]) -> bool:
        """Whether a study of these shapes has this file."""
        methods = set().union(*(s.methods for s in shapes.values())) if shapes else set()
        return self.needs <= methods and (not self.needs_any or bool(self.needs_any & methods)) and (self.wants is None or self.wants(shapes, references))

    def write_into(self, results: Results, out: Path) -> None:
        content = self.write(results)
        (write_text if isinstance(content, str) else write_json)(out / self.path, content)


TABLE_FILES: dict[str, TableFile] = {}


def register(entry: TableFile) -> TableFile:
    """Add a table file (ValueError naming it when its path is taken or a method is unknown)."""
    if entry.path in TABLE_FILES:
        raise ValueError(f"table file {entry.path!r} is registered already")
    unknown = sorted((entry.needs | entry.needs_any) - set(registry.names()))
    if unknown:
        raise ValueError(f"table file {entry.path!r}: method(s) {', '.join(unknown)} are not registered")
    TABLE_FILES[entry.path] = entry
    return entry


def table_files(keys: dict[Key, Shape | set[str]] | None = None, references: list[dict] | None = None
                ) -> list[TableFile]:
    """The entries of a study of these (dataset, noise kind, variant) shapes (or sets of
    methods; None: all), in registry order; a table file covers the whole study. ``references``:
    the published numbers the report compares with (default: the package's)."""
    if keys is None:
        return list(TABLE_FILES.values())
    shapes = {k: Shape.of(v) for k, v in keys.items()}
    refs = read_references() if references is None else references
    return [e for e in TABLE_FILES.values() if e.wanted(shapes, refs)]


def held_out(shapes: dict[Key, Shape], references: list[dict]) -> bool:
    """Some (dataset, noise kind, variant) of the study has a held-out split (an honest selection)."""
    return any(s.held_out for s in shapes.values())


def published(shapes: dict[Key, Shape], references: list[dict]) -> bool:
    """Some published number is of a (dataset, noise kind) of the study and one of its methods."""
    return any((r["dataset"], r["noise_kind"]) == key[:2] and r["method"] in shape.methods
               for key, shape in shapes.items() for r in references)


PROTOCOL_COLUMNS = ["dataset", "noise_kind", "noise_rate", "variant", "method", "params", "honest_choice",
                    "seeds_with_epoch", "first", "middle", "last", "flagged", "final_minus_honest_pct", "collapsed",
                    "diverged", "cells"]


def protocol_csv(results: Results) -> str:
    """Per cell of the grid (setting, variant, method, parameters): where its seeds' honest
    epochs fall in the phase, final minus honest, collapse and divergence (``epochs``)."""
    out = []
    for key, u in sorted(results.phase_use.items(), key=lambda kv: (
            kv[0][0], kv[0][1], rate_key(kv[0][2]), kv[0][3], registry.order(kv[0][4]), kv[0][5])):
        ds, kind, rate, variant, method, values = key
        s = next(x for x in results.settings[(ds, kind, variant)] if x.noise_rate == rate)
        honest = s.chosen[(method, "selected")].values == values
        fmh = None if u.final_minus_honest is None else round(u.final_minus_honest, 4)
        out.append([ds, kind, rate, variant, method, registry.get(method).params_text(values), int(honest), u.n,
                    u.first, u.middle, u.last, int(u.flagged), fmh, u.collapsed, u.diverged, u.cells])
    return csv_text(PROTOCOL_COLUMNS, out)


FOLDER = tables.FOLDER
TABLE_CAPTION = ("Paper-style table: test accuracy (%) of every method at its best parameters per noise setting, "
                 "mean ± std over seeds, under one checkpoint selection.")


def _selection_table(selection: str) -> TableFile:
    return TableFile(f"{FOLDER}/table_{selection}.csv",
                     lambda r: tables.csv_table(r.settings, r.references, selection),
                     category="Tables", caption=f"{TABLE_CAPTION} Selection: {SELECTION_TITLES[selection]}.",
                     wants=held_out if selection == "selected" else None)


register(TableFile(f"{FOLDER}/tables.md",
                   lambda r: tables.md_tables(r.settings, r.references) + "\n".join(leaderboard.md(r.leaderboard)
                                                                                    + noise_estimates.md(r.settings))))
register(TableFile(f"{FOLDER}/tables.tex", lambda r: tables.tex_tables(r.settings, r.references)))
for _selection in SELECTIONS:
    register(_selection_table(_selection))
register(TableFile(f"{FOLDER}/reproduction.csv", lambda r: tables.reproduction_csv(r.settings, r.references),
                   wants=published))
register(TableFile(f"{FOLDER}/claims.csv", lambda r: tables.claims_csv(r.claim_rows)))
register(TableFile(f"{FOLDER}/leaderboard.csv", lambda r: leaderboard.csv(r.leaderboard)))
register(TableFile(f"{FOLDER}/protocol.csv", protocol_csv, wants=held_out, category="Tables",
                   caption="The protocol shown: per cell of the grid, where its seeds' honest epochs fall in the "
                           "cell's own phase (first, middle, last), final minus honest, collapse and divergence."))
register(TableFile(f"{FOLDER}/noise_estimates.csv", lambda r: noise_estimates.csv(r.settings),
                   needs_any=noise_estimates.ESTIMATED, category="Tables",
                   caption="The error of T estimated by anchor points from the warm-up model, per setting: mean "
                           "absolute error against the true T and the noise rate it implies."))
register(TableFile("summary.json", lambda r: findings.summary(r)))
register(TableFile("findings.md", lambda r: findings.findings(r), category="Findings",
                   caption="The findings computed from the results: how the verdicts are made, the claims' verdicts, "
                           "the protocol, the leaderboard, NLS against the best robust baseline, the optimism gap, "
                           "and per setting each smoothing method against its baseline."))
