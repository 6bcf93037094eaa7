"""Seaborn figures of the results, PNG and SVG, byte-reproducible.

Per dataset x noise kind x protocol variant: the claims figure first (each smoothing
method's gain over its baseline with its 95% interval, per noise rate), the leaderboard
(every method at its best parameters under the honest selection, with its interval), then
accuracy vs smooth rate, heatmap noise rate x r, memorisation (clean vs noisy training
accuracy), calibration (ECE), flipping at eps vs LS at r = eps K/(K-1) (when the study has
both) and training curves. Every method is drawn in the style the registry gives it
(``plotting.method_style``). Print quality: 200 dpi, fonts of 8-10 pt at the saved size,
labels outside the data, non-linear axes said so.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from . import rates as ratefigures
from ... import methods as registry
from ...core.vocabulary import KEY_COLUMNS
from .style import FIGURE_FORMATS, FIGURE_SELECTIONS, FOLDERS, LEGEND_WIDTH, PANEL, method_style, new_figure, no_data, rc, save, tag, title
from ...core.selection import SELECTION_TITLES, SELECTIONS
from ..seedstats import Setting, gain, t_interval, table_row
from ..tables import SUBJECT, method_label

FIGURE_TITLES = {
    "claims": "Claims: gains over the baseline",
    "leaderboard": "Leaderboard: every method",
    "acc_vs_rate": "Accuracy vs smooth rate",
    "heatmap": "Accuracy heatmaps",
    "memorisation": "Memorisation",
    "calibration": "Calibration",
    "flip_vs_ls": "Flipping vs LS",
    "curves": "Training curves",
}
FIGURES = tuple(FIGURE_TITLES)
NEEDS = {"flip_vs_ls": {"flip", "ls"}}  # a figure drawn only when the study has these methods


def figures_for(methods: set[str] | None = None) -> tuple[str, ...]:
    """The figures of a study with these methods (None: all)."""
    return tuple(f for f in FIGURES if methods is None or NEEDS.get(f, set()) <= set(methods))


def figure_files(key: tuple[str, str, str], methods: set[str] | None = None) -> list[str]:
    """The figure files of one (dataset, noise kind, variant), relative to the report folder."""
    return [f"{FOLDERS[ext]}/fig_{fig}_{tag(key)}.{ext}" for fig in figures_for(methods) for ext in FIGURE_FORMATS]


def _gain_methods(sets: list[Setting]) -> list[str]:
    """The smoothing methods with a baseline and cells here (the claims' methods), registry order."""
    return [m for m in registry.names() if registry.get(m).group in SUBJECT and registry.get(m).baseline
            and any(s.choices(m) for s in sets)]


def fig_claims(key: tuple[str, str, str], sets: list[Setting], out: Path) -> None:
    """The claims at a glance: per noise rate, each smoothing method at its best rate minus its
    baseline (LS, NLS, flip - CE; BCE-LS, BCE-NLS - BCE), mean paired difference over seeds with
    its 95% t interval; one panel per selection."""
    from matplotlib.lines import Line2D

    methods = _gain_methods(sets)
    n = len(sets)
    fig, axes = new_figure(3 * PANEL[0] + LEGEND_WIDTH + 0.9, PANEL[1] + 1.5, 1, 3, right=LEGEND_WIDTH, top=0.9)
    for ax, selection in zip(axes, FIGURE_SELECTIONS):
        any_data = False
        for j, m in enumerate(methods):
            xs, ys, lo, hi = [], [], [], []
            for i, s in enumerate(sets):
                ci = t_interval(list(gain(s, m, registry.get(m).baseline, selection).values()))
                if ci is None:
                    continue
                xs.append(i + (j - (len(methods) - 1) / 2) * 0.08)       # side by side, no overlap
                ys.append(ci[0])
                lo.append(ci[0] - ci[1])
                hi.append(ci[2] - ci[0])
            if xs:
                any_data = True
                color, ls, marker = method_style(m)
                ax.errorbar(xs, ys, yerr=[lo, hi], color=color, ls=ls, marker=marker, ms=4, lw=1.2,
                            capsize=2.5, elinewidth=0.9)
        ax.axhline(0, color="0.3", lw=0.8)
        ax.set_xticks(range(n), [s.noise_rate for s in sets])
        ax.set_xlim(-0.5, n - 0.5)
        ax.set_xlabel("noise rate")
        if not any_data:
            no_data(ax, "no paired seeds")
        ax.set_title(SELECTION_TITLES[selection])
    axes[0].set_ylabel("gain over the baseline (points)\nmean over seeds, 95% interval")
    handles = [Line2D([], [], color=method_style(m)[0], ls=method_style(m)[1], marker=method_style(m)[2], ms=4,
                      lw=1.2, label=f"{method_label(m)} − {method_label(registry.get(m).baseline)}") for m in methods]
    fig.legend(handles=handles, loc="center right", frameon=False, bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"{title(key)}: each method at its best rate against its baseline (above 0: it helps)")
    save(fig, out, f"fig_claims_{tag(key)}")


def fig_leaderboard(key: tuple[str, str, str], sets: list[Setting], out: Path) -> None:
    """Every method at its best parameters (honest selection), one panel per noise rate: the
    mean test accuracy over seeds with its 95% interval (filled marker) and the best-on-test
    figure (open marker)."""
    n = max(len(sets), 1)
    methods = [m for m in registry.names() if any(s.choices(m) for s in sets)]
    height = 0.22 * len(methods) + 1.9
    fig, axes = new_figure(max(2.6 * n + 2.2, 7.5), height, 1, n, left=1.9, right=0.2, top=0.8, bottom=0.85,
                           wspace=0.15)
    honest, best = SELECTIONS["selected"][0], SELECTIONS["best"][0]
    for j, (ax, s) in enumerate(zip(axes, sets)):
        rows_h, rows_b = table_row(s, "selected"), table_row(s, "best")
        any_data = False
        for i, m in enumerate(methods):
            color, _, marker = method_style(m)
            e = rows_h.get(m)
            if e is not None and e.stat is not None:
                ci = t_interval([100 * v for _, v in sorted(s.seed_values(m, e.values, honest).items())])
                lo, hi = (ci[1], ci[2]) if ci else (100 * e.stat.mean, 100 * e.stat.mean)
                ax.errorbar([100 * e.stat.mean], [i], xerr=[[100 * e.stat.mean - lo], [hi - 100 * e.stat.mean]],
                            color=color, marker=marker, ms=4, lw=0, elinewidth=1.0, capsize=2)
                any_data = True
            b = rows_b.get(m)
            if b is not None and b.stat is not None:
                ax.plot([100 * b.stat.mean], [i], ls="none", marker=marker, ms=5, mfc="none", color=color)
        ax.set_yticks(range(len(methods)), [method_label(m) + (" (oracle T)" if registry.get(m).oracle else "")
                                            for m in methods] if j == 0 else [])
        ax.set_ylim(len(methods) - 0.5, -0.5)
        ax.set_title(f"noise {s.noise_rate}")
        ax.set_xlabel("test accuracy (%)")
        if not any_data:
            no_data(ax)
    fig.suptitle(f"{title(key)}: every method at its best parameters\nhonest selection: mean and 95% interval over "
                 "seeds (filled); best-on-test (open)", fontsize=9)
    save(fig, out, f"fig_leaderboard_{tag(key)}")


def fig_curves(key: tuple[str, str, str], sets: list[Setting], curves: dict, out: Path) -> None:
    from matplotlib.ticker import MaxNLocator

    n = max(len(sets), 1)
    ncols = min(n, 3)
    nrows = (n + ncols - 1) // ncols
    fig, axes = new_figure(3.3 * ncols + 0.9 + LEGEND_WIDTH, 2.8 * nrows + 1.2, nrows, ncols, top=0.8, wspace=0.3,
                           hspace=0.55, right=LEGEND_WIDTH + 0.2)
    drawn: dict[str, object] = {}
    for ax in axes[len(sets):]:
        ax.set_axis_off()
    if not sets:
        no_data(axes[0])
    for i, (ax, s) in enumerate(zip(axes, sets)):
        entries = table_row(s, "best")
        any_data = False
        warm_end = 0
        for m in s.methods():
            e = entries[m]
            if e is None or e.values is None:
                continue
            per_epoch: dict[int, list[float]] = {}
            for cell in s.cells[(m, e.values)]:
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
            color, style, _ = method_style(m)
            (line,) = ax.plot(ep, [100 * statistics.fmean(per_epoch[k]) for k in ep], color=color, ls=style, lw=1.3)
            drawn.setdefault(m, line)
        if warm_end:
            ax.axvspan(0.5, warm_end + 0.5, color="0.8", alpha=0.5, lw=0)
        if not any_data:
            no_data(ax)
        ax.set_title(f"noise {s.noise_rate}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if i // ncols == nrows - 1:
            ax.set_xlabel("epoch (grey: warm-up)")
        if i % ncols == 0:
            ax.set_ylabel("test accuracy (%)")
    ordered = [m for m in registry.names() if m in drawn]
    fig.legend([drawn[m] for m in ordered], [method_label(m) + (" (oracle T)" if registry.get(m).oracle else "")
                                             for m in ordered], loc="center right", frameon=False,
               bbox_to_anchor=(1.0, 0.5), fontsize=7)
    fig.suptitle(f"{title(key)}: test accuracy per epoch, mean over non-diverged seeds\n(each method at its "
                 "best-on-test parameters, which may differ per noise rate)")
    save(fig, out, f"fig_curves_{tag(key)}")


def write_figures(settings: dict[tuple[str, str, str], list[Setting]], curves: dict, out: Path) -> None:
    import matplotlib

    with matplotlib.rc_context(rc()):
        for key, sets in settings.items():
            figs = figures_for({m for s in sets for m in s.methods()})
            fig_claims(key, sets, out)
            fig_leaderboard(key, sets, out)
            ratefigures.fig_acc_vs_rate(key, sets, out)
            ratefigures.fig_heatmap(key, sets, out)
            ratefigures.fig_metric_vs_rate(key, sets, out, "fig_memorisation",
                                           [("clean_train_acc", "vs clean labels"),
                                            ("noisy_train_acc", "vs noisy labels")],
                                           "final training accuracy (%)", "memorisation")
            ratefigures.fig_metric_vs_rate(key, sets, out, "fig_calibration", [("ece", "ECE")],
                                           "ECE × 100 (15 bins, final epoch; BCE family: its own sigmoids)",
                                           "calibration")
            if "flip_vs_ls" in figs:
                ratefigures.fig_flip_vs_ls(key, sets, out)
            fig_curves(key, sets, curves, out)
