"""The package's shape: one home per word, no import cycle, small modules, and the
schema's enums equal to the registries they name."""

from __future__ import annotations

import ast
from pathlib import Path

from smoothbench import cells, data, grid, methods, models, schema

PKG = Path(cells.__file__).resolve().parent
MAX_LINES = 450


def package_imports(path: Path) -> set[str]:
    """The package's top-level modules or subpackages a module imports (``from . import x``,
    ``from .x import y``; in a subpackage ``from ..x import y``, and its own ``from .y`` names the
    subpackage itself), at any depth of its code (imports inside functions count)."""
    depth = len(path.resolve().parent.relative_to(PKG).parts)
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            if node.level == depth + 1:
                if node.module:
                    out.add(node.module.split(".")[0])
                else:
                    out.update(alias.name for alias in node.names)
            elif node.level == depth:
                out.add(path.parent.name)
    return out


def module_files(mod: str) -> list[Path]:
    folder = PKG / mod
    return sorted(folder.glob("*.py")) if folder.is_dir() else [PKG / f"{mod}.py"]


def import_graph() -> dict[str, set[str]]:
    """top-level module or subpackage -> the others it imports (a subpackage's own files are one node)."""
    mods = [p.stem for p in PKG.glob("*.py") if p.stem != "__init__"] + \
        [d.name for d in PKG.iterdir() if d.is_dir() and (d / "__init__.py").exists()]
    return {m: set().union(*(package_imports(f) for f in module_files(m))) - {m} for m in sorted(mods)}


def test_vocabulary_sits_at_the_bottom():
    assert package_imports(PKG / "cells.py") == set()


def test_no_import_cycle():
    graph = import_graph()
    done: set[str] = set()

    def visit(mod: str, stack: tuple[str, ...]) -> None:
        assert mod not in stack, "import cycle: " + " -> ".join(stack + (mod,))
        if mod in done:
            return
        for dep in sorted(graph.get(mod, ())):
            visit(dep, stack + (mod,))
        done.add(mod)

    for mod in graph:
        visit(mod, ())


def test_modules_are_small():
    sizes = {p.relative_to(PKG).as_posix(): len(p.read_text().splitlines()) for p in PKG.rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_schema_enums_equal_the_registries():
    root = grid.study_schema()
    defs = root["$defs"]
    assert defs["dataset"]["enum"] == list(data.DATASETS)
    assert defs["method"]["enum"] == list(methods.names())
    assert defs["noise_kind"]["enum"] == list(cells.NOISE_KINDS)
    assert defs["protocol"]["properties"]["model"]["enum"] == list(models.MODELS)
    props = root["properties"]
    assert schema.resolve(props["methods"], root)["properties"].keys() == set(methods.names())
    for name in methods.names():   # each setting's forms carry the registry's parameters, ranges and defaults
        forms = schema.resolve(props["methods"], root)["properties"][name]["items"]["anyOf"]
        obj = next(f for f in forms if f.get("type") == "object")
        assert list(obj["properties"]) == [p.name for p in methods.get(name).params]
        for p in methods.get(name).params:
            node = obj["properties"][p.name]
            assert node["default"] == p.default
            assert node.get("minimum", node.get("exclusiveMinimum")) == p.low
            assert node.get("maximum", node.get("exclusiveMaximum")) == p.high
    # the file itself names no method: the registry is the one place
    text = schema.find_schema().read_text()
    assert not any(f" {m}:" in text or f"[{m}," in text for m in ("gce", "sce", "bls", "elr"))
    grid_props = defs["noise_grid"]["properties"]
    assert list(grid_props) == list(cells.NOISE_KINDS)
    assert grid_props["human"]["items"]["enum"] == list(cells.HUMAN_LABEL_SETS)


def test_cifar_n_files_cover_the_human_label_sets():
    from smoothbench import cifarn

    assert set(cifarn.CIFARN_KEYS) == set(cells.HUMAN_LABEL_SETS)
    assert set(cells.HUMAN_LABEL_SETS.values()) <= set(cifarn.CIFARN_FILES) <= set(data.DATASETS)


def test_what_the_workflow_imports_to_parse_leaves_torch_unimported():
    """Snakemake parses the workflow on every run and dry run: the smoothbench modules it
    imports (read off workflow/rules/*.smk) need the registry's names and checks, not torch
    (about a second per parse). Torch comes in where a loss is computed."""
    import re
    import subprocess
    import sys

    rules = PKG.parents[1] / "workflow" / "rules"
    names = set()
    for smk in rules.glob("*.smk"):
        for match in re.finditer(r"^\s*from smoothbench import ([\w, ]+?)(?: as \w+)?\s*(?:#.*)?$", smk.read_text(), re.M):
            names.update(n.strip() for n in match.group(1).split(","))
    assert {"grid", "integrity", "report", "figures"} <= names
    code = f"import sys; from smoothbench import {', '.join(sorted(names))}; print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(PKG.parent), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    # and the lazy name is the real module once a tensor is made
    from smoothbench.lazy import torch
    assert torch.zeros(2).sum().item() == 0.0
