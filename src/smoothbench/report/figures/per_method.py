"""Figures per method, per (dataset, noise kind, variant): the claims at a glance (each
smoothing method's gain over its baseline with its 95% interval, per noise rate), the
leaderboard (every method at its chosen parameters under the honest selection, with its
interval) and the protocol (where each method's honest epoch falls in its phase). Every
method is drawn in the style the registry gives it (``style.method_style``); the intervals are
those of every source (``inference``: seeds, test samples, the choices).
"""

from __future__ import annotations

from ... import methods as registry
from ...core.selection import SELECTION_TITLES
from ..results import Key, Results
from ..seedstats import Setting, choose, table_row
from ..shape import Shape
from ..tables import SUBJECT, method_label
from .registry import Figure, register
from .style import FIGURE_SELECTIONS, LEGEND_WIDTH, PANEL, method_style, new_figure, no_data, title


def _gain_methods(sets: list[Setting]) -> list[str]:
    """The smoothing methods with a baseline and cells here (the claims' methods), registry order."""
    return [m for m in registry.names() if registry.get(m).group in SUBJECT and registry.get(m).baseline
            and any(s.choices(m) for s in sets)]


def has_gains(shape: Shape) -> bool:
    """Two seeds (an interval) and a smoothing method with its baseline."""
    return shape.seeds >= 2 and any(registry.get(m).group in SUBJECT and registry.get(m).baseline in shape.methods
                                    for m in shape.methods)


def fig_claims(key: Key, sets: list[Setting], results: Results):
    """The claims at a glance: per noise rate, each smoothing method at its best rate minus its
    baseline (LS, NLS, flip - CE; BCE-LS, BCE-NLS - BCE), mean paired difference over seeds with
    its 95% interval of every source; one panel per selection."""
    from matplotlib.lines import Line2D

    methods = _gain_methods(sets)
    n = len(sets)
    fig, axes = new_figure(3 * PANEL[0] + LEGEND_WIDTH + 0.9, PANEL[1] + 1.5, 1, 3, right=LEGEND_WIDTH, top=0.9)
    for ax, selection in zip(axes, FIGURE_SELECTIONS):
        any_data = False
        for j, m in enumerate(methods):
            xs, ys, lo, hi = [], [], [], []
            for i, s in enumerate(sets):
                base = registry.get(m).baseline
                est = None if results.analysis.unavailable(s.dataset, selection) else results.analysis.estimate(
                    selection, lambda view, s=s, m=m, base=base: view.best(s, m) - view.best(s, base), s.dataset)
                if est is None or est.low is None:
                    continue
                xs.append(i + (j - (len(methods) - 1) / 2) * 0.08)       # side by side, no overlap
                ys.append(est.mean)
                lo.append(est.mean - est.low)
                hi.append(est.high - est.mean)
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
            no_data(ax, results.analysis.unavailable(sets[0].dataset, selection) and "no held-out split"
                    or "no paired seeds")
        ax.set_title(SELECTION_TITLES[selection])
    axes[0].set_ylabel("gain over the baseline (points)\nmean over seeds, 95% interval")
    handles = [Line2D([], [], color=method_style(m)[0], ls=method_style(m)[1], marker=method_style(m)[2], ms=4,
                      lw=1.2, label=f"{method_label(m)} − {method_label(registry.get(m).baseline)}") for m in methods]
    fig.legend(handles=handles, loc="center right", frameon=False, bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"{title(key)}: each method at its best rate against its baseline (above 0: it helps)")
    return fig


