"""The report entry points: which files a study's report consists of, and writing them.

A report is its registries' entries: the table and text files (``table_files``: tables/,
summary.json, findings.md) and, per (dataset, noise kind, variant), the figures
(``figures``: figures/*.png and figures-svg/*.svg). ``report_files`` names them from the
study's shape alone (the workflow declares them before anything is trained; a file with
nothing to show is not among them); ``build_reports`` reads the results once
(``results.load``: results.csv, curves.csv, choices.csv, test_correct.npz) and writes every entry.

The folders hold exactly the files of the study just reported: a file left there by an
earlier, different study is removed, so the reports describe one study and nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import figures, results as study_results
from .shape import Shape
from .table_files import FOLDER, table_files

OWNED_FOLDERS = (FOLDER,) + tuple(figures.FOLDERS.values())


def report_files(keys: dict[tuple[str, str, str], Shape | set[str]],
                 references: list[dict] | None = None) -> list[str]:
    """The file names (relative to the report folder) written for these (dataset, noise kind,
    variant) keys, each with its shape (``shape.Shape``; or the methods of its cells, shorthand
    for a shape with several noise rates and seeds and a held-out split). ``references``: the
    published numbers compared with (default: the package's)."""
    names = [entry.path for entry in table_files(keys, references)]
    for key in sorted(keys):
        names += figures.figure_files(key, keys[key])
    return names


def build_reports(results_csv: str | os.PathLike, curves_csv: str | os.PathLike,
                  out_dir: str | os.PathLike, reference_dir: str | os.PathLike | None = None,
                  choices_csv: str | os.PathLike | None = None, correct: str | os.PathLike | None = None,
                  analysis: dict | None = None) -> list[str]:
    """Write the table and text files and the figures into ``out_dir``; return their paths.
    ``choices_csv`` and ``correct`` default to choices.csv and test_correct.npz beside
    results.csv; ``analysis``: params.yaml's analysis keys (default: the schema's defaults)."""
    results = study_results.load(results_csv, curves_csv, reference_dir, choices_csv, correct, analysis)
    out = Path(out_dir)
    shapes = results.shapes()
    for entry in table_files(shapes, results.references):
        entry.write_into(results, out)
    figures.write_figures(results, out)
    written = report_files(shapes, results.references)
    _remove_stale(out, set(written))
    return [str(out / name) for name in written]


def _remove_stale(out: Path, keep: set[str]) -> None:
    """Remove files of the owned folders that this report did not write (an earlier study's)."""
    for folder in OWNED_FOLDERS:
        for path in sorted((out / folder).glob("*")):
            if path.is_file() and path.relative_to(out).as_posix() not in keep:
                path.unlink()


def compare_reports(built: str | os.PathLike, expected: str | os.PathLike) -> dict[str, list[str]]:
    """Compare a report folder with the committed copy of one (``expected/``), byte for byte:
    the relative paths that are ``same``, ``differ``, ``missing`` (in expected, not built) and
    ``extra`` (built, not expected). The copy's ``params.yaml`` (the study it describes) is
    not a report file and is skipped. A folder that is missing or holds no report files is a
    ``ValueError`` (one line naming it): comparing nothing proves nothing."""
    built, expected = Path(built), Path(expected)

    def files(root: Path) -> set[str]:
        """The report files below ``root`` (hidden files, e.g. a .gitignore, are not reports)."""
        what = "is not a folder" if root.exists() else "no such folder"
        if root.is_dir():
            found = {p.relative_to(root).as_posix() for p in root.rglob("*")
                     if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)}
            found -= {"params.yaml"} if root == expected else set()
            if found:
                return found
            what = "holds no report files"
        # nothing to compare is no reproduction: one line, and the caller exits non-zero
        raise ValueError(f"{root.as_posix().rstrip('/')}/: {what}; give the built report folder (default: reports; "
                         "make study builds it) and the committed copy to compare it with (default: expected)")

    b, e = files(built), files(expected)
    out: dict[str, list[str]] = {"same": [], "differ": [], "missing": sorted(e - b), "extra": sorted(b - e)}
    for rel in sorted(b & e):
        out["same" if (built / rel).read_bytes() == (expected / rel).read_bytes() else "differ"].append(rel)
    return out


def comparison_line(result: dict[str, list[str]], built: str, expected: str, shown: int = 5) -> str:
    """The reproduction check's one line."""
    total = sum(len(v) for v in result.values())
    bad = result["differ"] + result["missing"] + result["extra"]
    if not bad:
        return f"reproduction check: {built}/ is byte-identical to {expected}/ ({total} files)"
    parts = []
    for key, label in (("differ", "differ"), ("missing", "missing"), ("extra", "not in the copy")):
        if result[key]:
            names = ", ".join(result[key][:shown]) + (f", ... ({len(result[key])} in all)" if len(result[key]) > shown else "")
            parts.append(f"{label}: {names}")
    return (f"reproduction check: {len(bad)} of {total} files of {built}/ are not byte-identical to {expected}/ "
            f"(the committed copy) - " + "; ".join(parts))
