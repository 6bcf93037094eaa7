"""``smoothbench run ARGS`` and ``smoothbench pull``: Snakemake and DVC through their command lines.

``smoothbench run ARGS`` is Snakemake's own command line, checked first. Snakemake reads ``--configfile`` and ``--config`` in its command line, before the workflow
starts, and fails there in its own words (a traceback for a folder, "Config file must be given
as JSON or YAML" naming no file for an empty one, an "Invalid config definition" traceback for a
dotted key). ``check_snakemake_args`` gives one line for each such value instead; the study
itself is validated by the workflow (``study.validate_params``). ``run_snakemake`` then becomes
``snakemake --workflow-profile workflow/profiles/default ARGS`` (the local profile: keep going past
a failed job, rerun the jobs an interrupted run left incomplete, compare inputs by checksum; ARGS
that name a profile of their own get none added), with smoothbench's console (a line per finished
job; ``--verbose``: Snakemake's own, every job's files and command). ``make study`` runs it.

``smoothbench pull`` (``make pull``) is ``dvc pull``, then, when ``dvc status`` says the workspace
is what dvc.lock pins, ``snakemake --touch --forceall``: Snakemake writes its own records of the
pulled products (their params, input checksums and code), so that nothing reruns, and a later
change to params or code reruns what it affects. Where DVC's status differs (another study in
params.yaml, a missing output), nothing is marked and Snakemake decides as for any files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from ..study.params import read_study

_CONFIG_KEY = re.compile(r"[a-zA-Z_][\w-]*\w$")   # what Snakemake's parse_config takes as a key
PROFILE = "workflow/profiles/default"


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


def config_overrides(items: list[str]) -> dict:
    """``--config KEY=VALUE`` items as Snakemake's command line reads them: each value as YAML
    text of strings (the study types them, ``study.typed``); a bad item is a ``ValueError``."""
    import yaml

    def read(text: str):
        try:
            return yaml.load(text, Loader=yaml.BaseLoader) if text else None
        except yaml.YAMLError:
            return text

    check_snakemake_args([arg for item in items for arg in ("--config", item)])
    return {key: read(value) for key, _, value in (item.partition("=") for item in items)}


def tool(name: str) -> str | None:
    """The command ``name`` installed beside this Python (the project's virtualenv), else on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def with_profile(argv: list[str]) -> list[str]:
    """``argv`` with the local profile first, unless it names a profile of its own."""
    if any(a.split("=", 1)[0] in ("--profile", "--workflow-profile") for a in argv):
        return list(argv)
    return ["--workflow-profile", PROFILE, *argv]


VERBOSE = "--verbose"
CONSOLE = "smoothbench"   # the logger plugin snakemake_logger_plugin_smoothbench (src/, beside smoothbench)


def with_console(argv: list[str]) -> list[str]:
    """Snakemake's arguments for ``smoothbench run ARGS``: with smoothbench's console (``--logger
    smoothbench``: a line per finished job, errors whole), unless ARGS hold ``--verbose`` (then
    Snakemake's own console, every job's files and shell command; ``--verbose`` is
    ``smoothbench run``'s and not passed on) or name a logger of their own."""
    if VERBOSE in argv:
        return [a for a in argv if a != VERBOSE]
    if any(a.split("=", 1)[0] == "--logger" for a in argv):
        return list(argv)
    return [*argv, "--logger", CONSOLE]


def run_snakemake(argv: list[str]) -> int:
    """``smoothbench run ARGS``: Snakemake's --configfile and --config values checked first (one
    line each, where Snakemake's own command line would stop in its words), then this process
    becomes ``snakemake --workflow-profile workflow/profiles/default ARGS --logger smoothbench``
    (the one beside this Python, else on PATH; see ``with_profile`` and ``with_console``): same
    signals, same exit."""
    try:
        check_snakemake_args(argv)
    except ValueError as exc:
        print(f"smoothbench run: error: {exc}", file=sys.stderr)
        return 2
    exe = tool("snakemake")
    if not exe:
        print("smoothbench run: error: snakemake is not installed beside this Python nor on PATH; make setup "
              "installs it", file=sys.stderr)
        return 2
    sys.stdout.flush()
    os.execv(exe, [exe, *with_profile(with_console(argv))])


def dvc_changes(status: dict) -> str:
    """``dvc status --json`` in a few words: each stage and what changed in it."""
    parts = []
    for stage, entries in sorted(status.items()):
        said = []
        for entry in entries if isinstance(entries, list) else [entries]:
            if isinstance(entry, dict):
                said += [f"{what} {', '.join(sorted(paths)) if isinstance(paths, dict) else paths}"
                         for what, paths in entry.items()]
            else:
                said.append(str(entry))
        parts.append(f"{stage}: {'; '.join(said)}")
    return ", ".join(parts)


def pull(checkout: bool = False) -> int:
    """``smoothbench pull``: ``dvc pull`` (``dvc checkout`` with ``checkout``: from DVC's cache
    only), then Snakemake's records of what DVC put in place (``snakemake --touch --forceall``)
    when ``dvc status`` says it is all as dvc.lock pins. One line says what was done."""
    dvc, snakemake = tool("dvc"), tool("snakemake")
    if not dvc or not snakemake:
        raise ValueError(f"{'dvc' if not dvc else 'snakemake'} is not installed beside this Python nor on PATH; "
                         "make setup installs it")
    if not checkout and subprocess.run([dvc, "remote", "default"], capture_output=True).returncode != 0:
        raise ValueError("no DVC remote is configured: add yours once (dvc remote add --local -d store PATH), "
                         "or train with make study")
    fetched = subprocess.run([dvc, "checkout" if checkout else "pull"])
    if fetched.returncode != 0:
        return fetched.returncode
    status = subprocess.run([dvc, "status", "--json"], capture_output=True, text=True)
    try:
        changes = json.loads(status.stdout or "null")
    except ValueError:
        changes = None
    if status.returncode != 0 or not isinstance(changes, dict):
        print(status.stdout + status.stderr, end="", file=sys.stderr)
        return status.returncode or 1
    if changes:
        print(f"smoothbench pull: the workspace is not what dvc.lock pins ({dvc_changes(changes)}); nothing is "
              "marked up to date: make study (or dvc repro) runs what it needs")
        return 0
    touched = subprocess.run([snakemake, "--touch", "--forceall", "--cores", "1"], capture_output=True, text=True)
    if touched.returncode != 0:
        print((touched.stdout + touched.stderr)[-3000:], end="", file=sys.stderr)
        raise ValueError("snakemake --touch failed (above); the products are DVC's, Snakemake has no record of them")
    print("smoothbench pull: the workspace is what dvc.lock pins, and Snakemake's records now say so "
          "(snakemake --touch): nothing reruns")
    return 0
