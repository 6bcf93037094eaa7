"""Figures over the smooth rate r: accuracy vs r, heatmaps noise rate x r, memorisation and
calibration vs r, and flipping at eps against LS at r = eps K/(K-1).

A rate family is a registry family whose methods' first parameter is the smooth rate r
(``gls``: CE, LS, NLS; ``bce``: BCE, BCE-LS, BCE-NLS); each r belongs to the family's
method whose range holds it. Non-linear axes say so; the NLS side of an axis is shaded red.
"""

from __future__ import annotations

from functools import partial

from ... import methods as registry
from ...core.selection import SELECTION_TITLES, SELECTIONS
from ...core.vocabulary import flip_to_smooth, fmt_rate
from ..results import Key, Results
from ..seedstats import Setting
from ..shape import Shape
from .registry import Figure, register
from .style import FIGURE_SELECTIONS, LEGEND_WIDTH, PANEL, empty_text, errorbars, new_figure, no_data, noise_legend, palette
from .style import title as key_title


def rate_families() -> dict[str, tuple[str, ...]]:
    """family -> its methods whose first parameter is the smooth rate r (registry order)."""
    out: dict[str, list[str]] = {}
    for m in registry.names():
        meth = registry.get(m)
        if meth.params and meth.params[0].name == "r" and not meth.transform:
            out.setdefault(meth.group, []).append(m)
    return {g: tuple(ms) for g, ms in out.items()}


FAMILY_TITLES = {"gls": "softmax (CE, LS, NLS)", "bce": "BCE (BCE, -LS, -NLS)"}


def has_rates(shape: Shape) -> bool:
    """Cells of a method whose first parameter is the smooth rate r (CE, LS, NLS, the BCE family)."""
    return any(m in fam for fam in rate_families().values() for m in shape.methods)


def has_gls(shape: Shape) -> bool:
    """Cells of CE, LS or NLS (the softmax family's smooth rates)."""
    return any(m in rate_families().get("gls", ()) for m in shape.methods)


def family_method(family: tuple[str, ...], r: float) -> str | None:
    """The method of a rate family whose range holds r (CE at 0, LS above, NLS below)."""
    return next((m for m in family if registry.get(m).params[0].contains(r)), None)


def _gls_points(s: Setting, metric: str, family: tuple[str, ...] | None = None
                ) -> tuple[list[float], list[float], list[float], list[float]]:
    """(rates, means, stds, all-diverged rates) of one family's cells of a setting, in %."""
    family = family if family is not None else rate_families()["gls"]
    xs, ys, es, dead = [], [], [], []
    for r in sorted(r for m in family for r in s.rates(m)):
        m = family_method(family, r)
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
    return sorted({r for s in sets for m in rate_families().get("gls", ()) for r in s.rates(m)})


def fig_acc_vs_rate(key: Key, sets: list[Setting], results: Results):
    from matplotlib.lines import Line2D

    fig, axes = new_figure(3 * PANEL[0] + LEGEND_WIDTH + 0.9, PANEL[1] + 1.7, 1, 3, right=LEGEND_WIDTH,
                            top=0.9, bottom=1.05)
    colors = palette(len(sets))
    families = {name: fam for name, fam in rate_families().items() if any(s.rates(m) for s in sets for m in fam)}
    rates = sorted({r for s in sets for fam in families.values() for m in fam for r in s.rates(m)})
    for ax, selection in zip(axes, FIGURE_SELECTIONS):
        metric = SELECTIONS[selection][0]
        any_data = False
        for color, s in zip(colors, sets):
            for name, fam in families.items():
                xs, ys, es, dead = _gls_points(s, metric, fam)
                if xs:
                    any_data = True
                    errorbars(ax, xs, ys, es, color, marker="o" if name == "gls" else "s",
                              ls="-" if name == "gls" else "--")
                if dead:
                    ax.plot(dead, [0.04] * len(dead), ls="none", marker="x", ms=5, color=color,
                            transform=ax.get_xaxis_transform())
        if rates:
            _rate_axis(ax, rates)
        if not any_data:
            no_data(ax, empty_text(results, key, selection))
        ax.set_title(SELECTION_TITLES[selection])
    axes[0].set_ylabel("test accuracy (%)")
    extra = [Line2D([], [], color="0.3", ls="none", marker="x", ms=5, label="all seeds diverged")]
    if len(families) > 1:
        extra = [Line2D([], [], color="0.3", ls="-" if name == "gls" else "--", marker="o" if name == "gls" else "s",
                        ms=4, label=FAMILY_TITLES.get(name, name)) for name in families] + extra
    noise_legend(fig, sets, colors, extra)
    fig.suptitle(f"{key_title(key)}: test accuracy vs smooth rate (mean ± std over seeds)")
    return fig


def fig_heatmap(key: Key, sets: list[Setting], results: Results):
    import numpy as np
    import seaborn as sns

    rates = _all_gls_rates(sets)
    width = min(12.0, max(5.5, 0.62 * len(rates) + 2.4))
    panel_h = 0.34 * len(sets) + 0.4
    fig, axes = new_figure(width, 3 * panel_h + 3.6, 3, 1, left=0.9, right=0.3, top=1.15,
                            bottom=1.0, hspace=0.7)
    for ax, selection in zip(axes, FIGURE_SELECTIONS):
        metric = SELECTIONS[selection][0]
        data = np.full((len(sets), len(rates)), np.nan)
        dead = []
        for i, s in enumerate(sets):
            for j, r in enumerate(rates):
                m = family_method(rate_families()["gls"], r)
                if (m, (r,)) not in s.cells:
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
            no_data(ax, empty_text(results, key, selection))
        ax.set_title(SELECTION_TITLES[selection])
        ax.set_ylabel("noise rate")
    axes[-1].set_xlabel("smooth rate r of CE (0), LS (> 0) and NLS (< 0);\none column per rate, not to scale")
    fig.suptitle(f"{key_title(key)}:\nmean test accuracy (%), noise rate × r\n(div: all seeds diverged)", fontsize=10)
    return fig


