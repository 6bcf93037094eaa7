"""Seaborn figures of the results, PNG and SVG, byte-reproducible.

Per dataset x noise kind: accuracy vs smooth rate, heatmap noise rate x r, memorisation
(clean vs noisy training accuracy), calibration (ECE), flipping at eps vs LS at
r = eps K/(K-1), and training curves. Agg canvas, fixed dpi, DejaVu Sans,
``svg.hashsalt`` fixed, no ``Date`` / ``Creator`` / ``Software`` metadata.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from .cells import KEY_COLUMNS, METHODS, flip_to_smooth, fmt_rate
from .io import atomic_path
from .selection import SELECTION_TITLES, SELECTIONS
from .stats import Setting, table_row
from .tables import entry_name

FIGURE_TITLES = {
    "acc_vs_rate": "Accuracy vs smooth rate",
    "heatmap": "Accuracy heatmaps",
    "memorisation": "Memorisation",
    "calibration": "Calibration",
    "flip_vs_ls": "Flipping vs LS",
    "curves": "Training curves",
}
FIGURES = tuple(FIGURE_TITLES)
FIGURE_FORMATS = ("png", "svg")
# one folder per format, so that `dvc plots show` (which reads figures/) shows each figure once
FOLDERS = {"png": "figures", "svg": "figures-svg"}
DPI = 100


def figure_files(key: tuple[str, str, str]) -> list[str]:
    """The figure files of one (dataset, noise kind, variant), relative to the report folder."""
    return [f"{FOLDERS[ext]}/fig_{fig}_{_tag(key)}.{ext}" for fig in FIGURES for ext in FIGURE_FORMATS]


def _tag(key: tuple[str, str, str]) -> str:
    return "_".join(key)


def _title(key: tuple[str, str, str]) -> str:
    return " / ".join(key)


def _rc() -> dict:
    import seaborn as sns

    rc = dict(sns.axes_style("whitegrid"))
    rc.update({
        "svg.hashsalt": "smoothbench",
        "svg.fonttype": "path",
        "font.family": "DejaVu Sans",
        "font.size": 7,
        "axes.titlesize": 8,
        "axes.labelsize": 7,
        "legend.fontsize": 6,
        "xtick.labelsize": 6,
        "ytick.labelsize": 6,
        "figure.dpi": DPI,
        "savefig.dpi": DPI,
        "image.cmap": "viridis",
    })
    return rc


def _new_figure(width: float, height: float, nrows: int = 1, ncols: int = 1, *, left: float = 0.5,
                right: float = 0.15, bottom: float = 0.42, top: float = 0.45, wspace: float = 0.3,
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


LEGEND_WIDTH = 0.95  # inches kept free on the right for a figure legend
# panels of the accuracy figures: the reference's choice, the honest one, and the last epoch
# (with a shared warm-up the first two often pick a warm-up checkpoint; the last shows each method's phase)
FIGURE_SELECTIONS = ("best", "selected", "final")


def _save(fig, out_dir: Path, stem: str) -> None:
    for ext in FIGURE_FORMATS:
        with atomic_path(out_dir / FOLDERS[ext] / f"{stem}.{ext}") as tmp:
            if ext == "png":
                fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
            else:
                fig.savefig(tmp, format="svg", metadata={"Date": None, "Creator": None})


def _palette(n: int) -> list:
    import seaborn as sns

    return list(sns.color_palette("viridis", max(n, 1)))


def _no_data(ax, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center")


def _noise_legend(fig, sets: list[Setting], colors: list, extra: list | None = None) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, lw=1, marker="o", ms=3, label=f"noise {s.noise_rate}")
               for c, s in zip(colors, sets)]
    fig.legend(handles=handles + (extra or []), loc="center right", frameon=False,
               bbox_to_anchor=(1.0, 0.5))


def _gls_points(s: Setting, metric: str) -> tuple[list[float], list[float], list[float], list[float]]:
    """(rates, means, stds, all-diverged rates) of the CE/LS/NLS cells of a setting, in %."""
    xs, ys, es, dead = [], [], [], []
    for r in sorted(s.rates("ce") + s.rates("ls") + s.rates("nls")):
        m = "ce" if r == 0 else ("ls" if r > 0 else "nls")
        st = s.stat(m, r, metric)
        if st.mean is None:
            if st.n_diverged:
                dead.append(r)
            continue
        xs.append(r)
        ys.append(100 * st.mean)
        es.append(100 * st.std if st.std is not None else 0.0)
    return xs, ys, es, dead


def _rate_axis(ax, rates: list[float], shade: bool = True) -> None:
    """x axis of smooth rates: symlog beyond |r| > 1, NLS side shaded red, LS side blue."""
    from matplotlib.ticker import NullLocator

    lo, hi = min(rates + [-0.1]), max(rates + [0.1])
    if max(-lo, hi) > 1.0:
        ax.set_xscale("symlog", linthresh=1.0)
        left = lo * 1.2 if lo < -1 else lo - 0.1
        right = hi * 1.2 if hi > 1 else hi + 0.1
    else:
        pad = 0.06 * (hi - lo)
        left, right = lo - pad, hi + pad
    if shade:
        ax.axvspan(left, 0, color="tab:red", alpha=0.07, lw=0)
        ax.axvspan(0, right, color="tab:blue", alpha=0.07, lw=0)
        ax.text(0.02, 0.97, "NLS (r<0)", transform=ax.transAxes, ha="left", va="top", fontsize=6,
                color="tab:red")
        ax.text(0.98, 0.97, "LS (r>0)", transform=ax.transAxes, ha="right", va="top", fontsize=6,
                color="tab:blue")
    ax.axvline(0, color="0.3", lw=0.8, ls=":")
    ax.set_xlim(left, right)
    ticks = sorted(set(rates) | {0.0})
    ax.set_xticks(ticks, [fmt_rate(r) for r in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    if len(ticks) > 7:
        ax.tick_params(axis="x", labelrotation=90, labelsize=5)


def _all_gls_rates(sets: list[Setting]) -> list[float]:
    return sorted({r for s in sets for m in ("ce", "ls", "nls") for r in s.rates(m)})


def _errorbars(ax, xs, ys, es, color, **kw) -> None:
    ax.errorbar(xs, ys, yerr=es, color=color, ms=3, lw=1, capsize=2, elinewidth=0.8, **kw)


def _fig_acc_vs_rate(key: tuple[str, str, str], sets: list[Setting], out: Path) -> None:
    from matplotlib.lines import Line2D

    fig, axes = _new_figure(9.4, 2.6, 1, 3, right=LEGEND_WIDTH, top=0.5)
    colors = _palette(len(sets))
    rates = _all_gls_rates(sets)
    for ax, selection in zip(axes, FIGURE_SELECTIONS):
        metric = SELECTIONS[selection][0]
        any_data = False
        for color, s in zip(colors, sets):
            xs, ys, es, dead = _gls_points(s, metric)
            if xs:
                any_data = True
                _errorbars(ax, xs, ys, es, color, marker="o")
            if dead:
                ax.plot(dead, [0.04] * len(dead), ls="none", marker="x", ms=4, color=color,
                        transform=ax.get_xaxis_transform())
        if rates:
            _rate_axis(ax, rates)
        if not any_data:
            _no_data(ax)
        ax.set_title(f"{SELECTION_TITLES[selection]} ({metric})")
        ax.set_xlabel("smooth rate r (CE at r = 0)")
    axes[0].set_ylabel("test accuracy (%)")
    _noise_legend(fig, sets, colors, [Line2D([], [], color="0.3", ls="none", marker="x", ms=4,
                                             label="all seeds\ndiverged")])
    fig.suptitle(f"{_title(key)}: test accuracy vs smooth rate (mean ± std over seeds)", fontsize=8)
    _save(fig, out, f"fig_acc_vs_rate_{_tag(key)}")


def _fig_heatmap(key: tuple[str, str, str], sets: list[Setting], out: Path) -> None:
    import numpy as np
    import seaborn as sns

    rates = _all_gls_rates(sets)
    width = min(9.0, max(3.6, 0.42 * len(rates) + 1.6))
    panel_h = 0.22 * len(sets) + 0.3
    fig, axes = _new_figure(width, 3 * panel_h + 2.2, 3, 1, left=0.55, right=0.1, top=0.45,
                            bottom=0.4, hspace=0.9)
    for ax, selection in zip(axes, FIGURE_SELECTIONS):
        metric = SELECTIONS[selection][0]
        data = np.full((len(sets), len(rates)), np.nan)
        dead = []
        for i, s in enumerate(sets):
            for j, r in enumerate(rates):
                m = "ce" if r == 0 else ("ls" if r > 0 else "nls")
                if (m, r) not in s.cells:
                    continue
                st = s.stat(m, r, metric)
                if st.mean is not None:
                    data[i, j] = 100 * st.mean
                elif st.n_diverged:
                    dead.append((i, j))
        if np.isfinite(data).any():
            sns.heatmap(data, ax=ax, mask=~np.isfinite(data), annot=True, fmt=".1f", cmap="viridis",
                        annot_kws={"size": 5}, cbar_kws={"pad": 0.02},
                        xticklabels=[fmt_rate(r) for r in rates],
                        yticklabels=[s.noise_rate for s in sets], linewidths=0.3, linecolor="white")
            for i, j in dead:
                ax.text(j + 0.5, i + 0.5, "div", ha="center", va="center", fontsize=5, color="tab:red")
            ax.tick_params(axis="y", rotation=0)
            ax.grid(False)
        else:
            _no_data(ax)
        ax.set_title(f"{SELECTION_TITLES[selection]} ({metric})")
        ax.set_ylabel("noise rate")
    axes[-1].set_xlabel("smooth rate r")
    fig.suptitle(f"{_title(key)}: mean test accuracy (%), noise rate × r (div: all seeds diverged)",
                 fontsize=8)
    _save(fig, out, f"fig_heatmap_{_tag(key)}")


def _fig_metric_vs_rate(key: tuple[str, str, str], sets: list[Setting], out: Path, stem: str,
                        series: list[tuple[str, str]], ylabel: str, title: str) -> None:
    from matplotlib.lines import Line2D

    fig, axes = _new_figure(4.4, 2.6, right=LEGEND_WIDTH + 0.25, top=0.35)
    ax = axes[0]
    colors = _palette(len(sets))
    styles = ["-", "--", ":"]
    markers = ["o", "s", "^"]
    any_data = False
    for color, s in zip(colors, sets):
        for (metric, _), style, marker in zip(series, styles, markers):
            xs, ys, es, _dead = _gls_points(s, metric)
            if xs:
                any_data = True
                _errorbars(ax, xs, ys, es, color, ls=style, marker=marker)
    rates = _all_gls_rates(sets)
    if rates:
        _rate_axis(ax, rates)
    if not any_data:
        _no_data(ax)
    extra = []
    if len(series) > 1:
        extra = [Line2D([], [], color="0.3", ls=st, marker=mk, ms=3, lw=1, label=lab)
                 for (_, lab), st, mk in zip(series, styles, markers)]
    _noise_legend(fig, sets, colors, extra)
    ax.set_xlabel("smooth rate r (CE at r = 0)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{_title(key)}: {title}")
    _save(fig, out, f"{stem}_{_tag(key)}")


def _fig_flip_vs_ls(key: tuple[str, str, str], sets: list[Setting], out: Path) -> None:
    from matplotlib.lines import Line2D

    fig, axes = _new_figure(9.4, 2.6, 1, 3, right=LEGEND_WIDTH, top=0.5)
    colors = _palette(len(sets))
    xs_all: list[float] = []
    for ax, selection in zip(axes, FIGURE_SELECTIONS):
        metric = SELECTIONS[selection][0]
        any_data = False
        for color, s in zip(colors, sets):
            K = s.num_classes
            xs, ys, es = [], [], []
            for r in s.rates("ce") + s.rates("ls"):
                st = s.stat("ce" if r == 0 else "ls", r, metric)
                if st.mean is not None:
                    xs.append(r)
                    ys.append(100 * st.mean)
                    es.append(100 * st.std if st.std is not None else 0.0)
            if xs:
                any_data = True
                _errorbars(ax, xs, ys, es, color, marker="o")
            fx, fy, fe = [], [], []
            for eps in s.rates("flip"):
                st = s.stat("flip", eps, metric)
                if st.mean is not None:
                    fx.append(flip_to_smooth(eps, K))
                    fy.append(100 * st.mean)
                    fe.append(100 * st.std if st.std is not None else 0.0)
            if fx:
                any_data = True
                _errorbars(ax, fx, fy, fe, color, marker="s", mfc="none", ls="none")
            xs_all += xs + fx
        if not any_data:
            _no_data(ax)
        ax.set_title(f"{SELECTION_TITLES[selection]} ({metric})")
        ax.set_xlabel("r (LS)  =  εK/(K−1) (flip)")
    axes[0].set_ylabel("test accuracy (%)")
    extra = [Line2D([], [], color="0.3", marker="o", ms=3, lw=1, label="LS / CE (r)"),
             Line2D([], [], color="0.3", marker="s", mfc="none", ms=3, ls="none", label="flip (ε)")]
    _noise_legend(fig, sets, colors, extra)
    fig.suptitle(f"{_title(key)}: label flipping at ε vs LS at r = εK/(K−1) (equal in expectation)",
                 fontsize=8)
    _save(fig, out, f"fig_flip_vs_ls_{_tag(key)}")


def _fig_curves(key: tuple[str, str, str], sets: list[Setting], curves: dict, out: Path) -> None:
    from matplotlib.ticker import MaxNLocator

    n = max(len(sets), 1)
    ncols = min(n, 3)
    nrows = (n + ncols - 1) // ncols
    fig, axes = _new_figure(2.2 * ncols + 0.7, 1.9 * nrows + 0.6, nrows, ncols, top=0.5, wspace=0.35)
    styles = {"ce": ("0.2", "-"), "ls": ("tab:blue", "-"), "nls": ("tab:red", "-"), "flip": ("tab:green", "--")}
    for ax in axes[len(sets):]:
        ax.set_axis_off()
    if not sets:
        _no_data(axes[0])
    for i, (ax, s) in enumerate(zip(axes, sets)):
        entries = table_row(s, "best")
        any_data = False
        warm_end = 0
        for m in METHODS:
            e = entries[m]
            if e is None or e.rate is None:
                continue
            per_epoch: dict[int, list[float]] = {}
            for cell in s.cells[(m, e.rate)]:
                if cell["status"] != "ok":
                    continue
                for rec in curves.get(tuple(cell[k] for k in KEY_COLUMNS), []):
                    if rec["test_acc"] is not None and math.isfinite(rec["test_acc"]):
                        per_epoch.setdefault(rec["epoch"], []).append(rec["test_acc"])
                    if rec["phase"] == "warmup":
                        warm_end = max(warm_end, rec["epoch"])
            if not per_epoch:
                continue
            any_data = True
            ep = sorted(per_epoch)
            color, style = styles[m]
            ax.plot(ep, [100 * statistics.fmean(per_epoch[k]) for k in ep], color=color, ls=style, lw=1,
                    label=entry_name(e))
        if warm_end:
            ax.axvspan(0.5, warm_end + 0.5, color="0.8", alpha=0.5, lw=0)
        if any_data:
            ax.legend(loc="lower right", fontsize=5)
        else:
            _no_data(ax)
        ax.set_title(f"noise {s.noise_rate}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if i // ncols == nrows - 1:
            ax.set_xlabel("epoch (grey: warm-up)")
        if i % ncols == 0:
            ax.set_ylabel("test accuracy (%)")
    fig.suptitle(f"{_title(key)}: test accuracy per epoch, mean over non-diverged seeds "
                 "(rates: best-on-test choice)", fontsize=7)
    _save(fig, out, f"fig_curves_{_tag(key)}")


def write_figures(settings: dict[tuple[str, str], list[Setting]], curves: dict, out: Path) -> None:
    import matplotlib

    with matplotlib.rc_context(_rc()):
        for key, sets in settings.items():
            _fig_acc_vs_rate(key, sets, out)
            _fig_heatmap(key, sets, out)
            _fig_metric_vs_rate(key, sets, out, "fig_memorisation",
                                [("clean_train_acc", "vs clean labels"),
                                 ("noisy_train_acc", "vs noisy labels")],
                                "final training accuracy (%)", "memorisation")
            _fig_metric_vs_rate(key, sets, out, "fig_calibration", [("ece", "ECE")],
                                "ECE × 100 (15 bins, final epoch)", "calibration")
            _fig_flip_vs_ls(key, sets, out)
            _fig_curves(key, sets, curves, out)
