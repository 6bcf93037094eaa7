"""The health of the pipeline's products, checked before Snakemake plans a run.

Snakemake trusts a file that exists: a truncated labels file, a group whose per-cell
files were deleted, a results table cut short by a full disk all look "up to date", and
every later run fails on them (or, worse, reports from them). ``workflow/rules/common.smk``
calls ``check`` once per run, before the DAG is built; each product that cannot be used
is moved aside (never deleted) to ``.snakemake/set-aside/<its path>``, with one line
saying so, and the run makes it again together with everything that depends on it (the
default target names every product, so a missing intermediate is made again too).

A product cannot be used when

- it is a dataset, noisy-label, label-statistics, group or results/curves file, was not
  written by this Snakemake as it is now (no record, or a record whose end time is not the
  file's mtime), DVC does not vouch for it, and it does not read back (the same readers
  the jobs use: a dataset's content hash, a group's cells and per-cell files, ...);
- it is a group file whose per-cell files (``cells/<variant>/<cell>/metrics.json`` and
  ``curves.csv``) are not all there or changed after it was written, however it was written;
- Snakemake marked it incomplete (``.snakemake/incomplete``): a Ctrl-C or kill landed after its
  job wrote it but before Snakemake saw the job finish, and Snakemake would stop the next run
  asking for ``--rerun-incomplete``; set aside, the job runs again (training resumes from its
  checkpoint);
- it is a results/curves table or a report file that Snakemake wrote and that has
  changed since, unless DVC vouches for it (cheap to make again; a report file has no
  reader to check it with).

``unwritable`` finds the folders a run has to write a missing product into but cannot (a
read-only file system, no permission): Snakemake would fail there with a traceback of its own
(``OSError: [Errno 30] Read-only file system``) once the job is scheduled.

Snakemake's records are read from ``.snakemake/metadata`` and ``.snakemake/incomplete``
directly (the layout of its file backend: one file per output, named by the URL-safe base64 of
its path); where that layout differs, a file just counts as "not written by this Snakemake" and
is read, and an incomplete one is left to Snakemake's own ``--rerun-incomplete`` message.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

# what each product is, for choosing its reader
DATA, LABELS, STATS, GROUP, TABLE, REPORT = "dataset", "noisy-label", "label-statistics", "group", "table", "report"
KINDS = (DATA, LABELS, STATS, GROUP, TABLE, REPORT)
ASIDE = Path(".snakemake") / "set-aside"

# Snakemake options after which nothing may be moved: they only look (or unlock, or touch)
_LOOK_ONLY = ("--dry-run", "--dryrun", "--touch", "--unlock", "--summary", "--detailed-summary", "--dag",
              "--rulegraph", "--filegraph", "--lint", "--list-rules", "--list", "--list-target-rules",
              "--list-changes", "--list-code-changes", "--list-input-changes", "--list-params-changes",
              "--list-untracked", "--report", "--cleanup-metadata", "--cleanup-shadow", "--delete-all-output",
              "--delete-temp-output", "--archive", "--export-cwl", "--containerize", "--print-compilation",
              "--generate-unit-tests", "--d3dag", "--conda-create-envs-only", "--version", "--help")


class Finding(NamedTuple):
    path: str
    kind: str
    why: str


def looks_only(argv: Iterable[str]) -> bool:
    """Whether a Snakemake command line only looks (a dry run, a summary, --unlock, ...)."""
    for arg in argv:
        name = arg.split("=", 1)[0]
        if name in _LOOK_ONLY or (name.startswith("--list") and not name.startswith("--list-conda")):
            return True
        if re.fullmatch(r"-[A-Za-z]*[nthSD][A-Za-z]*", arg):
            # -n (dry run), -t (touch), -h (help), -S/-D (summaries), alone or in a cluster (-np)
            return True
    return False


def _record(path: str, folder: str | os.PathLike) -> Path:
    """Where Snakemake's file backend keeps its record of output ``path`` in ``folder``."""
    b64 = base64.urlsafe_b64encode(str(path).encode()).decode()
    parts = [b64[i:i + 254] for i in range(0, len(b64), 254)]
    return Path(folder, *(["@" + p for p in parts[:-1]] + parts[-1:]))


