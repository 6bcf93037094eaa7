"""The method registry's vocabulary: a method, its parameters, and the batch its loss sees.

A **method** is one registry entry (``register(Method(...))``): its name and label, its
parameters (symbol, range, default, meaning), the method it is compared against, its
vectorised per-sample loss over stacked logits ``(..., B, K)`` with one parameter set per
model (``params`` of shape ``(..., P)``), and where it needs them a per-step label
transform (flipping), per-sample state (ELR), what it is told of the noise (the true
transition matrix, "oracle T", or one estimated from a CE model, "estimated T"; the true
noise rate, "oracle rate", or an estimated one), peer samples (peer loss) or several
models per cell (sample selection). It states the convention it follows where the
authors' public code and their paper differ, and its parameters' values in the
literature per dataset family (what ``default`` resolves to). Everything else (schema,
grid, engine, collector, tables, figures, findings, ``smoothbench methods``) reads these
entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..core.lazy import torch

from ..core.vocabulary import Cell, fmt_rate

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
OUTPUTS = ("softmax", "sigmoid")
# what a method is told of the noise, as the tables mark it ("" : nothing)
NOISE_INFO = ("", "oracle T", "estimated T", "oracle rate", "estimated rate")
# the dataset family whose literature values a family without its own takes (the families are
# the dataset registry's, ``smoothbench.data.FAMILIES``), then the next of this order
FALLBACK_FAMILIES = ("cifar10", "mnist", "cifar100")
FALLBACK_WHY = ("a family without the authors' value (tabular data, say) takes their CIFAR-10 value, the one "
                "benchmark every one of these papers reports, else their MNIST value")


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
    choices: tuple[tuple[float, str], ...] = ()   # a switch: its allowed values, each with its label text

    def contains(self, value: float) -> bool:
        if value != value:
            return False
        if self.choices:
            return float(value) in {v for v, _ in self.choices}
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return False
        return True

    @property
    def range_text(self) -> str:
        if self.choices:
            return "{" + ", ".join(f"{fmt_rate(v)}: {text}" for v, text in self.choices) + "}"
        if self.low is not None and self.low == self.high:
            return f"{{{fmt_rate(self.low)}}}"
        lo = "(-∞" if self.low is None else ("(" if self.low_open else "[") + fmt_rate(self.low)
        hi = "∞)" if self.high is None else fmt_rate(self.high) + (")" if self.high_open else "]")
        return f"{lo}, {hi}"

    def schema(self) -> dict:
        """The JSON-schema node of one value (type and bounds)."""
        node: dict = {"type": "number", "description": f"{self.symbol}: {self.meaning}", "default": self.default}
        if self.choices:
            node["enum"] = [v for v, _ in self.choices]
            return node
        if self.low is not None:
            node["exclusiveMinimum" if self.low_open else "minimum"] = self.low
        if self.high is not None:
            node["exclusiveMaximum" if self.high_open else "maximum"] = self.high
        return node

    def value_label(self, value: float, fmt: str = "plain") -> str:
        """How a table shows this parameter at ``value``: ``q=0.7``; a switch by its choice's text,
        nothing at its default."""
        if self.choices:
            return "" if float(value) == self.default else dict(self.choices).get(float(value), fmt_rate(value))
        sym = f"${self.tex or self.symbol}$" if fmt == "tex" else self.symbol
        return f"{sym}={fmt_rate(value)}"


@dataclass(frozen=True)
class Literature:
    """A method's parameter values as its authors ran them on datasets of ``families``
    (``smoothbench.data.FAMILIES``), and where they are written (paper section or table, or
    the authors' configuration file)."""

    families: tuple[str, ...]
    values: dict[str, float]
    source: str


@dataclass
class Batch:
    """What a method's loss sees of one step, for its slice of the stack (leading dims ``...``).

    ``logits`` (..., B, K) in float32 or float64 (a method of k models per cell: (S, n, k, B, K),
    the cell's models side by side); ``labels`` likewise without K, int64 (after the method's
    label transform); ``transition`` (..., K, K) the T the method is given of each model (the
    noise's true one, or the one estimated for its seed); ``noise_rate`` (S, n) the noise rate it
    is given (true or estimated); ``index`` (..., B) the samples' positions in the training set
    and ``state`` (..., N, K) the method's per-sample state (ELR); ``draw_key`` (...) int64 keys
    and ``step`` the global step, for the method's own random draws (``smoothbench.draws``);
    ``peer_logits`` and ``peer_labels`` the predictions for the step's peer inputs and the peer
    labels (peer loss); ``epoch`` the epochs of the phase trained so far and ``epochs`` its
    length (schedules by epoch).
    """

    logits: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    transition: torch.Tensor | None = None
    index: torch.Tensor | None = None
    state: torch.Tensor | None = None
    draw_key: torch.Tensor | None = None
    step: int = 0
    noise_rate: torch.Tensor | None = None
    peer_logits: torch.Tensor | None = None
    peer_labels: torch.Tensor | None = None
    epoch: int = 0
    epochs: int = 1
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
    """One registry entry. ``loss`` returns the per-sample loss ``(..., B)`` (``(S, n, k, B)`` for
    a method of k models per cell); methods that share a ``loss`` function are computed in one
    call for all their models (``loss_args`` maps a method's parameter values to that
    function's arguments).

    ``noise``: what it is told of the noise (``NOISE_INFO``); with ``transition`` it gets T
    (``transition`` maps T to what the loss gets), with "... rate" the noise rate; "estimated"
    ones get them from a CE model's softmax (``correction.anchor_transition``; the parameter
    ``quantile`` picks the anchor points). ``models``: the models a cell trains (the first is
    the one evaluated). ``peer``: it needs the step's peer samples (the engine's second forward
    pass). ``convention``: which one it follows where the authors' public code differs from
    their paper, and why. ``literature``: its parameter values per dataset family with their
    sources (``default`` resolves to them).
    """

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
    noise: str = ""                              # what it is told of the noise (NOISE_INFO)
    models: int = 1                              # models per cell
    peer: bool = False                           # needs peer samples
    convention: str = ""
    literature: tuple[Literature, ...] = ()

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
        if self.noise not in NOISE_INFO:
            raise ValueError(f"method {self.name}: noise {self.noise!r}; allowed: {', '.join(map(repr, NOISE_INFO))}")
        if self.noise.endswith(" T") != (self.transition is not None):
            raise ValueError(f"method {self.name}: a method told T has a transition map, and only such a method")
        if self.estimated and "quantile" not in names:
            raise ValueError(f"method {self.name}: an estimated-noise method has a parameter 'quantile'")
        if not isinstance(self.models, int) or self.models < 1:
            raise ValueError(f"method {self.name}: models must be an integer >= 1")
        for lit in self.literature:
            unknown = sorted(set(lit.values) - set(names))
            if unknown:
                raise ValueError(f"method {self.name}: literature values of unknown parameter(s) {', '.join(unknown)}")
            values = tuple(float(lit.values.get(p.name, p.default)) for p in self.params)
            for p, v in zip(self.params, values):
                if not p.contains(v):
                    raise ValueError(f"method {self.name}: literature {p.name} = {v} is outside {p.range_text}")
        seen = [f for lit in self.literature for f in lit.families]
        if len(set(seen)) != len(seen):
            raise ValueError(f"method {self.name}: a family has two literature entries")

    @property
    def oracle(self) -> bool:
        """Whether it is told the noise's TRUE transition matrix or rate (tables mark it "oracle T"
        or "oracle rate"): no real method knows them."""
        return self.noise.startswith("oracle")

    @property
    def estimated(self) -> bool:
        """Whether it estimates T (and from it the noise rate) from a CE model's softmax: the
        warm-up model of its protocol variant, so it needs one."""
        return self.noise.startswith("estimated")

    @property
    def group(self) -> str:
        return self.family or self.name

    @property
    def defaults(self) -> tuple[float, ...]:
        """The parameters' registry defaults (the fallback family's literature values)."""
        return tuple(float(p.default) for p in self.params)

    def literature_for(self, family: str | None) -> Literature | None:
        """The literature entry ``default`` resolves to on a dataset of ``family`` (None: a
        family of none): the family's own, else the first of ``FALLBACK_FAMILIES`` with one."""
        for want in ((family,) if family else ()) + FALLBACK_FAMILIES:
            for lit in self.literature:
                if want in lit.families:
                    return lit
        return None

    def defaults_for(self, family: str | None) -> tuple[float, ...]:
        """The parameter values ``default`` means on a dataset of ``family``: the literature's
        (``literature_for``), the registry defaults for parameters it does not set."""
        lit = self.literature_for(family)
        given = lit.values if lit is not None else {}
        return tuple(float(given.get(p.name, p.default)) for p in self.params)

    @property
    def tunable(self) -> bool:
        """Whether the method has a parameter value to choose (CE's fixed r = 0 has none)."""
        return any(len(p.choices) > 1 or (not p.choices and (p.low is None or p.low != p.high)) for p in self.params)

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

    def settings(self, item: Any, where: str = "", family: str | None = None) -> tuple[float, ...]:
        """One params.yaml setting -> its parameter values: a number (the first parameter,
        the others at their defaults), a mapping {parameter: value} (missing ones default)
        or ``default`` (every parameter at its default); the defaults are those of the
        dataset's ``family`` (``defaults_for``)."""
        defaults = self.defaults_for(family)
        if item == "default":
            return defaults
        if isinstance(item, bool) or not isinstance(item, (int, float, dict)):
            raise ValueError(f"{where or self.name}: a setting is a number, a mapping of "
                             f"{', '.join(p.name for p in self.params) or 'no parameters'}, or 'default'")
        if isinstance(item, dict):
            unknown = sorted(set(item) - {p.name for p in self.params})
            if unknown:
                raise ValueError(f"{where or self.name}: unknown parameter {unknown[0]}; allowed: "
                                 f"{', '.join(p.name for p in self.params) or 'none'}")
            return tuple(float(item.get(p.name, d)) for p, d in zip(self.params, defaults))
        if not self.params:
            raise ValueError(f"{where or self.name}: {self.name} has no parameters; write 'default'")
        return (float(item),) + defaults[1:]

    def label_params(self, values: tuple, fmt: str = "plain") -> str:
        """``r=0.2``, ``α=0.1, β=1`` (``fmt``: plain, md or tex); empty for a method with
        nothing to choose."""
        if not self.tunable:
            return ""
        return ", ".join(x for x in (p.value_label(v, fmt) for p, v in zip(self.params, values)) if x)

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
