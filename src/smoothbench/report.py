"""The report entry points: which files a study's report consists of, and writing them.

``build_reports`` reads the tidy results (``collect``) and writes, under ``out_dir``:

- ``tables/``: ``tables.md``, ``tables.tex``, ``table_{best,selected,final}.csv`` and
  ``reproduction.csv`` (the paper's numbers beside ours, with verdicts) (``tables``);
- ``summary.json`` and ``findings.md`` (``findings``);
- ``figures/*.png`` and ``figures-svg/*.svg`` (``figures``).

The folders hold exactly the files of the study just reported: a file left there by an
earlier, different study is removed, so the reports describe one study and nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from . import figures, findings, tables
from .collect import read_curves, read_references, read_results
from .io import write_json, write_text
from .selection import SELECTIONS
from .stats import settings_of

TABLE_FILES = ("tables.md", "tables.tex") + tuple(f"table_{s}.csv" for s in SELECTIONS) + ("reproduction.csv",)
TEXT_FILES = tuple(f"{tables.FOLDER}/{name}" for name in TABLE_FILES) + ("summary.json", "findings.md")
OWNED_FOLDERS = (tables.FOLDER,) + tuple(figures.FOLDERS.values())


def report_files(keys: Iterable[tuple[str, str, str]]) -> list[str]:
    """The file names (relative to the report folder) written for these (dataset, noise kind,
    variant) keys."""
    names = list(TEXT_FILES)
    for key in sorted(set(tuple(str(x) for x in k) for k in keys)):
        names += figures.figure_files(key)
    return names


def build_reports(results_csv: str | os.PathLike, curves_csv: str | os.PathLike,
                  out_dir: str | os.PathLike, reference_dir: str | os.PathLike | None = None) -> list[str]:
    """Write tables, figures, summary.json and findings.md into ``out_dir``; return their paths."""
    rows = read_results(results_csv)
    if not rows:
        raise ValueError(f"{results_csv}: no cells")
    curves = read_curves(curves_csv)
    refs = read_references(reference_dir)
    settings = settings_of(rows)
    out = Path(out_dir)

    write_text(out / tables.FOLDER / "tables.md", tables.md_tables(settings, refs))
    write_text(out / tables.FOLDER / "tables.tex", tables.tex_tables(settings, refs))
    for selection in SELECTIONS:
        write_text(out / tables.FOLDER / f"table_{selection}.csv", tables.csv_table(settings, refs, selection))
    write_text(out / tables.FOLDER / "reproduction.csv", tables.reproduction_csv(settings, refs))
    write_json(out / "summary.json", findings.summary(settings))
    write_text(out / "findings.md", findings.findings(settings))
    figures.write_figures(settings, curves, out)
    written = report_files(settings.keys())
    _remove_stale(out, set(written))
    return [str(out / name) for name in written]


def _remove_stale(out: Path, keep: set[str]) -> None:
    """Remove files of the owned folders that this report did not write (an earlier study's)."""
    for folder in OWNED_FOLDERS:
        for path in sorted((out / folder).glob("*")):
            if path.is_file() and path.relative_to(out).as_posix() not in keep:
                path.unlink()
