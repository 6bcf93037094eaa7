"""``smoothbench run ARGS``: Snakemake's own command line, checked first, then Snakemake itself.

Snakemake reads ``--configfile`` and ``--config`` in its command line, before the workflow
starts, and fails there in its own words (a traceback for a folder, "Config file must be given
as JSON or YAML" naming no file for an empty one, an "Invalid config definition" traceback for a
dotted key). ``check_snakemake_args`` gives one line for each such value instead; the study
itself is validated by the workflow (``study.validate_params``). ``run_snakemake`` then becomes
``snakemake ARGS``. ``make study`` runs it.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from ..study.params import read_study

_CONFIG_KEY = re.compile(r"[a-zA-Z_][\w-]*\w$")   # what Snakemake's parse_config takes as a key


def snakemake_study_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """The ``--configfile`` files and ``--config`` items of a Snakemake command line, read as its
    parser reads them: an option takes the words after it up to the next option (``--opt=X``: X)."""
    files: list[str] = []
    items: list[str] = []
    into: list[str] | None = None
    for arg in argv:
        if arg.startswith("-") and len(arg) > 1:
            name, eq, value = arg.partition("=")
            into = files if name in ("--configfile", "--configfiles") else items if name in ("--config", "-C") else None
            if eq and into is not None:
                into.append(value)
                into = None
        elif into is not None:
            into.append(arg)
    return files, items


def check_snakemake_args(argv: list[str]) -> None:
    """A ``ValueError`` with one line for each --configfile or --config value that Snakemake's own
    command line would stop on; the study itself is validated by the workflow."""
    files, items = snakemake_study_args(argv)
    for f in files:
        if Path(f).is_dir():
            raise ValueError(f"--configfile {f}: is a folder; give a study file (YAML), e.g. config/paper-cifar10.yaml")
        try:
            content = read_study(f)
        except FileNotFoundError:
            raise ValueError(f"--configfile {f}: no such file") from None
        if content is None:
            raise ValueError(f"--configfile {f}: is empty; a study file holds a mapping of study keys "
                             "(datasets, noise, methods, seeds, ...)")
        if not isinstance(content, dict):
            raise ValueError(f"--configfile {f}: must hold a mapping of study keys (datasets, noise, methods, seeds, "
                             f"...), got {type(content).__name__}")
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--config {item}: give KEY=VALUE, e.g. --config seeds=[0,1]")
        if not _CONFIG_KEY.match(key):
            parts = key.split(".")
            if len(parts) > 1 and all(_CONFIG_KEY.match(part) for part in parts):
                nested = value
                for part in reversed(parts[1:]):
                    nested = f"{{{part}: {nested}}}"
                raise ValueError(f"--config {item}: Snakemake takes top-level keys only; give {parts[0]} as a "
                                 f"mapping, e.g. --config '{parts[0]}={nested}'")
            raise ValueError(f"--config {item}: {key!r} is not a key of the study; give KEY=VALUE with a top-level "
                             "key (datasets, noise, methods, seeds, protocol, ...)")


def run_snakemake(argv: list[str]) -> int:
    """``smoothbench run ARGS``: Snakemake's --configfile and --config values checked first (one
    line each, where Snakemake's own command line would stop in its words), then this process
    becomes ``snakemake ARGS`` (the one beside this Python, else on PATH): same signals, same exit."""
    try:
        check_snakemake_args(argv)
    except ValueError as exc:
        print(f"smoothbench run: error: {exc}", file=sys.stderr)
        return 2
    beside = Path(sys.executable).parent / "snakemake"
    exe = str(beside) if beside.exists() else shutil.which("snakemake")
    if not exe:
        print("smoothbench run: error: snakemake is not installed beside this Python nor on PATH; make setup "
              "installs it", file=sys.stderr)
        return 2
    sys.stdout.flush()
    os.execv(exe, [exe, *argv])
