"""The method registry's vocabulary: a method, its parameters, and the batch its loss sees.

A **method** is one registry entry (``register(Method(...))``): its name and label, its
parameters (symbol, range, default, meaning), the method it is compared against, its
vectorised per-sample loss over stacked logits ``(..., B, K)`` with one parameter set per
model (``params`` of shape ``(..., P)``), and where it needs them a per-step label
transform (flipping), per-sample state (ELR) or the noise's true transition matrix
(loss correction, "oracle T"). Everything else (schema, grid, engine, collector, tables,
figures, findings, ``smoothbench methods``) reads these entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..core.lazy import torch

from ..core.vocabulary import Cell, fmt_rate

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
OUTPUTS = ("softmax", "sigmoid")


@dataclass(frozen=True)
class Param:
    """One parameter of a method: its key in params.yaml, its symbol, range and default."""

    name: str
    symbol: str
    default: float
    meaning: str
    low: float | None = None       # None: unbounded below
    high: float | None = None      # None: unbounded above
    low_open: bool = False         # low itself excluded
    high_open: bool = False
    tex: str | None = None         # LaTeX of the symbol (default: the symbol)

    def contains(self, value: float) -> bool:
        if value != value:
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return False
        return True

    @property
    def range_text(self) -> str:
        if self.low is not None and self.low == self.high:
            return f"{{{fmt_rate(self.low)}}}"
        lo = "(-∞" if self.low is None else ("(" if self.low_open else "[") + fmt_rate(self.low)
        hi = "∞)" if self.high is None else fmt_rate(self.high) + (")" if self.high_open else "]")
        return f"{lo}, {hi}"

    def schema(self) -> dict:
        """The JSON-schema node of one value (type and bounds)."""
        node: dict = {"type": "number", "description": f"{self.symbol}: {self.meaning}", "default": self.default}
        if self.low is not None:
            node["exclusiveMinimum" if self.low_open else "minimum"] = self.low
        if self.high is not None:
            node["exclusiveMaximum" if self.high_open else "maximum"] = self.high
        return node


@dataclass
class Batch:
    """What a method's loss sees of one step, for its slice of the stack (leading dims ``...``).

    ``logits`` (..., B, K) in float32 or float64; ``labels`` (..., B) int64 (after the
    method's label transform); ``transition`` (..., K, K) the noise's true T of each model
    (loss correction); ``index`` (..., B) the samples' positions in the training set and
    ``state`` (..., N, K) the method's per-sample state (ELR); ``draw_key`` (...) int64 keys
    and ``step`` the global step, for the method's own random draws (``smoothbench.draws``).
    """

    logits: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    transition: torch.Tensor | None = None
    index: torch.Tensor | None = None
    state: torch.Tensor | None = None
    draw_key: torch.Tensor | None = None
    step: int = 0
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def logp(self) -> torch.Tensor:
        """log_softmax of the logits, computed once."""
        if "logp" not in self._cache:
            self._cache["logp"] = torch.log_softmax(self.logits, dim=-1)
        return self._cache["logp"]

    @property
    def nll(self) -> torch.Tensor:
        """-log p_y per sample (..., B)."""
        if "nll" not in self._cache:
            self._cache["nll"] = -self.logp.gather(-1, self.labels.unsqueeze(-1)).squeeze(-1)
        return self._cache["nll"]

    @property
    def log_not_y(self) -> torch.Tensor:
        """log(1 - p_y) per sample, computed as a log-sum-exp over the other classes (finite
        gradient even where p_y rounds to 1)."""
        if "log_not_y" not in self._cache:
            masked = self.logp.scatter(-1, self.labels.unsqueeze(-1), float("-inf"))
            self._cache["log_not_y"] = torch.logsumexp(masked, dim=-1)
        return self._cache["log_not_y"]


def full_precision(logits: torch.Tensor) -> torch.Tensor:
    """The logits a loss computes with: float16/bfloat16 (autocast) in float32, others as they are."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


Loss = Callable[[Batch, "torch.Tensor"], "torch.Tensor"]            # (batch, params (..., P)) -> (..., B)
Transform = Callable[["torch.Tensor", "torch.Tensor", Batch], "torch.Tensor"]  # (labels, params, batch) -> labels


@dataclass(frozen=True)
class Method:
    """One registry entry. ``loss`` returns the per-sample loss ``(..., B)``; methods that
    share a ``loss`` function are computed in one call for all their models (``loss_args``
    maps a method's parameter values to that function's arguments)."""

    name: str
    label: str
    params: tuple[Param, ...]
    loss: Loss
    reference: str
    description: str
    baseline: str | None = "ce"                  # compared against (None: it is a baseline)
    family: str = ""                             # figures and tables group by it (default: the name)
    output: str = "softmax"                      # how its outputs become probabilities
    loss_args: Callable[[tuple], tuple] | None = None
    transform: Transform | None = None           # per-step label transform (before the loss)
    state: bool = False                          # keeps a per-sample (N, K) state (zeros at the start)
    # T (K, K) -> what the loss gets of it (K, K), NumPy float64 (no torch: a study's settings are
    # checked with it before any job); a ValueError says why T does not suit the method
    transition: Callable[[np.ndarray], np.ndarray] | None = None
    dataset_check: Callable[[tuple, int], str | None] | None = None  # (values, K) -> why not, or None

    def __post_init__(self) -> None:
        import re

        if not re.match(NAME_PATTERN, self.name):
            raise ValueError(f"method name {self.name!r} must match {NAME_PATTERN}")
        if self.output not in OUTPUTS:
            raise ValueError(f"method {self.name}: output {self.output!r}; allowed: {', '.join(OUTPUTS)}")
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"method {self.name}: a parameter name appears twice")
        for p in self.params:
            if not p.contains(p.default):
                raise ValueError(f"method {self.name}: default {p.name} = {p.default} is outside {p.range_text}")

    @property
    def oracle(self) -> bool:
        """Whether it uses the noise's TRUE transition matrix (tables mark it "oracle T")."""
        return self.transition is not None

    @property
    def group(self) -> str:
        return self.family or self.name

    @property
    def defaults(self) -> tuple[float, ...]:
        return tuple(float(p.default) for p in self.params)

    @property
    def tunable(self) -> bool:
        """Whether the method has a parameter value to choose (CE's fixed r = 0 has none)."""
        return any(p.low is None or p.low != p.high for p in self.params)

    def args(self, values: tuple) -> tuple[float, ...]:
        return tuple(self.loss_args(values)) if self.loss_args else tuple(values)

    def check(self, values: tuple) -> None:
        """ValueError unless ``values`` is a full, in-range parameter set of this method."""
        if len(values) != len(self.params):
            raise ValueError(f"{self.name} takes {len(self.params)} parameter(s) "
                             f"({', '.join(p.name for p in self.params) or 'none'}), got {len(values)}")
        for p, v in zip(self.params, values):
            if not p.contains(float(v)):
                raise ValueError(f"{self.name} {p.name} ({p.symbol}) must lie in {p.range_text}, got {fmt_rate(v)}")

    def settings(self, item: Any, where: str = "") -> tuple[float, ...]:
        """One params.yaml setting -> its parameter values: a number (the first parameter,
        the others at their defaults), a mapping {parameter: value} (missing ones default)
        or ``default`` (every parameter at its default)."""
        if item == "default":
            return self.defaults
        if isinstance(item, bool) or not isinstance(item, (int, float, dict)):
            raise ValueError(f"{where or self.name}: a setting is a number, a mapping of "
                             f"{', '.join(p.name for p in self.params) or 'no parameters'}, or 'default'")
        if isinstance(item, dict):
            unknown = sorted(set(item) - {p.name for p in self.params})
            if unknown:
                raise ValueError(f"{where or self.name}: unknown parameter {unknown[0]}; allowed: "
                                 f"{', '.join(p.name for p in self.params) or 'none'}")
            return tuple(float(item.get(p.name, p.default)) for p in self.params)
        if not self.params:
            raise ValueError(f"{where or self.name}: {self.name} has no parameters; write 'default'")
        return (float(item),) + self.defaults[1:]

    def label_params(self, values: tuple, fmt: str = "plain") -> str:
        """``r=0.2``, ``α=0.1, β=1`` (``fmt``: plain, md or tex); empty for a method with
        nothing to choose."""
        if not self.tunable:
            return ""
        parts = []
        for p, v in zip(self.params, values):
            sym = f"${p.tex or p.symbol}$" if fmt == "tex" else p.symbol
            parts.append(f"{sym}={fmt_rate(v)}")
        return ", ".join(parts)

    def params_text(self, values: tuple) -> str:
        """The canonical machine-readable text of a parameter set: ``alpha=0.1;beta=1``."""
        return ";".join(f"{p.name}={fmt_rate(v)}" for p, v in zip(self.params, values))

    def parse_params_text(self, text: str) -> tuple[float, ...]:
        """``params_text``'s inverse (ValueError naming what is wrong)."""
        got: dict[str, float] = {}
        for part in filter(None, (text or "").split(";")):
            key, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"parameters {text!r}: {part!r} is not NAME=VALUE")
            got[key.strip()] = float(value)
        names = [p.name for p in self.params]
        if sorted(got) != sorted(names):
            raise ValueError(f"parameters {text!r} of {self.name}: expected {', '.join(names) or 'none'}")
        return tuple(got[n] for n in names)


# --------------------------------------------------------------------------- the registry

REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add a method to the registry (its position is the order of tables, legends and cells)."""
    if method.name in REGISTRY:
        raise ValueError(f"method {method.name!r} is registered twice")
    if method.baseline is not None and method.baseline != method.name and method.baseline not in REGISTRY:
        raise ValueError(f"method {method.name!r}: its baseline {method.baseline!r} must be registered before it")
    REGISTRY[method.name] = method
    return method


def get(name: str) -> Method:
    """The registered method ``name`` (ValueError naming the registered ones)."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"method {name!r} is unknown; allowed: {', '.join(REGISTRY)}") from None


def cell(method: Method | str, values: tuple = ()) -> Cell:
    """A checked cell of ``method`` at ``values``."""
    method = get(method) if isinstance(method, str) else method
    values = tuple(float(v) for v in values)
    method.check(values)
    return Cell(method.name, values)
