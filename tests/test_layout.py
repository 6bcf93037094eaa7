"""The package's shape: folders by concern with one import direction between them, no import
cycle inside them, no module shadowing the standard library, and the schema's enums equal to
the registries they name."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from smoothbench import data, methods, noise
from smoothbench.core import schema
from smoothbench.core import vocabulary as cells
from smoothbench.engine import models
from smoothbench.study import grid

PKG = Path(cells.__file__).resolve().parents[1]

# The architecture: each subpackage may import the ones on a LOWER layer only (and itself).
# core is the vocabulary at the bottom; the command line sits on top.
LAYERS = {
    "core": 0,
    "methods": 1, "data": 1,
    "noise": 2,
    "engine": 3, "report": 3,
    "study": 4,
    "pipeline": 5, "bench": 5,
    "cli": 6,
}


def imported_modules(path: Path) -> set[str]:
    """The modules of the package a file imports by relative import (dotted, below smoothbench),
    at any depth of its code (imports inside functions count)."""
    here = path.resolve().parent.relative_to(PKG).parts
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(here[: len(here) - (node.level - 1)])
            if node.module:
                out.add(".".join(base + node.module.split(".")))
            else:
                out.update(".".join(base + [a.name]) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("smoothbench."):
            out.add(node.module.removeprefix("smoothbench."))
    return out


def subpackage_graph() -> dict[str, set[str]]:
    """subpackage -> the other subpackages its files import."""
    graph: dict[str, set[str]] = {}
    for f in PKG.rglob("*.py"):
        parts = f.relative_to(PKG).parts
        if len(parts) < 2:
            continue
        graph.setdefault(parts[0], set()).update(m.split(".")[0] for m in imported_modules(f))
    return {k: v - {k} for k, v in graph.items()}


def test_every_module_lives_in_a_subpackage_of_a_layer():
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert top == ["__init__.py"], f"modules outside a subpackage: {top}"
    folders = sorted(d.name for d in PKG.iterdir() if d.is_dir() and (d / "__init__.py").is_file())
    assert folders == sorted(LAYERS), "a subpackage without a layer in LAYERS (or a layer without a folder)"


def test_imports_run_one_way_between_subpackages():
    bad = [f"{a} -> {b}" for a, deps in sorted(subpackage_graph().items()) for b in sorted(deps)
           if b in LAYERS and LAYERS[b] >= LAYERS[a]]
    assert bad == [], "imports against the architecture's direction: " + ", ".join(bad)


def test_the_direction_check_catches_an_import_up(tmp_path, monkeypatch):
    """A planted import of the command line from core must be caught."""
    fake = {"core": {"cli"}, "cli": {"core"}}
    monkeypatch.setattr(sys.modules[__name__], "subpackage_graph", lambda: fake)
    with pytest.raises(AssertionError, match="core -> cli"):
        test_imports_run_one_way_between_subpackages()


def test_no_import_cycle_between_modules():
    """Between subpackages the layers rule cycles out; inside one, modules import each other one
    way too (a package's ``__init__``, which gathers its modules, is left out)."""
    graph: dict[str, set[str]] = {}
    modules = {".".join(f.relative_to(PKG).with_suffix("").parts) for f in PKG.rglob("*.py")}
    for f in PKG.rglob("*.py"):
        if f.name == "__init__.py":
            continue
        mod = ".".join(f.relative_to(PKG).with_suffix("").parts)
        graph[mod] = {m for m in imported_modules(f) if m in modules and m != mod}
    done: set[str] = set()

    def visit(mod: str, stack: tuple[str, ...]) -> None:
        assert mod not in stack, "import cycle: " + " -> ".join(stack + (mod,))
        if mod in done:
            return
        for dep in sorted(graph.get(mod, ())):
            visit(dep, stack + (mod,))
        done.add(mod)

    for mod in sorted(graph):
        visit(mod, ())


def test_no_module_shadows_the_standard_library():
    names = {p.stem for p in PKG.rglob("*.py")} | {d.name for d in PKG.rglob("*") if d.is_dir()}
    assert names & set(sys.stdlib_module_names) == set()


def test_report_imports_no_torch():
    """The reports are made on any machine: building them must not import torch."""
    import subprocess

    code = ("import sys, importlib, pkgutil, smoothbench.report as r\n"
            "for m in pkgutil.walk_packages(r.__path__, 'smoothbench.report.'):\n"
            "    importlib.import_module(m.name)\n"
            "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(PKG.parent), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_schema_enums_equal_the_registries():
    root = grid.study_schema()
    defs = root["$defs"]
    assert defs["dataset"]["enum"] == list(data.DATASETS)
    assert defs["method"]["enum"] == list(methods.names())
    assert defs["noise_kind"]["enum"] == list(noise.names())
    assert schema.resolve(defs["protocol"]["properties"]["model"], root)["enum"] == list(models.names())
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
    # the file itself names no method, dataset, noise kind or CIFAR-N label set: the registries are the one place
    text = schema.SCHEMA_PATH.read_text()
    assert not any(f" {m}:" in text or f"[{m}," in text for m in ("gce", "sce", "bls", "elr"))
    assert not any(re.search(rf"\b{name}\b", text) for name in ("mnist1d", "fashion_mnist", "cifar100", "pairflip",
                                                                   "symmetric", "instance", "noisy100", "random1"))
    grid_props = defs["noise_grid"]["properties"]
    assert list(grid_props) == list(noise.names())
    assert list(defs["noise_options"]["properties"]) == list(noise.names())
    for name in noise.names():
        options = defs["noise_options"]["properties"][name]["properties"]
        assert {k: v.get("default") for k, v in options.items()} == noise.option_defaults(name)
    from smoothbench.noise import human
    assert grid_props["human"]["items"]["enum"] == list(human.LABEL_SETS)


def test_cifar_n_files_cover_the_human_label_sets():
    from smoothbench.noise import human

    assert {d for d, _ in human.LABEL_SETS.values()} == set(human.CIFARN_FILES) <= set(data.DATASETS)
    for dataset, (_, k) in human.CIFARN_FILES.items():   # each file's K is its dataset's
        assert data.get_spec(dataset).num_classes == k


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
        for match in re.finditer(r"^\s*from (smoothbench[\w.]*) import ([\w, ]+)", smk.read_text(), re.M):
            names.update(f"{match.group(1)}.{n.split(' as ')[0].strip()}" for n in match.group(2).split(","))
    assert {"smoothbench.study.grid", "smoothbench.report.build"} <= names
    code = "import sys, importlib\n" + "".join(f"importlib.import_module({n!r})\n" for n in sorted(names)) + \
        "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(PKG.parent), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    # and the lazy name is the real module once a tensor is made
    from smoothbench.core.lazy import torch
    assert torch.zeros(2).sum().item() == 0.0
