"""The library code each pipeline step runs: its subpackages, by the architecture's layers.

A step (one ``smoothbench`` subcommand that a Snakemake rule calls) runs the code of the
subpackage it belongs to and of the subpackages below it that it imports. The Snakemake
rules take every file of those subpackages as inputs, so that a changed module reruns the
jobs that run it; dvc.yaml lists the same folders as its stages' deps (each stage the folders
of its own steps and of its upstream stages' steps). tests/test_pipeline.py checks both
against the imports of the code itself.

``collect``, ``choose`` and ``report`` are all in ``report/``: a change to any module of it (a
figure, say) reruns the collect and choose jobs as well as the report job.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]

STEP_CODE: dict[str, tuple[str, ...]] = {
    "data": ("core", "data"),
    "noise": ("core", "data", "noise"),
    "train": ("core", "methods", "data", "noise", "engine"),
    "collect": ("core", "methods", "report"),
    "choose": ("core", "methods", "report"),
    "report": ("core", "methods", "report"),
}

# what a subpackage folder holds that is not code: caches and editor files (.dvcignore
# leaves the same names out of the folders' hashes)
_NOT_CODE_SUFFIXES = (".pyc", ".pyo", ".swp", "~")


def is_code(path: Path) -> bool:
    """Whether a file below a subpackage is part of the package (not a cache, an editor's
    file or a hidden file)."""
    return not (path.name.startswith(".") or path.name.endswith(_NOT_CODE_SUFFIXES)
                or "__pycache__" in path.parts)


def code_files(step: str, root: str | Path | None = None) -> list[str]:
    """Every file of the subpackages ``step`` runs, sorted; relative to ``root`` when given.
    An unknown step is a ``KeyError`` naming the known ones."""
    if step not in STEP_CODE:
        raise KeyError(f"no pipeline step {step!r}; the steps: {', '.join(STEP_CODE)}")
    files = sorted(f for sub in STEP_CODE[step] for f in (PACKAGE / sub).rglob("*")
                   if f.is_file() and is_code(f.relative_to(PACKAGE)))
    if root is None:
        return [str(f) for f in files]
    base = Path(root).resolve()
    return [f.relative_to(base).as_posix() for f in files]