def marked_incomplete(path: str, metadata_dir: str | os.PathLike = ".snakemake/metadata") -> bool:
    """Whether Snakemake marked ``path`` incomplete: its job started and Snakemake never saw it
    finish (Ctrl-C or a kill landed after the job wrote it, before Snakemake recorded that)."""
    return _record(path, Path(metadata_dir).parent / "incomplete").is_file()


def snakemake_endtime(path: str, metadata_dir: str | os.PathLike = ".snakemake/metadata") -> float | None:
    """The end time Snakemake recorded for the job that wrote ``path``, or None."""
    record = _record(path, metadata_dir)
    try:
        endtime = json.loads(record.read_text()).get("endtime")
        return None if endtime is None else float(endtime)
    except (OSError, ValueError, AttributeError, TypeError):
        return None


def written_here(path: str, metadata_dir: str | os.PathLike = ".snakemake/metadata") -> bool | None:
    """True: Snakemake's record describes the file now there; False: it wrote the file and
    the file changed since; None: no record (not written by this Snakemake)."""
    endtime = snakemake_endtime(path, metadata_dir)
    if endtime is None:
        return None
    try:
        return abs(os.stat(path).st_mtime - endtime) < 1e-3
    except OSError:
        return None


def unreadable(path: str, kind: str) -> str | None:
    """Why the product at ``path`` cannot be read as a ``kind``, in a few words, or None."""
    try:
        if kind == DATA:
            from ..data.datasets import load_dataset

            load_dataset(path)
        elif kind == LABELS:
            import numpy as np

            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}  # reads every entry: a bad CRC or a cut shows here
            missing = {"noisy_labels", "kind", "rate", "seed"} - set(arrays)
            if missing:
                return f"lacks {', '.join(sorted(missing))}"
        elif kind == STATS:
            from ..core.files import read_json

            if not isinstance(read_json(path), dict):
                return "not a JSON object"
        elif kind == GROUP:
            from ..report.collect import read_group

            read_group(Path(path))
        elif kind == TABLE:
            from ..report.collect import read_curves, read_results

            (read_curves if Path(path).name.startswith("curves") else read_results)(path)
    except Exception as exc:  # every way a file can be bad: the reason, shortened
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return text.replace(f"{path}: ", "")[:160]
    return None


def cell_file_problem(group_json: str, vouched: Callable[[str], bool]) -> str | None:
    """What is wrong with the per-cell files a readable group.json lists: one missing, or
    one changed after the group was written (the trainer writes them before group.json)
    that DVC does not vouch for."""
    from ..core.files import read_json

    try:
        cells = read_json(group_json)["cells"]
        folder = Path(group_json).parent / "cells"
        wanted = [folder / str(c["variant"]) / str(c["cell_id"]) / name
                  for c in cells for name in ("metrics.json", "curves.csv")]
        written = os.stat(group_json).st_mtime
    except Exception:
        return None  # not readable: unreadable() says why
    gone = [p for p in wanted if not p.is_file()]
    if gone:
        return f"{len(gone)} of its per-cell files are missing ({gone[0]})"
    changed = [p for p in wanted if p.stat().st_mtime > written and not vouched(str(p))]
    if changed:
        return f"{len(changed)} of its per-cell files changed after it was written ({changed[0]})"
    return None


def findings(products: dict[str, str], vouched: Callable[[str], bool],
             metadata_dir: str | os.PathLike = ".snakemake/metadata") -> list[Finding]:
    """The products (path -> kind) that cannot be used, with why."""
    out = []
    for path, kind in products.items():
        if not os.path.isfile(path):
            continue
        if marked_incomplete(path, metadata_dir):
            # what --rerun-incomplete would do, without asking for it: the file itself is whole
            # (every product is written atomically) but Snakemake would refuse the run over it
            out.append(Finding(path, kind, "its job was stopped before Snakemake saw it finish"))
            continue
        if kind == GROUP:
            why = cell_file_problem(path, vouched)
            if why:
                out.append(Finding(path, kind, why))
                continue
        here = written_here(path, metadata_dir)
        if here is True or vouched(path):
            continue
        if kind in (TABLE, REPORT) and here is False:
            out.append(Finding(path, kind, "changed after Snakemake wrote it"))
            continue
        if kind != REPORT:
            why = unreadable(path, kind)
            if why:
                out.append(Finding(path, kind, f"unreadable: {why}"))
    return out


