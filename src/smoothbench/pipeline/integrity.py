"""Product health: ``smoothbench check`` reads every product of a study and sets aside the
ones that cannot be used.

Snakemake trusts a file that exists: a truncated labels file, a group whose per-cell files
were deleted, a results table cut short by a full disk all look "up to date", and every later
run fails on them (or, worse, reports from them). ``check`` reads each product of the study
with the reader its jobs use and moves each one that cannot be used aside (never deletes it)
to ``set-aside/<its path>``, with one line saying why; the next run (``make study``) makes it
again, and Snakemake reruns what depends on it. It is a command of its own, run when a file
is suspect (after a crash, a full disk, a hand edit), never a sweep at every run.

A product cannot be used when

- it is a dataset, noisy-label, label-statistics or group file that does not read back (a
  dataset's content hash, a labels file's arrays, a group's cells and each cell's
  ``metrics.json`` and ``curves.csv``);
- it is a group's per-test-sample correctness file (test_correct.npz) that does not read back;
- it is the results or curves table or the gathered correctness file and is not what
  ``collect`` makes from the study's groups (when every group is usable), or does not read
  back; or the choices table and not what ``choose`` makes from them;
- it is a report file and is not what ``report`` makes from the tables (when both are
  usable): the reports are deterministic, so any other byte is a damaged or edited file.

The temporary files a killed job left beside its outputs (``core.files.atomic_path``'s
``.NAME.XXXXXXXX.tmpSUFFIX``; DVC ignores them, .dvcignore) are set aside too.

``unwritable`` names the folders a run has to write a missing product into and cannot (a
read-only file system, no permission); the workflow says so in one line before any job.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from ..core.vocabulary import TEST_CORRECT_FILE

# what each product is, for choosing its reader
DATA, LABELS, STATS, GROUP, CORRECT, TABLE, REPORT = ("dataset", "noisy-label", "label-statistics", "group",
                                                       "correctness", "table", "report")
CORRECT_FILE, CHOICES_FILE = TEST_CORRECT_FILE, "choices.csv"   # beside results.csv
SET_ASIDE = Path("set-aside")
CHECKPOINTS = "checkpoints"


class Finding(NamedTuple):
    path: str
    kind: str
    why: str


def study_products(study: dict) -> dict[str, str]:
    """Every product of a validated study (path -> kind), in the order the pipeline makes them."""
    from ..report.build import report_files
    from ..study import grid

    groups = grid.expand_groups(study)
    out = {g.data_path: DATA for g in groups}
    for g in groups:
        out[g.labels_path] = LABELS
        out[str(Path(g.labels_path).with_suffix(".json"))] = STATS
    out.update({g.group_json: GROUP for g in groups})
    out.update({g.test_correct: CORRECT for g in groups})
    reports = str(study["output"]["reports_dir"]).rstrip("/")
    out.update({f"{reports}/{name}": TABLE for name in ("results.csv", "curves.csv", CORRECT_FILE, CHOICES_FILE)})
    out.update({f"{reports}/{name}": REPORT for name in report_files(grid.report_shapes(study))})
    return out


def product_folders(study: dict) -> list[str]:
    """The folders a study's jobs write into (where a killed job can leave a temporary file)."""
    return ["data", "noisy", str(study["output"]["results_dir"]), str(study["output"]["reports_dir"]), CHECKPOINTS]


# --------------------------------------------------------------------------- readers


