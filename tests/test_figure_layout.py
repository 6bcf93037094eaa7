"""Every text of every figure lies inside the figure: no title or label cut off at an edge, for a
study with a long dataset name and the default study's seven smooth rates."""

from __future__ import annotations

import pytest

from smoothbench.report import choices, collect, figures, results as study_results
from smoothbench.report.figures.style import rc
from toy_results import write_toy

OK = "ok"
GRID = {("ce", 0.0): 0.80, ("ls", 0.2): 0.82, ("ls", 0.4): 0.81, ("ls", 0.6): 0.79, ("nls", -0.2): 0.80,
        ("nls", -0.5): 0.79, ("nls", -1.0): 0.78, ("flip", 0.2): 0.81, ("flip", 0.3): 0.80, ("gce", 0.7): 0.83}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("layout")
    data = {rate: {cell: [(OK, acc - shift + 0.01, acc - shift), (OK, acc - shift + 0.02, acc - shift - 0.01)]
                   for cell, acc in GRID.items()} for rate, shift in (("0", 0.0), ("0.2", 0.05), ("0.4", 0.15))}
    paths = write_toy(root / "results", dataset="breast_cancer", data=data, variants={"warmup": 0.0})
    collect.collect(paths, root / "results.csv", root / "curves.csv")
    choices.write_choices(root / "results.csv", root / "choices.csv")
    return study_results.load(root / "results.csv", root / "curves.csv", params={"bootstrap": 200})


@pytest.mark.parametrize("name", list(figures.FIGURES))
def test_no_text_of_a_figure_is_cut_off(study, name):
    import matplotlib

    figure = figures.FIGURES[name]
    (key, sets), = study.settings.items()
    if not figure.wanted(study.shapes()[key]):
        pytest.skip(f"{name}: nothing to show for this study")
    with matplotlib.rc_context(rc()):
        fig = figure.draw(key, sets, study)
        renderer = fig.canvas.get_renderer()
        fig.canvas.draw()
        width, height = fig.bbox.width, fig.bbox.height
        outside = []
        for text in fig.findobj(matplotlib.text.Text):
            if not text.get_visible() or not text.get_text().strip():
                continue
            box = text.get_window_extent(renderer)
            if box.x0 < -1 or box.y0 < -1 or box.x1 > width + 1 or box.y1 > height + 1:
                outside.append(f"{text.get_text()!r} at [{box.x0:.0f}, {box.x1:.0f}] x [{box.y0:.0f}, {box.y1:.0f}]")
    assert not outside, f"{name} ({width:.0f} x {height:.0f} px): " + "; ".join(outside)
