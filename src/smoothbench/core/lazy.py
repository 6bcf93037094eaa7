"""torch, imported where it is first used, not where it is named.

The workflow imports the method registry when Snakemake parses it (every ``snakemake -n``,
every job's command line): the registry's names, parameters and checks need no torch, and
importing torch costs about a second each time. The method modules therefore name
``torch`` and ``F`` (``torch.nn.functional``) from here; the real module is imported on the
first attribute looked up (a loss computed, a tensor built), once per process.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for the module ``name`` until one of its attributes is looked up."""

    __slots__ = ("_name", "_module")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}{'' if self._module is None else ' (imported)'}>"


torch: Any = LazyModule("torch")
F: Any = LazyModule("torch.nn.functional")
