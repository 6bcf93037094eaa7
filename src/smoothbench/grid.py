"""The study grid: params.yaml -> groups and cells, their ids and their seeds.

Used by the Snakefile (through ``smoothbench grid``-free imports in common.smk) and by
the command line alike, so both name cells and derive seeds the same way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

METHODS = ("ce", "ls", "nls", "flip")


def derive_seed(*parts: object) -> int:
    """A seed in [0, 2**63) determined by ``parts`` (joined with '/' after ``str``)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def fmt_rate(rate: float | str) -> str:
    """Canonical text of a rate: ``0.2 -> '0.2'``, ``-1.0 -> '-1'``, names stay names."""
    if isinstance(rate, str):
        try:
            rate = float(rate)
        except ValueError:
            return rate
    return f"{float(rate):g}"


@dataclass(frozen=True, order=True)
class Cell:
    """One method at one rate inside a group. ``rate`` is r for ce/ls/nls, ε for flip."""

    method: str
    rate: float

    def __post_init__(self) -> None:
        check_method_rate(self.method, self.rate)

    @property
    def id(self) -> str:
        return f"{self.method}_{fmt_rate(self.rate)}"

    @property
    def smooth_rate(self) -> float:
        """The r passed to the GLS loss (flip cells train with plain CE on flipped labels)."""
        return 0.0 if self.method == "flip" else float(self.rate)

    @property
    def flip_rate(self) -> float:
        return float(self.rate) if self.method == "flip" else 0.0


def check_method_rate(method: str, rate: float) -> None:
    if method not in METHODS:
        raise ValueError(f"method {method!r} is unknown; allowed: {', '.join(METHODS)}")
    r = float(rate)
    if r != r:
        raise ValueError(f"rate of {method} is NaN")
    if method == "ce" and r != 0.0:
        raise ValueError(f"ce takes rate 0, got {rate}")
    if method == "ls" and not 0.0 < r <= 1.0:
        raise ValueError(f"ls rate must lie in (0, 1], got {rate}")
    if method == "nls" and not r < 0.0:
        raise ValueError(f"nls rate must be < 0, got {rate}")
    if method == "flip" and not 0.0 < r <= 1.0:
        raise ValueError(f"flip rate must lie in (0, 1], got {rate}")


def parse_cells(spec: str) -> list[Cell]:
    """``'ce:0,ls:0.2,nls:-0.4,flip:0.18'`` -> cells, sorted and without duplicates."""
    cells = set()
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        method, sep, rate = item.partition(":")
        if not sep:
            if method == "ce":
                rate = "0"
            else:
                raise ValueError(f"cell {item!r} needs METHOD:RATE, e.g. ls:0.2")
        try:
            value = float(rate)
        except ValueError:
            raise ValueError(f"cell {item!r}: rate {rate!r} is not a number") from None
        cells.add(Cell(method.strip(), value))
    if not cells:
        raise ValueError("the cells spec is empty; give e.g. 'ce:0,ls:0.2'")
    return sorted(cells, key=lambda c: (METHODS.index(c.method), c.rate))


def format_cells(cells: list[Cell]) -> str:
    return ",".join(f"{c.method}:{fmt_rate(c.rate)}" for c in cells)


def group_id(dataset: str, kind: str, rate: float | str, seed: int) -> str:
    return f"{dataset}-{kind}-{fmt_rate(rate)}-s{seed}"
