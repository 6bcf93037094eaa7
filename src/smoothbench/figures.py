"""Seaborn figures of the results, PNG and SVG, byte-reproducible.

Per dataset x noise kind x protocol variant: the claims figure first (each method's gain
over its baseline with its 95% interval, per noise rate), then accuracy vs smooth rate,
heatmap noise rate x r, memorisation (clean vs noisy training accuracy), calibration (ECE),
flipping at eps vs LS at r = eps K/(K-1), and training curves. Print quality: 200 dpi,
fonts of 8-10 pt at the saved size, labels outside the data, non-linear axes said so.
Agg canvas, DejaVu Sans, ``svg.hashsalt`` fixed, no ``Date`` / ``Creator`` / ``Software``
metadata.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from . import claims
from .cells import BASELINE, KEY_COLUMNS, METHOD_LABELS, METHODS, flip_to_smooth, fmt_rate
from .io import atomic_path
from .selection import SELECTION_TITLES, SELECTIONS
from .stats import Setting, table_row
from .tables import entry_name

FIGURE_TITLES = {
    "claims": "Claims: gains over the baseline",
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
DPI = 200


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


def _new_figure(width: float, height: float, nrows: int = 1, ncols: int = 1, *, left: float = 0.75,
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


LEGEND_WIDTH = 1.7  # inches kept free on the right for a figure legend
# panels of the accuracy figures: the honest selection and the last epoch, the reference's beside
FIGURE_SELECTIONS = claims.CLAIM_SELECTIONS
PANEL = (3.6, 3.1)   # inches of one panel of a three-panel figure (width, height)
FAMILIES = {"softmax": ("ce", "ls", "nls"), "BCE": ("bce", "bls", "bnls")}


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

    handles = [Line2D([], [], color=c, lw=1.2, marker="o", ms=4, label=f"noise {s.noise_rate}")
               for c, s in zip(colors, sets)]
    fig.legend(handles=handles + (extra or []), loc="center right", frameon=False,
               bbox_to_anchor=(1.0, 0.5))


def _family_method(family: tuple[str, str, str], r: float) -> str:
    """The method of a smoothing family at rate r: the baseline at 0, smoothing above, negative below."""
    return family[0] if r == 0 else (family[1] if r > 0 else family[2])


def _gls_points(s: Setting, metric: str, family: tuple[str, str, str] = FAMILIES["softmax"]
                ) -> tuple[list[float], list[float], list[float], list[float]]:
    """(rates, means, stds, all-diverged rates) of one family's cells of a setting, in %."""
    xs, ys, es, dead = [], [], [], []
    for r in sorted(r for m in family for r in s.rates(m)):
        m = _family_method(family, r)
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
    """x axis of smooth rates: symlog beyond |r| > 1 (the label says so), the NLS side shaded
    red and the LS side blue; the label names the sides, so no text sits on the data."""
    from matplotlib.ticker import NullLocator

    lo, hi = min(rates + [-0.1]), max(rates + [0.1])
    symlog = max(-lo, hi) > 1.0
    if symlog:
        ax.set_xscale("symlog", linthresh=1.0)
        left = lo * 1.2 if lo < -1 else lo - 0.1
        right = hi * 1.2 if hi > 1 else hi + 0.1
    else:
        pad = 0.06 * (hi - lo)
        left, right = lo - pad, hi + pad
    if shade:
        ax.axvspan(left, 0, color="tab:red", alpha=0.07, lw=0)
        ax.axvspan(0, right, color="tab:blue", alpha=0.07, lw=0)
    ax.axvline(0, color="0.3", lw=0.8, ls=":")
    ax.set_xlim(left, right)
    ticks = sorted(set(rates) | {0.0})
    ax.set_xticks(ticks, [fmt_rate(r) for r in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    if len(ticks) > 6:
        ax.tick_params(axis="x", labelrotation=45)
    scale = "symlog scale: linear within ±1, logarithmic beyond" if symlog else "linear scale"
    ax.set_xlabel(f"smooth rate r (red: NLS, r < 0; blue: LS, r > 0)\n{scale}")


def _all_gls_rates(sets: list[Setting]) -> list[float]:
    return sorted({r for s in sets for m in ("ce", "ls", "nls") for r in s.rates(m)})


def _errorbars(ax, xs, ys, es, color, **kw) -> None:
    ax.errorbar(xs, ys, yerr=es, color=color, ms=4, lw=1.2, capsize=2.5, elinewidth=0.9, **kw)


def _fig_claims(key: tuple[str, str, str], sets: list[Setting], out: Path) -> None:
    """The claims at a glance: per noise rate, each method at its best rate minus its baseline
    (LS, NLS, flip - CE; BCE-LS, BCE-NLS - BCE), mean paired difference over seeds with its
    95% t interval; one panel per selection."""
    from matplotlib.lines import Line2D

    methods = [m for m in BASELINE if any(s.rates(m) for s in sets)]
    colors = {"ls": "tab:blue", "nls": "tab:red", "flip": "tab:green", "bls": "tab:cyan", "bnls": "tab:orange"}
    styles = {m: ("-" if m in ("ls", "nls", "flip") else "--") for m in methods}
    n = len(sets)
    fig, axes = _new_figure(3 * PANEL[0] + LEGEND_WIDTH + 0.9, PANEL[1] + 1.5, 1, 3, right=LEGEND_WIDTH, top=0.9)
    for ax, selection in zip(axes, FIGURE_SELECTIONS):
        metric = SELECTIONS[selection][0]
        any_data = False
        for j, m in enumerate(methods):
            xs, ys, lo, hi = [], [], [], []
            for i, s in enumerate(sets):
                diffs = list(claims.gain(s, m, BASELINE[m], metric).values())
                ci = claims.t_interval(diffs)
                if ci is None:
                    continue
                xs.append(i + (j - (len(methods) - 1) / 2) * 0.08)       # side by side, no overlap
                ys.append(ci[0])
                lo.append(ci[0] - ci[1])
                hi.append(ci[2] - ci[0])
            if xs:
                any_data = True
                ax.errorbar(xs, ys, yerr=[lo, hi], color=colors[m], ls=styles[m], marker="o", ms=4, lw=1.2,
                            capsize=2.5, elinewidth=0.9)
        ax.axhline(0, color="0.3", lw=0.8)
        ax.set_xticks(range(n), [s.noise_rate for s in sets])
        ax.set_xlim(-0.5, n - 0.5)
        ax.set_xlabel("noise rate")
        if not any_data:
            _no_data(ax, "no paired seeds")
        ax.set_title(SELECTION_TITLES[selection])
    axes[0].set_ylabel("gain over the baseline (points)\nmean over seeds, 95% interval")
    handles = [Line2D([], [], color=colors[m], ls=styles[m], marker="o", ms=4, lw=1.2,
                      label=f"{METHOD_LABELS[m]} − {METHOD_LABELS[BASELINE[m]]}") for m in methods]
    fig.legend(handles=handles, loc="center right", frameon=False, bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"{_title(key)}: each method at its best rate against its baseline (above 0: it helps)")
    _save(fig, out, f"fig_claims_{_tag(key)}")


def _fig_acc_vs_rate(key: tuple[str, str, str], sets: list[Setting], out: Path) -> None:
    from matplotlib.lines import Line2D

    fig, axes = _new_figure(3 * PANEL[0] + LEGEND_WIDTH + 0.9, PANEL[1] + 1.7, 1, 3, right=LEGEND_WIDTH,
                            top=0.9, bottom=1.05)
    colors = _palette(len(sets))
    families = {name: fam for name, fam in FAMILIES.items() if any(s.rates(m) for s in sets for m in fam)}
    rates = sorted({r for s in sets for fam in families.values() for m in fam for r in s.rates(m)})
    for ax, selection in zip(axes, FIGURE_SELECTIONS):
        metric = SELECTIONS[selection][0]
        any_data = False
        for color, s in zip(colors, sets):
            for name, fam in families.items():
                xs, ys, es, dead = _gls_points(s, metric, fam)
                if xs:
                    any_data = True
                    _errorbars(ax, xs, ys, es, color, marker="o" if name == "softmax" else "s",
                               ls="-" if name == "softmax" else "--")
                if dead:
                    ax.plot(dead, [0.04] * len(dead), ls="none", marker="x", ms=5, color=color,
                            transform=ax.get_xaxis_transform())
        if rates:
            _rate_axis(ax, rates)
        if not any_data:
            _no_data(ax)
        ax.set_title(SELECTION_TITLES[selection])
    axes[0].set_ylabel("test accuracy (%)")
    extra = [Line2D([], [], color="0.3", ls="none", marker="x", ms=5, label="all seeds diverged")]
    if len(families) > 1:
        extra = [Line2D([], [], color="0.3", ls="-", marker="o", ms=4, label="softmax (CE, LS, NLS)"),
                 Line2D([], [], color="0.3", ls="--", marker="s", ms=4, label="BCE (BCE, -LS, -NLS)")] + extra
    _noise_legend(fig, sets, colors, extra)
    fig.suptitle(f"{_title(key)}: test accuracy vs smooth rate (mean ± std over seeds)")
    _save(fig, out, f"fig_acc_vs_rate_{_tag(key)}")


def _fig_heatmap(key: tuple[str, str, str], sets: list[Setting], out: Path) -> None:
    import numpy as np
    import seaborn as sns

    rates = _all_gls_rates(sets)
    width = min(12.0, max(5.0, 0.62 * len(rates) + 2.4))
    panel_h = 0.34 * len(sets) + 0.4
    fig, axes = _new_figure(width, 3 * panel_h + 3.0, 3, 1, left=0.9, right=0.3, top=0.8,
                            bottom=0.8, hspace=0.7)
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
                        annot_kws={"size": 8}, cbar_kws={"pad": 0.02},
                        xticklabels=[fmt_rate(r) for r in rates],
                        yticklabels=[s.noise_rate for s in sets], linewidths=0.3, linecolor="white")
            for i, j in dead:
                ax.text(j + 0.5, i + 0.5, "div", ha="center", va="center", fontsize=8, color="tab:red")
            ax.tick_params(axis="y", rotation=0)
            ax.grid(False)
        else:
            _no_data(ax)
        ax.set_title(SELECTION_TITLES[selection])
        ax.set_ylabel("noise rate")
    axes[-1].set_xlabel("smooth rate r of CE (0), LS (> 0) and NLS (< 0); one column per rate, not to scale")
    fig.suptitle(f"{_title(key)}: mean test accuracy (%), noise rate × r (div: all seeds diverged)")
    _save(fig, out, f"fig_heatmap_{_tag(key)}")


def _fig_metric_vs_rate(key: tuple[str, str, str], sets: list[Setting], out: Path, stem: str,
                        series: list[tuple[str, str]], ylabel: str, title: str) -> None:
    from matplotlib.lines import Line2D

    fig, axes = _new_figure(PANEL[0] + LEGEND_WIDTH + 1.2, PANEL[1] + 1.7, right=LEGEND_WIDTH + 0.3, top=0.7,
                            bottom=1.05)
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
        extra = [Line2D([], [], color="0.3", ls=st, marker=mk, ms=4, lw=1.2, label=lab)
                 for (_, lab), st, mk in zip(series, styles, markers)]
    _noise_legend(fig, sets, colors, extra)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{_title(key)}: {title}")
    _save(fig, out, f"{stem}_{_tag(key)}")


def _fig_flip_vs_ls(key: tuple[str, str, str], sets: list[Setting], out: Path) -> None:
    from matplotlib.lines import Line2D

    fig, axes = _new_figure(3 * PANEL[0] + LEGEND_WIDTH + 0.9, PANEL[1] + 1.5, 1, 3, right=LEGEND_WIDTH, top=0.9)
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
        ax.set_title(SELECTION_TITLES[selection])
        ax.set_xlabel("r of LS  =  εK/(K−1) of flip (linear scale)")
    axes[0].set_ylabel("test accuracy (%)")
    extra = [Line2D([], [], color="0.3", marker="o", ms=4, lw=1.2, label="LS / CE at r"),
             Line2D([], [], color="0.3", marker="s", mfc="none", ms=4, ls="none", label="flip at ε")]
    _noise_legend(fig, sets, colors, extra)
    fig.suptitle(f"{_title(key)}: label flipping at ε vs LS at r = εK/(K−1) (equal in expectation)")
    _save(fig, out, f"fig_flip_vs_ls_{_tag(key)}")


def _fig_curves(key: tuple[str, str, str], sets: list[Setting], curves: dict, out: Path) -> None:
    from matplotlib.ticker import MaxNLocator

    n = max(len(sets), 1)
    ncols = min(n, 3)
    nrows = (n + ncols - 1) // ncols
    fig, axes = _new_figure(3.3 * ncols + 0.9, 2.8 * nrows + 1.2, nrows, ncols, top=0.8, wspace=0.3, hspace=0.55)
    styles = {"ce": ("0.2", "-"), "ls": ("tab:blue", "-"), "nls": ("tab:red", "-"), "flip": ("tab:green", "--"),
              "bce": ("0.5", ":"), "bls": ("tab:cyan", ":"), "bnls": ("tab:orange", ":")}
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
            ax.plot(ep, [100 * statistics.fmean(per_epoch[k]) for k in ep], color=color, ls=style, lw=1.3,
                    label=entry_name(e))
        if warm_end:
            ax.axvspan(0.5, warm_end + 0.5, color="0.8", alpha=0.5, lw=0)
        if any_data:
            ax.legend(loc="lower right", fontsize=7)
        else:
            _no_data(ax)
        ax.set_title(f"noise {s.noise_rate}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if i // ncols == nrows - 1:
            ax.set_xlabel("epoch (grey: warm-up)")
        if i % ncols == 0:
            ax.set_ylabel("test accuracy (%)")
    fig.suptitle(f"{_title(key)}: test accuracy per epoch, mean over non-diverged seeds "
                 "(each method at its best-on-test rate)")
    _save(fig, out, f"fig_curves_{_tag(key)}")


def write_figures(settings: dict[tuple[str, str, str], list[Setting]], curves: dict, out: Path) -> None:
    import matplotlib

    with matplotlib.rc_context(_rc()):
        for key, sets in settings.items():
            _fig_claims(key, sets, out)
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
