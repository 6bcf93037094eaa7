"""The method registry: every loss a cell can train with, each defined in one place.

A method is one ``register(Method(...))`` call (see ``registry.Method``): its name, label,
parameters (symbol, range, default, meaning), baseline, reference, and its vectorised
per-sample loss over stacked logits with one parameter set per model. The families:

- ``gls``        CE, LS, NLS (generalized label smoothing, one formula) and label flipping;
- ``bce``        BCE, BCE-LS, BCE-NLS (seed note 001: sigmoid outputs, smoothed binary targets);
- ``robust``     GCE, SCE, NCE+RCE, MAE, focal, soft and hard bootstrapping;
- ``correction`` forward and backward loss correction with the noise's true T ("oracle T") or
                 with T estimated from a CE model's softmax ("estimated T");
- ``peer``       peer loss;  ``elr``  early-learning regularization (per-sample state);
- ``coteaching`` sample selection with two models per cell: Co-teaching and JoCoR.

``default`` in params.yaml resolves per dataset family to the values the method's authors
used (``Method.literature``, each with its source); ``smoothbench methods`` lists them.

The registry's order (families in this order, then any other module of this folder, by
name) is the order of cells, tables and legends. A new method is one ``register`` call in
one of these modules, or in a new module of this folder (imported here by itself); the
params schema, the grid, the engine, the collector, the tables, figures and findings and
``smoothbench methods`` all read the registry.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Iterable

from ..core.vocabulary import Cell, fmt_rate
from .registry import (FALLBACK_WHY, NAME_PATTERN, REGISTRY, Batch, Literature, Method, Param, cell,  # noqa: F401
                       get, register)

FAMILIES = ("gls", "bce", "robust", "correction", "peer", "elr", "coteaching")
_INFRASTRUCTURE = {"registry", "stackloss"}

for _name in FAMILIES:
    importlib.import_module(f"{__name__}.{_name}")
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in FAMILIES and _info.name not in _INFRASTRUCTURE and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")


def names() -> tuple[str, ...]:
    """The registered method names, in registry order."""
    return tuple(REGISTRY)


def order(name: str) -> int:
    return list(REGISTRY).index(name)


def sort_cells(cells: Iterable[Cell]) -> list[Cell]:
    """Cells in registry order, then by parameter values."""
    return sorted(set(cells), key=lambda c: (order(c.method), c.values))


def parse_cells(spec: str, family: str | None = None) -> list[Cell]:
    """``'ce:0,ls:0.2,sce:0.1:1,forward'`` -> checked cells, sorted, without duplicates.

    Each item is ``METHOD`` followed by its parameter values in the method's order, ``:``
    separated; values left out take their defaults on a dataset of ``family``
    (``Method.defaults_for``; ``ce`` is ``ce:0``)."""
    out = set()
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        name, *texts = (t.strip() for t in item.split(":"))
        method = get(name)
        if len(texts) > len(method.params):
            raise ValueError(f"cell {item!r}: {name} takes {len(method.params)} parameter(s) "
                             f"({', '.join(p.name for p in method.params) or 'none'})")
        try:
            given = tuple(float(t) for t in texts)
        except ValueError:
            raise ValueError(f"cell {item!r}: a parameter value is not a number") from None
        try:
            out.add(cell(method, given + method.defaults_for(family)[len(given):]))
        except ValueError as exc:
            raise ValueError(f"cell {item!r}: {exc}") from None
    if not out:
        raise ValueError("the cells spec is empty; give e.g. 'ce:0,ls:0.2'")
    return sort_cells(out)


def format_cells(cells: Iterable[Cell]) -> str:
    """``parse_cells``' inverse."""
    return ",".join(":".join([c.method, *(fmt_rate(v) for v in c.values)]) for c in cells)


