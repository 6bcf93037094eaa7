"""The claims the report tests: a registry of entries (``registry``) and the verdict rules,
one per kind. ``smoothing`` holds the paper's claims and the seed notes'; a new claim is one
``register(Claim(...))`` call there, or in a new module of this folder (imported here by
itself, after ``smoothing``, by name). Registry order is the order of the claims table.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..seedstats import t_interval  # noqa: F401 (the interval the rules use)
from .registry import (  # noqa: F401
    CLAIMS, EQUIVALENCE_MARGIN, FAILS, HOLDS, INCONCLUSIVE, NOT_TESTED, RULES, Claim, Quantity, Rule, Verdict,
    check, claims_table, register, rules_reading, verdict,
)

_INFRASTRUCTURE = {"registry"}

importlib.import_module(f"{__name__}.smoothing")
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in _INFRASTRUCTURE and _info.name != "smoothing" and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
