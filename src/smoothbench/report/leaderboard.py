"""The leaderboard: per setting, every method at its best parameters, ranked under the
honest selection, with its 95% interval over seeds and the best-on-test number beside.

A row is one (dataset, noise kind, noise rate) and method: its parameters chosen by the
mean honest accuracy (the epoch best on the held-out NOISY labels) among the method's
settings, and of the protocol variants when a study has several (as the paper reports
the better of direct training and warm-up); the mean and the 95% Student-t interval of
that accuracy over seeds (the seed is the unit of replication); and, beside it, the same
method's best-on-test figure (its parameters chosen by that selection, as the reference
code does) and its final-epoch figure. Methods told the noise's true transition matrix or
rate are marked "oracle T" or "oracle rate" (no real method knows them; the ``oracle``
column), those that estimate them "estimated T" or "estimated rate".
"""

from __future__ import annotations

from .. import methods as registry
from .collect import csv_text
from ..core.selection import metric as selection_metric
from .seedstats import Entry, Setting, better_row, by_pair, t_interval

COLUMNS = ["dataset", "noise_kind", "noise_rate", "rank", "method", "label", "params", "oracle", "variant",
           "honest_mean_pct", "honest_low_pct", "honest_high_pct", "n_seeds", "n_diverged",
           "best_on_test_mean_pct", "best_on_test_params", "final_mean_pct"]


def _interval(sets: list[Setting], e: Entry, metric: str) -> tuple | None:
    s = next(x for x in sets if x.variant == e.variant)
    values = [100 * v for _, v in sorted(s.seed_values(e.method, e.values, metric).items())]
    return t_interval(values)


def rows(settings: dict[tuple[str, str, str], list[Setting]]) -> list[dict]:
    """The leaderboard rows of every (dataset, noise kind, noise rate), ranked by honest mean."""
    out = []
    for (ds, kind), variants in by_pair(settings).items():
        rates = list(dict.fromkeys(s.noise_rate for sets in variants.values() for s in sets))
        for rate in rates:
            sets = [s for v in variants.values() for s in v if s.noise_rate == rate]
            honest, best, final = (better_row(sets, sel) for sel in ("selected", "best", "final"))
            ranked = sorted((e for e in honest.values() if e is not None),
                            key=lambda e: (e.stat is None, -(e.stat.mean if e.stat else 0.0), registry.order(e.method)))
            for rank, e in enumerate(ranked, start=1):
                m = registry.get(e.method)
                ci = _interval(sets, e, selection_metric("selected")) if e.stat is not None else None
                b, f = best.get(e.method), final.get(e.method)
                out.append({
                    "dataset": ds, "noise_kind": kind, "noise_rate": rate, "rank": rank if e.stat else None,
                    "method": e.method, "label": m.label,
                    "params": None if e.values is None else m.params_text(e.values), "oracle": int(m.oracle),
                    "variant": e.variant,
                    "honest_mean_pct": None if e.stat is None else round(100 * e.stat.mean, 4),
                    "honest_low_pct": None if ci is None else round(ci[1], 4),
                    "honest_high_pct": None if ci is None else round(ci[2], 4),
                    "n_seeds": 0 if e.stat is None else e.stat.n_ok, "n_diverged": e.n_diverged,
                    "best_on_test_mean_pct": None if b is None or b.stat is None else round(100 * b.stat.mean, 4),
                    "best_on_test_params": None if b is None or b.values is None else m.params_text(b.values),
                    "final_mean_pct": None if f is None or f.stat is None else round(100 * f.stat.mean, 4),
                })
    return out


def csv(board: list[dict]) -> str:
    return csv_text(COLUMNS, ([r[c] for c in COLUMNS] for r in board))


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def md(board: list[dict]) -> list[str]:
    """The leaderboard as Markdown: one table per (dataset, noise kind, noise rate)."""
    if not board:
        return []
    lines = ["## Leaderboard: every method at its best parameters", "",
             "Ranked by the honest selection (the epoch best on the held-out noisy labels; parameters and protocol "
             "variant chosen by its mean): mean test accuracy (%) and its 95% interval over seeds (Student t, the "
             "seed as the unit of replication). Beside it: the method's best-on-test figure (parameters chosen by "
             "clean test accuracy, the reference code's selection; optimistic) and its final epoch. \"oracle T\", "
             "\"oracle rate\": told the noise's true transition matrix or rate, which no real method knows; "
             "\"estimated T\", \"estimated rate\": estimated from the CE warm-up model.", ""]
    keys = list(dict.fromkeys((r["dataset"], r["noise_kind"], r["noise_rate"]) for r in board))
    for ds, kind, rate in keys:
        lines += [f"### {ds} / {kind} {rate}", "",
                  "| rank | method | parameters | honest | 95% interval | n | best-on-test | final |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in (x for x in board if (x["dataset"], x["noise_kind"], x["noise_rate"]) == (ds, kind, rate)):
            m = registry.get(r["method"])
            label = m.label + (f" ({m.noise})" if m.noise else "")
            params = m.label_params(m.parse_params_text(r["params"])) if r["params"] is not None else ""
            params += (f"; {r['variant']}" if r["variant"] and len({x["variant"] for x in board}) > 1 else "")
            ci = "—" if r["honest_low_pct"] is None else f"[{r['honest_low_pct']:.2f}, {r['honest_high_pct']:.2f}]"
            div = f" ({r['n_diverged']} diverged)" if r["n_diverged"] else ""
            lines.append(f"| {r['rank'] or '—'} | {label} | {params or '—'} | {_pct(r['honest_mean_pct'])} | {ci} | "
                         f"{r['n_seeds']}{div} | {_pct(r['best_on_test_mean_pct'])} | {_pct(r['final_mean_pct'])} |")
        lines.append("")
    return lines