def _first_line(exc: BaseException, path: str) -> str:
    """An error's first line, shortened, without the product's path (nor its folder, for the
    per-cell files of a group)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.replace(f"{path}: ", "").replace(f"{Path(path).parent}/", "")[:160]


def _group_problem(path: str) -> None:
    """Read a group as the collect job does (group.json and every cell's curves.csv), and each
    cell's metrics.json; raise with the reason when something does not read back."""
    from ..core.files import read_json
    from ..report import collect

    with tempfile.TemporaryDirectory() as tmp:
        collect.collect([path], Path(tmp) / "results.csv", Path(tmp) / "curves.csv")
    folder = Path(path).parent / "cells"
    for cell in read_json(path)["cells"]:
        metrics = folder / str(cell["variant"]) / str(cell["cell_id"]) / "metrics.json"
        if not metrics.is_file():
            raise ValueError(f"{metrics}: per-cell file is missing")
        try:
            content = read_json(metrics)
        except ValueError as exc:
            raise ValueError(f"{metrics}: not valid JSON ({exc})") from None
        if not isinstance(content, dict):
            raise ValueError(f"{metrics}: not a JSON object")


def _npz_lacks(path: str, required: set[str]) -> str | None:
    """Reads every entry of an .npz (a bad CRC or a cut shows here): "lacks ..." naming the
    ``required`` arrays it has not, or None."""
    import numpy as np

    with np.load(path, allow_pickle=False) as z:
        for name in z.files:
            z[name]                       # decompresses the entry: a bad CRC or a cut raises here
        missing = required - set(z.files)
    return f"lacks {', '.join(sorted(missing))}" if missing else None


def unreadable(path: str, kind: str) -> str | None:
    """Why the product at ``path`` cannot be read as a ``kind``, in a few words, or None."""
    try:
        if kind == DATA:
            from ..data.datasets import load_dataset

            load_dataset(path)
        elif kind == LABELS:
            return _npz_lacks(path, {"noisy_labels", "kind", "rate", "seed"})
        elif kind == STATS:
            from ..core.files import read_json

            try:
                content = read_json(path)
            except ValueError as exc:
                return f"not valid JSON ({exc})"
            if not isinstance(content, dict):
                return "not a JSON object"
        elif kind == GROUP:
            _group_problem(path)
        elif kind == CORRECT or (kind == TABLE and Path(path).name == CORRECT_FILE):
            return _npz_lacks(path, {"selections", "test_samples", "bits", "has"})
        elif kind == TABLE:
            from ..report.choices import COLUMNS as CHOICE_COLUMNS
            from ..report.collect import read_csv, read_curves, read_results

            name = Path(path).name
            if name == CHOICES_FILE:
                read_csv(path, CHOICE_COLUMNS, "choices")
            else:
                (read_curves if name.startswith("curves") else read_results)(path)
    except Exception as exc:  # every way a file can be bad: the reason, shortened
        return _first_line(exc, path)
    return None


def _differing(made: Path, paths: Iterable[str], base: Path) -> list[str]:
    """The ``paths`` (present) whose bytes differ from the file of the same name below ``made``
    (``base``/NAME -> ``made``/NAME)."""
    out = []
    for p in paths:
        twin = made / Path(p).relative_to(base)
        if not twin.is_file() or twin.read_bytes() != Path(p).read_bytes():
            out.append(p)
    return out


def findings(products: dict[str, str], analysis: dict | None = None) -> list[Finding]:
    """The products (path -> kind) that are there and cannot be used, with why (``analysis``:
    the study's analysis keys, what its report was made with)."""
    out = []
    present = {p: k for p, k in products.items() if os.path.isfile(p)}
    for path, kind in present.items():
        if kind != REPORT:
            why = unreadable(path, kind)
            if why:
                out.append(Finding(path, kind, f"unreadable: {why}"))
    bad = {f.path for f in out}
    groups = [p for p, k in products.items() if k == GROUP]
    pieces = [p for p, k in products.items() if k == CORRECT]
    tables = sorted((p for p, k in products.items() if k == TABLE), key=lambda p: Path(p).name != "results.csv")
    if not groups or len(tables) != 4 or not all(p in present and p not in bad for p in groups + pieces):
        return out  # a group to be made again first: the next run remakes what follows it
    from ..report import build, choices, collect

    base = Path(tables[0]).parent
    reports = [p for p, k in present.items() if k == REPORT]
    with tempfile.TemporaryDirectory() as tmp:
        made = Path(tmp)
        collect.collect(groups, made / "results.csv", made / "curves.csv", made / CORRECT_FILE)
        choices.write_choices(made / "results.csv", made / CHOICES_FILE)
        out += [Finding(p, TABLE, f"not what {'choose' if Path(p).name == CHOICES_FILE else 'collect'} makes from "
                                  "the study's groups")
                for p in _differing(made, [t for t in tables if t in present and t not in bad], base)]
        if reports:
            build.build_reports(made / "results.csv", made / "curves.csv", made / "reports", analysis=analysis)
            out += [Finding(p, REPORT, "not what report makes from the study's groups")
                    for p in _differing(made / "reports", reports, base)]
    return out


# --------------------------------------------------------------------------- setting aside


def set_aside(path: str, aside_root: str | os.PathLike = SET_ASIDE) -> Path:
    """Move ``path`` to ``aside_root/<path>`` (numbered if one is there already); return it."""
    rel = Path(*[p if p != ".." else "__" for p in Path(path).parts if p not in ("/", "")])
    target = Path(aside_root) / rel
    n = 1
    while target.exists():
        target = Path(aside_root) / f"{rel}.{n}"
        n += 1
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(path, target)
    return target


# core.files.atomic_path's temporary files: ".<name>.<8 random characters>.tmp<suffix>"
_TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$")


def stale_temp_files(folders: Iterable[str | os.PathLike]) -> list[str]:
    """Temporary files that a killed job left in ``folders`` (only ever half a file)."""
    out = []
    for folder in folders:
        if os.path.isdir(folder):
            out += sorted(str(p) for p in Path(folder).rglob(".*") if p.is_file() and _TEMP.match(p.name))
    return out


def check(products: dict[str, str], folders: Iterable[str | os.PathLike] = (), act: bool = True,
          aside_root: str | os.PathLike = SET_ASIDE, analysis: dict | None = None) -> list[str]:
    """Find the products that cannot be used and the temporary files of killed jobs in
    ``folders``; when ``act``, move each aside. Returns one line per file (one for many
    report files)."""
    def said(path: str, why: str) -> str:
        if act:
            return f"{path}: {why}; moved to {set_aside(path, aside_root)}"
        return f"{path}: {why}; without --dry-run it is moved to {aside_root}/"

    lines = [said(p, "left by an interrupted job") for p in stale_temp_files(folders)]
    found = findings(products, analysis)
    reports = [f for f in found if f.kind == REPORT]
    if len(reports) > 3:  # a whole report folder: one line, not one per figure
        found = [f for f in found if f.kind != REPORT]
        names = ", ".join(f.path for f in reports[:2])
        where = os.path.commonpath([f.path for f in reports])
        for f in reports if act else ():
            set_aside(f.path, aside_root)
        lines.append(f"{len(reports)} report files are {reports[0].why} ({names}, ...); "
                     + (f"moved to {Path(aside_root) / where}/" if act else f"without --dry-run they are moved to "
                                                                             f"{aside_root}/"))
    return lines + [said(f.path, f.why) for f in found]


# --------------------------------------------------------------------------- unwritable folders


def _not_writable(folder: str) -> str | None:
    """Why files cannot be made in ``folder``, in a few words, or None."""
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "read-only file system"
    except (OSError, AttributeError):
        pass
    return None if os.access(folder, os.W_OK | os.X_OK) else "not writable (permission denied)"


def unwritable(paths: Iterable[str]) -> str | None:
    """One line for the folders that missing products among ``paths`` have to be written into
    and that cannot be written (for each missing path, the nearest folder above it that
    exists: Snakemake makes the ones below), or None."""
    found: dict[str, tuple[str, list[str]]] = {}
    for path in paths:
        if os.path.lexists(path):
            continue
        folder = os.path.dirname(path) or "."
        while folder not in ("", ".", "/") and not os.path.isdir(folder):
            folder = os.path.dirname(folder) or "."
        why = _not_writable(folder)
        if why:
            found.setdefault(folder, (why, []))[1].append(os.path.relpath(path, folder))
    if not found:
        return None
    folder, (why, names) = next(iter(found.items()))
    shown = ", ".join(names[:2]) + (f" and {len(names) - 2} more" if len(names) > 2 else "")
    more = f" (and {len(found) - 1} other folder{'s' if len(found) > 2 else ''})" if len(found) > 1 else ""
    return f"smoothbench: {folder}: {why}, and this run has to write {shown} into it{more}; make it writable and rerun"