def set_aside(path: str, aside_root: str | os.PathLike = ASIDE) -> Path:
    """Move ``path`` to ``aside_root/<path>`` (numbered if one is there already); return it."""
    target = Path(aside_root) / Path(path)
    n = 1
    while target.exists():
        target = Path(aside_root) / Path(f"{path}.{n}")
        n += 1
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(path, target)
    return target


# io.atomic_path's temporary files: ".<name>.<8 random characters>.tmp<suffix>"
_TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$")


def stale_temp_files(folders: Iterable[str | os.PathLike]) -> list[str]:
    """Temporary files that a killed job left in the product folders (only ever half a
    file; each would also change a DVC folder's hash)."""
    out = []
    for folder in folders:
        if os.path.isdir(folder):
            out += sorted(str(p) for p in Path(folder).rglob(".*") if p.is_file() and _TEMP.match(p.name))
    return out


def check(products: dict[str, str], vouched: Callable[[str], bool], act: bool,
          metadata_dir: str | os.PathLike = ".snakemake/metadata",
          aside_root: str | os.PathLike = ASIDE, folders: Iterable[str | os.PathLike] = ()) -> list[str]:
    """Find the products that cannot be used (and the temporary files of killed jobs in
    ``folders``); when ``act``, move each aside. Returns one line per file for the user."""
    lines = []
    for path in stale_temp_files(folders):
        if act:
            lines.append(f"smoothbench: {path}: left by an interrupted job; moved to {set_aside(path, aside_root)}")
        else:
            lines.append(f"smoothbench: {path}: left by an interrupted job; a run (not a dry run) moves it aside")
    found = findings(products, vouched, metadata_dir)
    reports = [f for f in found if f.kind == REPORT]
    if len(reports) > 3:  # a whole report folder: one line, not one per figure
        found = [f for f in found if f.kind != REPORT]
        names = ", ".join(f.path for f in reports[:2])
        where = os.path.commonpath([f.path for f in reports])
        if act:
            for f in reports:
                set_aside(f.path, aside_root)
            lines.append(f"smoothbench: {len(reports)} report files changed after Snakemake wrote them ({names}, ...); "
                         f"moved to {Path(aside_root) / where}/; this run makes them again")
        else:
            lines.append(f"smoothbench: {len(reports)} report files changed after Snakemake wrote them ({names}, ...); "
                         "a run (not a dry run) moves them aside and makes them again")
    for f in found:
        if act:
            where = set_aside(f.path, aside_root)
            lines.append(f"smoothbench: {f.path}: {f.why}; moved to {where}; this run makes it again, "
                         "and what depends on it")
        else:
            lines.append(f"smoothbench: {f.path}: {f.why}; a run (not a dry run) moves it aside and makes it again")
    return lines


def _not_writable(folder: str) -> str | None:
    """Why files cannot be made in ``folder``, in a few words, or None."""
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "read-only file system"
    except (OSError, AttributeError):
        pass
    return None if os.access(folder, os.W_OK | os.X_OK) else "not writable (permission denied)"


def unwritable(paths: Iterable[str], act: bool) -> list[str]:
    """One line (or none) for the folders that missing products among ``paths`` have to be
    written into and that cannot be written: for each missing path, the nearest folder above it
    that exists (Snakemake makes the ones below)."""
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
        return []
    folder, (why, names) = next(iter(found.items()))
    shown = ", ".join(names[:2]) + (f" and {len(names) - 2} more" if len(names) > 2 else "")
    more = f" (and {len(found) - 1} other folder{'s' if len(found) > 2 else ''})" if len(found) > 1 else ""
    who, todo = ("this run has", "make it writable and rerun") if act else ("a run has", "make it writable first")
    return [f"smoothbench: {folder}: {why}, and {who} to write {shown} into it{more}; {todo}"]
