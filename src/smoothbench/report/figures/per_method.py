"""Figures per method, per (dataset, noise kind, variant): the claims at a glance (each
smoothing method's gain over its baseline with its 95% interval, per noise rate) and the
leaderboard (every method at its best parameters under the honest selection, with its
interval). Every method is drawn in the style the registry gives it (``style.method_style``).
"""

from __future__ import annotations

from ... import methods as registry
from ...core.selection import SELECTION_TITLES, SELECTIONS
from ..results import Key, Results
from ..seedstats import Setting, gain, t_interval, table_row
from ..tables import SUBJECT, method_label
from .registry import Figure, register
from .style import FIGURE_SELECTIONS, LEGEND_WIDTH, PANEL, method_style, new_figure, no_data, title


def _gain_methods(sets: list[Setting]) -> list[str]:
    """The smoothing methods with a baseline and cells here (the claims' methods), registry order."""
    return [m for m in registry.names() if registry.get(m).group in SUBJECT and registry.get(m).baseline
            and any(s.choices(m) for s in sets)]


def fig_claims(key: Key, sets: list[Setting], results: Results):
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
    return fig


def fig_leaderboard(key: Key, sets: list[Setting], results: Results):
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
        ax.set_yticks(range(len(methods)), [method_label(m) + (f" ({registry.noise_note(m)})" if registry.noise_note(m) else "")
                                            for m in methods] if j == 0 else [])
        ax.set_ylim(len(methods) - 0.5, -0.5)
        ax.set_title(f"noise {s.noise_rate}")
        ax.set_xlabel("test accuracy (%)")
        if not any_data:
            no_data(ax)
    fig.suptitle(f"{title(key)}: every method at its best parameters\nhonest selection: mean and 95% interval over "
                 "seeds (filled); best-on-test (open)", fontsize=9)
    return fig


register(Figure("claims", "Claims: gains over the baseline",
                "Each smoothing method at its best rate minus its baseline (LS, NLS, flip − CE; BCE-LS, BCE-NLS − "
                "BCE) per noise rate: the mean paired difference over seeds with its 95% interval, one panel per "
                "selection (honest, final epoch, best-on-test). Above 0: the method helps.", fig_claims))
register(Figure("leaderboard", "Leaderboard: every method",
                "Every method at its best parameters, one panel per noise rate: the mean test accuracy over seeds "
                "with its 95% interval under the honest selection (filled), and the best-on-test figure (open).",
                fig_leaderboard))
