"""Provenance: the code each pipeline step runs, and what dvc.lock pins.

``code_files(subcommands)`` lists the library modules the given ``smoothbench``
subcommands import, transitively: the Snakemake rules take them as inputs (so a changed
module reruns the jobs that run it) and dvc.yaml lists them as its stages' deps (a test
compares the two).

``Pins`` reads dvc.lock: the md5 of every output file and the params and code each stage
ran with. The workflow trusts a product that Snakemake did not write itself (``dvc pull`` or ``dvc
checkout`` put it there, with a fresh, arbitrary mtime) only when DVC vouches for it: its
md5 is the one dvc.lock pins for it, and the stage that made it ran with the study's
params. A file pinned inside a directory output is looked up in the directory's manifest
in DVC's cache (``<cache>/files/md5/xx/yyyy.dir``), which is there only when DVC fetched
or committed that output. Anything else is not trusted and Snakemake's own rules decide.

``write_dvc_folders`` writes ``workflow/dvc-folders.yaml``: the study's output folders, which
dvc.yaml names as its stages' outputs (through ``vars``), from the validated study.
"""

from __future__ import annotations

import ast
import configparser
import fnmatch
import functools
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

PARAMS_FILE = "params.yaml"
PACKAGE = Path(__file__).resolve().parents[1]


def package_imports(path: str | Path) -> set[str]:
    """The package's subpackages a module imports by relative import (``from ..core import x``,
    ``from .x import y``), at any depth of its code (imports inside functions count)."""
    path = Path(path).resolve()
    here = path.parent.relative_to(PACKAGE).parts            # the module's package, below smoothbench
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(here[: len(here) - (node.level - 1)])
            names = base + (node.module.split(".") if node.module else [])
            if names:
                out.add(names[0])
            else:
                out.update(alias.name for alias in node.names)
    return out


def module_files(mod: str) -> list[Path]:
    """The files of a subpackage (every file below ``mod/``, caches left out)."""
    folder = PACKAGE / mod
    if not folder.is_dir():
        return [PACKAGE / f"{mod}.py"]
    return sorted(f for f in folder.rglob("*") if f.is_file() and "__pycache__" not in f.parts)


@functools.lru_cache(maxsize=None)
def _code_modules(subcommands: tuple[str, ...]) -> tuple[str, ...]:
    main = PACKAGE / "cli" / "commands.py"
    tree = ast.parse(main.read_text())
    todo: list[str] = []
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef) and fn.name.removeprefix("_cmd_") in subcommands:
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and node.level == 2:
                    todo += [node.module] if node.module else [a.name for a in node.names]
    seen: set[str] = set()
    while todo:
        mod = todo.pop().split(".")[0]
        if mod not in seen:
            seen.add(mod)
            for f in module_files(mod):
                if f.suffix == ".py":
                    todo += package_imports(f)
    return tuple(sorted(seen))


def code_files(subcommands: Iterable[str], root: str | Path | None = None) -> list[str]:
    """The library files the ``smoothbench`` subcommands import, transitively, as paths
    (relative to ``root`` when given), sorted; a subpackage counts with all its files."""
    mods = _code_modules(tuple(sorted(subcommands)))
    paths = [f for m in mods for f in module_files(m)]
    if root is None:
        return [str(p) for p in paths]
    return [Path(p).relative_to(Path(root).resolve()).as_posix() for p in paths]