def cells_of(name: str, items: list, where: str = "", family: str | None = None) -> list[Cell]:
    """The cells of one ``methods:`` entry of params.yaml on a dataset of ``family`` (see
    ``Method.settings``)."""
    method = get(name)
    out = []
    for i, item in enumerate(items):
        at = f"{where or name}[{i}]"
        try:
            out.append(cell(method, method.settings(item, at, family)))
        except ValueError as exc:
            text = str(exc)
            raise ValueError(text if text.startswith(at) else f"{at}: {text}") from None
    return out


def params_text(c: Cell) -> str:
    return get(c.method).params_text(c.values)


def noise_note(method: str) -> str:
    """What a method is told of the noise, as tables mark it: "oracle T", "estimated T",
    "oracle rate", "estimated rate", or "" (nothing)."""
    return get(method).noise


def label(c: Cell, fmt: str = "plain") -> str:
    """``LS (r=0.2)``, ``forward-T (oracle T)``, ``CE``."""
    m = get(c.method)
    notes = [n for n in (m.label_params(c.values, fmt), m.noise) if n]
    return m.label + (f" ({'; '.join(notes)})" if notes else "")


def literature_text(m: Method) -> list[str]:
    """The lines of ``smoothbench methods`` on a method's per-family defaults and their sources."""
    out = []
    for lit in m.literature:
        values = ", ".join(f"{p.name} {fmt_rate(lit.values[p.name])}" for p in m.params if p.name in lit.values)
        out.append(f"{'':<12}default on {', '.join(lit.families)}: {values} — {lit.source}")
    return out


def describe() -> str:
    """``smoothbench methods``: every registered method, its parameters, its defaults per
    dataset family with their sources, the convention it follows, and its reference."""
    lines = []
    for m in REGISTRY.values():
        base = f"baseline {m.baseline}" if m.baseline else "a baseline"
        flags = ", ".join(x for x in (m.output + " outputs" if m.output != "softmax" else "", m.noise,
                                      "per-sample state" if m.state else "",
                                      "label transform" if m.transform else "", "peer samples" if m.peer else "",
                                      f"{m.models} models per cell" if m.models > 1 else "") if x)
        lines.append(f"{m.name:<10} {m.label} — {m.description} [{m.group}; {base}{'; ' + flags if flags else ''}]")
        for p in m.params:
            name = p.name if p.symbol == p.name else f"{p.name} ({p.symbol})"
            lines.append(f"{'':<12}{name} in {p.range_text}, default {fmt_rate(p.default)}: {p.meaning}")
        if not m.params:
            lines.append(f"{'':<12}no parameters (params.yaml: {m.name}: [default])")
        lines += literature_text(m)
        if m.convention:
            lines.append(f"{'':<12}convention: {m.convention}")
        lines.append(f"{'':<12}reference: {m.reference}")
    lines += ["", f"default: the values on the dataset's family (smoothbench data --list); {FALLBACK_WHY}."]
    return "\n".join(lines)


def schema_defs() -> dict:
    """The params schema's ``$defs.method`` and ``$defs.method_grid``, from the registry: per
    method a non-empty list of settings, each a number (its first parameter), a mapping of its
    parameters, or ``default``."""
    grid: dict = {}
    for m in REGISTRY.values():
        params = {p.name: p.schema() for p in m.params}
        forms: list = [{"const": "default"},
                       {"type": "object", "additionalProperties": False, "properties": params}]
        if m.params:
            forms.insert(0, m.params[0].schema())
        names = ", ".join(p.name for p in m.params)
        allowed = (f"a number ({m.params[0].name}), a mapping of {names}, or \"default\"" if m.params
                   else '"default" (it has no parameters)')
        grid[m.name] = {"description": f"{m.label}: {m.description}", "type": "array", "minItems": 1,
                        "items": {"anyOf": forms, "x-allowed": allowed}}
    return {"method": {"enum": list(REGISTRY), "description": "a registered method"},
            "method_grid": {"type": "object", "additionalProperties": False, "properties": grid,
                            "description": "method -> settings (generated from smoothbench.methods)"}}
