"""The package's shape: one home per word, no import cycle, small modules, and the
schema's enums equal to the registries they name."""

from __future__ import annotations

import ast
from pathlib import Path

from smoothbench import cells, data, models, schema

PKG = Path(cells.__file__).resolve().parent
MAX_LINES = 450


def package_imports(path: Path) -> set[str]:
    """The package modules a module imports (``from . import x``, ``from .x import y``),
    at any depth of its code (imports inside functions count)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module.split(".")[0])
            else:
                out.update(alias.name for alias in node.names)
    return out


def import_graph() -> dict[str, set[str]]:
    return {p.stem: package_imports(p) for p in sorted(PKG.glob("*.py")) if p.stem != "__init__"}


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
    sizes = {p.name: len(p.read_text().splitlines()) for p in PKG.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_schema_enums_equal_the_registries():
    root = schema.load_schema()
    defs = root["$defs"]
    assert defs["dataset"]["enum"] == list(data.DATASETS)
    assert defs["method"]["enum"] == list(cells.METHODS)
    assert defs["noise_kind"]["enum"] == list(cells.NOISE_KINDS)
    assert defs["protocol"]["properties"]["model"]["enum"] == list(models.MODELS)
    props = root["properties"]
    assert list(props["methods"]["properties"]) == list(cells.METHODS)
    grid_props = defs["noise_grid"]["properties"]
    assert list(grid_props) == list(cells.NOISE_KINDS)
    assert grid_props["human"]["items"]["enum"] == list(cells.HUMAN_LABEL_SETS)


def test_cifar_n_files_cover_the_human_label_sets():
    from smoothbench import cifarn

    assert set(cifarn.CIFARN_KEYS) == set(cells.HUMAN_LABEL_SETS)
    assert set(cells.HUMAN_LABEL_SETS.values()) <= set(cifarn.CIFARN_FILES) <= set(data.DATASETS)