def file_md5(path: str | Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dir_md5(folder: str | Path, root: str | Path) -> str | None:
    """DVC's hash of a folder dependency (``<md5>.dir``: the md5 of the JSON list of its files'
    ``{"md5", "relpath"}`` sorted by relpath), skipping what DVC skips: ``.git``, ``.hg``,
    ``.dvc`` and the name patterns of ``root``/.dvcignore. None where this reading could
    differ from DVC's (a nested .dvcignore, a pattern with a ``/`` inside or a ``!``): the
    caller then does not vouch."""
    folder, root = Path(folder), Path(root)
    try:
        lines = (root / ".dvcignore").read_text().splitlines() if (root / ".dvcignore").is_file() else []
    except OSError:
        return None
    patterns = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    if any("/" in p.rstrip("/") or p.startswith("!") for p in patterns):
        return None
    dir_only = {".git", ".hg", ".dvc"} | {p.rstrip("/") for p in patterns if p.endswith("/")}
    names = {".git"} | {p for p in patterns if not p.endswith("/")}
    entries = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        parents = rel.parts[:-1] if path.is_file() else rel.parts
        if any(fnmatch.fnmatchcase(part, p) for part in parents for p in dir_only | names):
            continue
        if path.is_file() and not any(fnmatch.fnmatchcase(path.name, p) for p in names):
            if path.name == ".dvcignore":
                return None
            entries.append({"md5": file_md5(path), "relpath": rel.as_posix()})
    entries.sort(key=lambda e: e["relpath"])
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"


class Pins:
    """dvc.lock of the repository at ``root`` (no lock file: nothing is pinned)."""

    def __init__(self, root: str | Path):
        import yaml

        self.root = Path(root)
        lock = self.root / "dvc.lock"
        try:
            self.stages: dict = (yaml.safe_load(lock.read_text()) or {}).get("stages", {}) if lock.is_file() else {}
        except (OSError, yaml.YAMLError):
            self.stages = {}
        self.cache = self._cache_dir()

    def _cache_dir(self) -> Path:
        folder = self.root / ".dvc"
        cfg = configparser.ConfigParser()
        cfg.read([folder / "config", folder / "config.local"])
        configured = cfg.get("cache", "dir", fallback=None)
        return (folder / configured).resolve() if configured else folder / "cache"

    def _outs(self) -> list[tuple[str, str, str]]:
        """(stage, output path, md5) of every output dvc.lock lists."""
        return [(name, out["path"], out.get("md5", "")) for name, stage in self.stages.items()
                for key in ("outs",) for out in stage.get(key, []) or []]

    @functools.lru_cache(maxsize=None)
    def _manifest(self, md5_dir: str) -> dict[str, str]:
        """relpath -> md5 of a directory output, from DVC's cache (empty when not there)."""
        path = self.cache / "files" / "md5" / md5_dir[:2] / md5_dir[2:]
        try:
            return {entry["relpath"]: entry["md5"] for entry in json.loads(path.read_text())}
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def pinned(self, path: str) -> tuple[str, str] | None:
        """(stage, md5) dvc.lock pins for a file (relative to the repository root), or None."""
        rel = Path(path).as_posix()
        for stage, out, md5 in self._outs():
            if rel == out and not md5.endswith(".dir"):
                return stage, md5
            if rel.startswith(out.rstrip("/") + "/") and md5.endswith(".dir"):
                entry = self._manifest(md5).get(rel[len(out.rstrip("/")) + 1:])
                return (stage, entry) if entry else None
        return None

    def code_matches(self, stage: str) -> bool:
        """Whether every dependency of ``stage`` in dvc.lock (code, rules, schema, and folders:
        the reference numbers, data-in/ with a researcher's own files) still has the md5 it
        ran with."""
        deps = (self.stages.get(stage) or {}).get("deps") or []
        for dep in deps:
            md5 = dep.get("md5", "")
            path = self.root / dep["path"]
            if md5.endswith(".dir"):
                if not path.is_dir() or dir_md5(path, self.root) != md5:
                    return False
                continue
            try:
                if not path.is_file() or file_md5(path) != md5:
                    return False
            except OSError:
                return False
        return True

    def params_match(self, stage: str, study: dict) -> bool:
        """Whether ``stage`` ran, per dvc.lock, with the values ``study`` (the raw study) has
        for the params.yaml keys it lists."""
        recorded = ((self.stages.get(stage) or {}).get("params") or {}).get(PARAMS_FILE)
        if recorded is None:
            return False
        return all(_lookup(study, key) == value for key, value in recorded.items())

    @functools.lru_cache(maxsize=None)
    def vouches(self, path: str, study_key: str) -> bool:
        """Whether DVC vouches for the file at ``path``: pinned, same content, and its stage
        ran with the study's params (``study_key``: the study as sorted JSON) and the code
        now in the working tree."""
        pin = self.pinned(path)
        if pin is None:
            return False
        stage, md5 = pin
        full = self.root / path
        try:
            same = full.is_file() and file_md5(full) == md5
        except OSError:
            return False
        return same and self.params_match(stage, json.loads(study_key)) and self._code_ok(stage)

    @functools.lru_cache(maxsize=None)
    def _code_ok(self, stage: str) -> bool:
        return self.code_matches(stage)


def _lookup(study: dict, key: str) -> Any:
    """A params value by DVC's key: a top-level key or a dotted path (``output.results_dir``)."""
    if key in study:
        return study[key]
    node: Any = study
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


# --------------------------------------------------------------------------- dvc.yaml's output folders
#
# DVC reads a stage's outputs when it parses dvc.yaml, before any stage runs, and its templating
# has no default values: `${output.results_dir}` from params.yaml would fail for every study
# that leaves `output` out (the schema fills it in). So dvc.yaml takes the folders from this
# committed file (`vars:`), written from the validated study, defaults filled; the train and
# report stages check it first (`smoothbench dvc-folders --check`) and, where params.yaml now
# names other folders, rewrite it and stop, so that DVC never pins the folders of another study.

DVC_FOLDERS = "workflow/dvc-folders.yaml"
_FOLDER_KEYS = {"results": "output.results_dir", "reports": "output.reports_dir"}
_HEADER = ("# The study's output folders (params.yaml output.results_dir, output.reports_dir, defaults\n"
           "# filled), which dvc.yaml names as the outputs of its train and report stages (`vars:`).\n"
           "# Written by `smoothbench dvc-folders`; do not edit: change params.yaml, run it, commit both.\n")


def dvc_folders(study: dict, source: str = PARAMS_FILE) -> dict[str, str]:
    """{"results": ..., "reports": ...}: the validated study's output folders as DVC names them;
    a folder DVC cannot pin (absolute, or outside the repository) is a ``ValueError``."""
    out = {}
    for name, key in _FOLDER_KEYS.items():
        text = str(study["output"][key.split(".")[1]])
        folder = Path(text)
        norm = Path(*[p for p in folder.parts if p != "."]) if folder.parts else folder
        if folder.is_absolute() or ".." in folder.parts or not norm.parts:
            raise ValueError(f"{source}: {key} = {text}: DVC pins folders inside the repository only; "
                             f"give a relative folder such as {name}")
        out[name] = norm.as_posix()
    return out


def write_dvc_folders(root: str | Path, study: dict, source: str = PARAMS_FILE, check: bool = False) -> str | None:
    """Write ``root``/DVC_FOLDERS for ``study``. Returns None when it already said so; else one
    line saying what changed (with ``check``, a ``ValueError``: the stage that checked ran
    with DVC's outputs of the file as it was)."""
    import yaml

    folders = dvc_folders(study, source)
    path = Path(root) / DVC_FOLDERS
    try:
        before = (yaml.safe_load(path.read_text()) or {}).get("folders")
    except (OSError, yaml.YAMLError, AttributeError):
        before = None
    if before == folders:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_HEADER + yaml.safe_dump({"folders": folders}, sort_keys=False))
    now = " and ".join(f"{_FOLDER_KEYS[k]} {v}" for k, v in folders.items())
    if not check:
        return f"{DVC_FOLDERS}: dvc.yaml's outputs are now {folders['results']}/ and {folders['reports']}/ ({now}); commit it"
    was = " and ".join(f"{v}/" for v in before.values()) if isinstance(before, dict) else "no folders"
    raise ValueError(f"{DVC_FOLDERS} named {was} as dvc.yaml's outputs, but {source} has {now}: rewritten for them; "
                     f"run dvc repro again (and commit {DVC_FOLDERS})")
