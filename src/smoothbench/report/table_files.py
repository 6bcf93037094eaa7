"""The table registry: the report's table and text files, one entry each.

An entry is one ``register(TableFile(...))`` call: the file's path relative to the report
folder, the methods a study needs for it to be written (none: every study), and its
writer, a function of the study's ``Results`` that returns the file's content (text, or an
object written as deterministic JSON). ``build_reports`` writes the entries in registry
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
from .results import Key, Results


@dataclass(frozen=True)
class TableFile:
    path: str                                   # relative to the report folder
    write: Callable[[Results], Any]             # the content: text, or an object written as JSON
    needs: frozenset[str] = field(default_factory=frozenset)   # methods the study must have
    needs_any: frozenset[str] = field(default_factory=frozenset)   # of which the study must have one (empty: none)
    category: str | None = None                 # its category in `snakemake --report` (None: not shown)
    caption: str = ""                           # what it holds, for `snakemake --report`

    def wanted(self, methods: set[str]) -> bool:
        """Whether a study with these methods (all its settings together) has this file."""
        return self.needs <= methods and (not self.needs_any or bool(self.needs_any & methods))

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


def table_files(keys: dict[Key, set[str]] | None = None) -> list[TableFile]:
    """The entries of a study whose (dataset, noise kind, variant) keys have cells of these
    methods (None: all), in registry order; a table file covers the whole study."""
    every_method = set().union(*keys.values()) if keys is not None else None
    return [e for e in TABLE_FILES.values() if every_method is None or e.wanted(every_method)]


FOLDER = tables.FOLDER
TABLE_CAPTION = ("Paper-style table: test accuracy (%) of every method at its best parameters per noise setting, "
                 "mean ± std over seeds, under one checkpoint selection.")


def _selection_table(selection: str) -> TableFile:
    return TableFile(f"{FOLDER}/table_{selection}.csv",
                     lambda r: tables.csv_table(r.settings, r.references, selection),
                     category="Tables", caption=f"{TABLE_CAPTION} Selection: {SELECTION_TITLES[selection]}.")


register(TableFile(f"{FOLDER}/tables.md",
                   lambda r: tables.md_tables(r.settings, r.references) + "\n".join(leaderboard.md(r.leaderboard)
                                                                                    + noise_estimates.md(r.settings))))
register(TableFile(f"{FOLDER}/tables.tex", lambda r: tables.tex_tables(r.settings, r.references)))
for _selection in SELECTIONS:
    register(_selection_table(_selection))
register(TableFile(f"{FOLDER}/reproduction.csv", lambda r: tables.reproduction_csv(r.settings, r.references)))
register(TableFile(f"{FOLDER}/claims.csv", lambda r: tables.claims_csv(r.claim_rows)))
register(TableFile(f"{FOLDER}/leaderboard.csv", lambda r: leaderboard.csv(r.leaderboard)))
register(TableFile(f"{FOLDER}/noise_estimates.csv", lambda r: noise_estimates.csv(r.settings),
                   needs_any=noise_estimates.ESTIMATED, category="Tables",
                   caption="The error of T estimated by anchor points from the warm-up model, per setting: mean "
                           "absolute error against the true T and the noise rate it implies."))
register(TableFile("summary.json", lambda r: findings.summary(r.settings, r.claim_rows)))
register(TableFile("findings.md", lambda r: findings.findings(r.settings, r.claim_rows), category="Findings",
                   caption="The findings computed from the results: the claims' verdicts first, then per setting the "
                           "best method and each smoothing method's gain over its baseline."))
