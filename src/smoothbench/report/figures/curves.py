"""Figures over epochs: the training curves of every method, per (dataset, noise kind, variant)."""

from __future__ import annotations

import math
import statistics

from ... import methods as registry
from ...core.vocabulary import KEY_COLUMNS
from ..results import Key, Results
from ..seedstats import Setting, table_row
from ..tables import method_label
from .registry import Figure, register
from .style import LEGEND_WIDTH, method_style, new_figure, no_data, title


def fig_curves(key: Key, sets: list[Setting], results: Results):
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
    sel = results.analysis.ranked_by(key[0])
    for i, (ax, s) in enumerate(zip(axes, sets)):
        entries = table_row(s, sel)
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
                for rec in results.curves.get(tuple(cell[k] for k in KEY_COLUMNS), []):
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
    fig.legend([drawn[m] for m in ordered], [method_label(m) + (f" ({registry.noise_note(m)})" if registry.noise_note(m) else "")
                                             for m in ordered], loc="center right", frameon=False,
               bbox_to_anchor=(1.0, 0.5), fontsize=7)
    how = "honest" if sel == "selected" else "best-on-test"
    fig.suptitle(f"{title(key)}: test accuracy per epoch, mean over non-diverged seeds\n(each method at its "
                 f"{how} parameters, which may differ per noise rate)")
    return fig


register(Figure("curves", "Training curves",
                "Test accuracy per epoch, mean over the non-diverged seeds, of every method at its honest "
                "parameters (best-on-test without a held-out split), one panel per noise rate; the shared warm-up "
                "shaded grey.", fig_curves))
