"""The claims the report tests: a registry of entries (``registry``) and the verdict rules,
one per kind. ``smoothing`` holds the paper's claims and the seed notes'; a new claim is one
``register(Claim(...))`` call there, or in a new module of this folder (imported here by
itself, after ``smoothing``, by name). Registry order is the order of the claims table.
"""

from __future__ import annotations

import importlib
import pkgutil

from .registry import (  # noqa: F401
    CLAIMS, EQUIVALENT_BUT_DIFFERENT, FAILS, HOLDS, INCONCLUSIVE, NOT_TESTED, RULES, VERDICTS, Claim, Quantity, Rule,
    Test, Verdict, check, claims_table, family, register, rules_reading, test,
)

_INFRASTRUCTURE = {"registry"}

importlib.import_module(f"{__name__}.smoothing")
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in _INFRASTRUCTURE and _info.name != "smoothing" and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
