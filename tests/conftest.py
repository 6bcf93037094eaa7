"""Fixtures shared by the collector, table and report tests (hand-made results, toy_results.py)."""

from __future__ import annotations

from smoothbench.cli import commands as cli

cli._reproducible_cpu()  # the CPU kernels every `smoothbench` command uses, before torch is imported

import pytest  # noqa: E402

from smoothbench.report import choices, collect, build as report  # noqa: E402
from toy_results import write_refs, write_toy


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    paths = write_toy(root) + write_toy(root, kind="pairflip")
    results, curves = root / "results.csv", root / "curves.csv"
    collect.collect(paths, results, curves)
    choices.write_choices(results, root / "choices.csv")
    return root, paths, results, curves


@pytest.fixture(scope="module")
def built(collected, tmp_path_factory):
    _, _, results, curves = collected
    refdir = write_refs(tmp_path_factory.mktemp("refs"))
    out = tmp_path_factory.mktemp("reports")
    written = report.build_reports(results, curves, out, reference_dir=refdir)
    return out, written
