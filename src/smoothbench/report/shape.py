"""What a (dataset, noise kind, variant) of a study holds, as far as the report's files go:
its methods, how many noise rates and seeds, and whether it has a held-out split. Known from
the study alone (``study.grid.report_shapes``), so that the workflow declares exactly the
files the report writes: a figure or table with nothing to show is neither written nor
promised."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shape:
    methods: frozenset[str]
    rates: int = 2
    seeds: int = 2
    held_out: bool = True

    @staticmethod
    def of(value: "Shape | set[str] | frozenset[str]") -> "Shape":
        """A shape, or a set of methods as shorthand for one with several noise rates and seeds
        and a held-out split."""
        return value if isinstance(value, Shape) else Shape(frozenset(value))