def fig_metric_vs_rate(key: Key, sets: list[Setting], results: Results, *, series: list[tuple[str, str]],
                       ylabel: str, title: str):
    """A cell metric other than test accuracy (``series``: its results.csv columns and legend
    labels) against the smooth rate r, one line per noise rate and series."""
    from matplotlib.lines import Line2D

    fig, axes = new_figure(PANEL[0] + LEGEND_WIDTH + 1.2, PANEL[1] + 1.7, right=LEGEND_WIDTH + 0.3, top=0.7,
                            bottom=1.05)
    ax = axes[0]
    colors = palette(len(sets))
    styles = ["-", "--", ":"]
    markers = ["o", "s", "^"]
    any_data = False
    for color, s in zip(colors, sets):
        for (metric, _), style, marker in zip(series, styles, markers):
            xs, ys, es, _dead = _gls_points(s, metric)
            if xs:
                any_data = True
                errorbars(ax, xs, ys, es, color, ls=style, marker=marker)
    rates = _all_gls_rates(sets)
    if rates:
        _rate_axis(ax, rates)
    if not any_data:
        no_data(ax)
    extra = []
    if len(series) > 1:
        extra = [Line2D([], [], color="0.3", ls=st, marker=mk, ms=4, lw=1.2, label=lab)
                 for (_, lab), st, mk in zip(series, styles, markers)]
    noise_legend(fig, sets, colors, extra)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{key_title(key)}: {title}")
    return fig


def fig_flip_vs_ls(key: Key, sets: list[Setting], results: Results):
    from matplotlib.lines import Line2D

    fig, axes = new_figure(3 * PANEL[0] + LEGEND_WIDTH + 0.9, PANEL[1] + 1.5, 1, 3, right=LEGEND_WIDTH, top=0.9)
    colors = palette(len(sets))
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
                errorbars(ax, xs, ys, es, color, marker="o")
            fx, fy, fe = [], [], []
            for eps in s.rates("flip"):
                st = s.stat("flip", eps, metric)
                if st.mean is not None:
                    fx.append(flip_to_smooth(eps, K))
                    fy.append(100 * st.mean)
                    fe.append(100 * st.std if st.std is not None else 0.0)
            if fx:
                any_data = True
                errorbars(ax, fx, fy, fe, color, marker="s", mfc="none", ls="none")
            xs_all += xs + fx
        if not any_data:
            no_data(ax, empty_text(results, key, selection))
        ax.set_title(SELECTION_TITLES[selection])
        ax.set_xlabel("r of LS  =  εK/(K−1) of flip (linear scale)")
    axes[0].set_ylabel("test accuracy (%)")
    extra = [Line2D([], [], color="0.3", marker="o", ms=4, lw=1.2, label="LS / CE at r"),
             Line2D([], [], color="0.3", marker="s", mfc="none", ms=4, ls="none", label="flip at ε")]
    noise_legend(fig, sets, colors, extra)
    fig.suptitle(f"{key_title(key)}: label flipping at ε vs LS at r = εK/(K−1) (equal in expectation)")
    return fig


register(Figure("acc_vs_rate", "Accuracy vs smooth rate",
                "Test accuracy against the smooth rate r (CE at r = 0, LS above, NLS below; the BCE family dashed "
                "where the study has it), one line per noise rate, mean ± std over seeds, one panel per selection. "
                "A cross marks a rate whose seeds all diverged.", fig_acc_vs_rate, wants=has_rates))
register(Figure("heatmap", "Accuracy heatmaps",
                "Mean test accuracy (%) over noise rate × smooth rate r, one panel per selection; \"div\" marks a "
                "rate whose seeds all diverged.", fig_heatmap, wants=has_gls))
register(Figure("memorisation", "Memorisation",
                "Memorisation of the noisy labels: final training accuracy against the clean and against the noisy "
                "training labels by smooth rate r, one line per noise rate. A model that fits the noisy labels loses "
                "clean training accuracy.",
                partial(fig_metric_vs_rate, series=[("clean_train_acc", "vs clean labels"),
                                                    ("noisy_train_acc", "vs noisy labels")],
                        ylabel="final training accuracy (%)", title="memorisation"), wants=has_gls))
register(Figure("calibration", "Calibration",
                "Calibration at the last epoch: the expected calibration error (15 bins) by smooth rate r, one line "
                "per noise rate (LS pushes predictions towards uniform, NLS away from it).",
                partial(fig_metric_vs_rate, series=[("ece", "ECE")],
                        ylabel="ECE × 100 (15 bins, final epoch; BCE family: its own sigmoids)", title="calibration"),
                wants=has_gls))
register(Figure("flip_vs_ls", "Flipping vs LS",
                "Label flipping at rate ε (open squares, drawn at r = εK/(K−1)) against LS and CE at r (circles): "
                "equal in expectation; the figure shows whether training agrees. One panel per selection.",
                fig_flip_vs_ls, needs=frozenset({"flip", "ls"})))