def fig_leaderboard(key: Key, sets: list[Setting], results: Results):
    """Every method at its chosen parameters (honest selection; best-on-test without a held-out
    split), one panel per noise rate: the mean test accuracy over seeds with its 95% interval of
    every source, clipped to [0, 100] (filled marker), and the best-on-test figure (open marker)."""
    n = max(len(sets), 1)
    methods = [m for m in registry.names() if any(s.choices(m) for s in sets)]
    height = 0.22 * len(methods) + 1.9
    fig, axes = new_figure(max(2.6 * n + 2.4, 7.7), height, 1, n, left=1.9, right=0.4, top=0.8, bottom=0.85,
                           wspace=0.15)
    sel = results.analysis.ranked_by(key[0])
    for j, (ax, s) in enumerate(zip(axes, sets)):
        rows_h, rows_b = table_row(s, sel), table_row(s, "best")
        any_data = False
        for i, m in enumerate(methods):
            color, _, marker = method_style(m)
            e = rows_h.get(m)
            if e is not None and e.stat is not None:
                est = results.analysis.estimate(sel, lambda view, m=m, s=s: view.best(s, m), s.dataset)
                est = est.clipped() if est is not None else None
                lo, hi = (est.low, est.high) if est is not None and est.low is not None else (
                    100 * e.stat.mean, 100 * e.stat.mean)
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
    how = "honest selection" if sel == "selected" else "best-on-test selection (no held-out split)"
    fig.suptitle(f"{title(key)}: every method at its chosen parameters\n{how}: mean and 95% interval of every "
                 "source (filled); best-on-test (open)", fontsize=9)
    return fig


def fig_protocol(key: Key, sets: list[Setting], results: Results):
    """Where the honest epoch falls: per noise rate, each method at its honest parameters as a
    bar of its seeds' honest epochs at the first, middle and last epoch of its own phase, with
    the mean final-minus-honest test accuracy written beside it; flagged bars (most seeds at the
    first epoch) marked."""
    from matplotlib.patches import Patch

    n = max(len(sets), 1)
    methods = [m for m in registry.names() if any(s.choices(m) for s in sets)]
    fig, axes = new_figure(max(2.6 * n + 2.8, 7.4), 0.22 * len(methods) + 2.0, 1, n, left=1.9, right=0.55, top=0.85,
                           bottom=0.95, wspace=0.4)
    colors = {"first": "tab:red", "middle": "0.7", "last": "tab:blue"}
    for j, (ax, s) in enumerate(zip(axes, sets)):
        for i, m in enumerate(methods):
            e = choose(s, m, "selected")
            u = None if e is None or e.values is None else results.phase_use.get(
                (s.dataset, s.kind, s.noise_rate, s.variant, m, e.values))
            if u is None or not u.n:
                continue
            left = 0.0
            for pos in ("first", "middle", "last"):
                share = getattr(u, pos) / u.n
                ax.barh(i, share, left=left, color=colors[pos], height=0.7, lw=0)
                left += share
            text = "" if u.final_minus_honest is None else f"{u.final_minus_honest:+.1f}"
            ax.text(1.02, i, text + (" ⚑" if u.flagged else ""), va="center", fontsize=6,
                    transform=ax.get_yaxis_transform())
        ax.set_yticks(range(len(methods)), [method_label(m) for m in methods] if j == 0 else [])
        ax.set_ylim(len(methods) - 0.5, -0.5)
        ax.set_xlim(0, 1)
        ax.set_title(f"noise {s.noise_rate}")
        ax.set_xlabel("share of seeds")
        ax.grid(False)
    fig.legend(handles=[Patch(color=c, label=f"{p} epoch of the phase") for p, c in colors.items()],
               loc="lower center", ncol=3, frameon=False, fontsize=7)
    fig.suptitle(f"{title(key)}: where the honest epoch falls in each method's own phase\n(beside each bar: final − "
                 "honest test accuracy, points; ⚑ most seeds at the first epoch)", fontsize=9)
    return fig


register(Figure("claims", "Claims: gains over the baseline",
                "Each smoothing method at its chosen rate minus its baseline (LS, NLS, flip − CE; BCE-LS, BCE-NLS − "
                "BCE) per noise rate: the mean paired difference over seeds with its 95% interval of every source, "
                "one panel per selection (honest, final epoch, best-on-test). Above 0: the method helps.", fig_claims,
                wants=has_gains))
register(Figure("leaderboard", "Leaderboard: every method",
                "Every method at its chosen parameters, one panel per noise rate: the mean test accuracy over seeds "
                "with its 95% interval of every source under the honest selection (filled), and the best-on-test "
                "figure (open).", fig_leaderboard))
register(Figure("protocol", "Protocol: the honest epoch in the phase",
                "Per noise rate, each method at its honest parameters: the share of seeds whose honest epoch is the "
                "first (red), a middle (grey) or the last (blue) epoch of the cell's own phase, and final minus "
                "honest test accuracy beside it. ⚑: most seeds at the first epoch, so the phase's learning rate or "
                "length decides the result.", fig_protocol, wants=lambda shape: shape.held_out))
