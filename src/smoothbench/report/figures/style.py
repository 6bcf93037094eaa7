"""What every figure shares: the matplotlib style, a figure with fixed margins, saving it as
PNG and SVG with deterministic bytes, palettes and legends, and each method's style.

Agg canvas, DejaVu Sans, ``svg.hashsalt`` fixed, no ``Date`` / ``Creator`` / ``Software``
metadata; 200 dpi, fonts of 8-10 pt at the saved size. A method's colour and line style
come from the registry (its position and its family), so a new method needs no style entry.
"""

from __future__ import annotations

from pathlib import Path

from ... import methods as registry
from ...core.files import atomic_path
from ..seedstats import REPORT_SELECTIONS, Setting

FIGURE_FORMATS = ("png", "svg")
# one folder per format, so that `dvc plots show` (which reads figures/) shows each figure once
FOLDERS = {"png": "figures", "svg": "figures-svg"}
DPI = 200
LEGEND_WIDTH = 1.7  # inches kept free on the right for a figure legend
# panels of the accuracy figures: the honest selection and the last epoch, the reference's beside
FIGURE_SELECTIONS = REPORT_SELECTIONS
PANEL = (3.6, 3.1)   # inches of one panel of a three-panel figure (width, height)
_LINES = ("-", "--", ":", "-.", (0, (5, 1)), (0, (1, 1)), (0, (3, 1, 1, 1)))
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def method_style(method: str) -> tuple:
    """(colour, line style, marker) of a method: the colour from its registry position, the line
    and marker from its family's."""
    import seaborn as sns

    names = registry.names()
    groups = list(dict.fromkeys(registry.get(m).group for m in names))
    g = groups.index(registry.get(method).group)
    colors = sns.color_palette("tab20", 20)
    return colors[(2 * names.index(method)) % 20 + (names.index(method) // 10) % 2], _LINES[g % len(_LINES)], \
        _MARKERS[g % len(_MARKERS)]


def title(key: tuple[str, str, str]) -> str:
    """'mnist5k / symmetric / warmup': a (dataset, noise kind, variant) in a title."""
    return " / ".join(key)


def tag(key: tuple[str, str, str]) -> str:
    """'mnist5k_symmetric_warmup': a (dataset, noise kind, variant) in a file name."""
    return "_".join(key)


def rc() -> dict:
    import seaborn as sns

    rc = dict(sns.axes_style("whitegrid"))
    rc.update({
        "svg.hashsalt": "smoothbench",
        "svg.fonttype": "path",
        "font.family": "DejaVu Sans",
        "font.size": 9,
        "axes.titlesize": 10,
        "axes.labelsize": 9,
        "legend.fontsize": 8,
        "xtick.labelsize": 8,
        "ytick.labelsize": 8,
        "figure.titlesize": 11,
        "figure.dpi": DPI,
        "savefig.dpi": DPI,
        "image.cmap": "viridis",
    })
    return rc


def new_figure(width: float, height: float, nrows: int = 1, ncols: int = 1, *, left: float = 0.75,
                right: float = 0.2, bottom: float = 0.75, top: float = 0.75, wspace: float = 0.3,
                hspace: float = 0.6):
    """A figure on an Agg canvas with fixed margins (in inches; a fixed layout is fast and stable)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - top / height, wspace=wspace, hspace=hspace)
    return fig, [ax for row in axes for ax in row]


def save(fig, out_dir: Path, stem: str) -> None:
    """The figure as ``<stem>.png`` and ``<stem>.svg``, each in its format's folder, atomically."""
    for ext in FIGURE_FORMATS:
        with atomic_path(out_dir / FOLDERS[ext] / f"{stem}.{ext}") as tmp:
            if ext == "png":
                fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
            else:
                fig.savefig(tmp, format="svg", metadata={"Date": None, "Creator": None})


def palette(n: int) -> list:
    import seaborn as sns

    return list(sns.color_palette("viridis", max(n, 1)))


def empty_text(results, key: tuple[str, str, str], selection: str) -> str:
    """What an empty panel of a selection says: no held-out split, or no data."""
    return "no held-out split" if results.analysis.unavailable(key[0], selection) else "no data"


def no_data(ax, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center")


def noise_legend(fig, sets: list[Setting], colors: list, extra: list | None = None) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, lw=1.2, marker="o", ms=4, label=f"noise {s.noise_rate}")
               for c, s in zip(colors, sets)]
    fig.legend(handles=handles + (extra or []), loc="center right", frameon=False,
               bbox_to_anchor=(1.0, 0.5))


def errorbars(ax, xs, ys, es, color, **kw) -> None:
    ax.errorbar(xs, ys, yerr=es, color=color, ms=4, lw=1.2, capsize=2.5, elinewidth=0.9, **kw)
