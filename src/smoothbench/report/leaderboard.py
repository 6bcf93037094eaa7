"""The leaderboard: per setting, every method at its chosen parameters and variant, ranked and
tiered by paired comparison with the setting's leader.

A row is one (dataset, noise kind, noise rate) and method. Under the honest selection (or,
for a dataset without a held-out split, the reference's best-on-test one, said in the
``ranked_by`` column, the title and the findings):

- its parameters and protocol variant are the choices table's; its **rank** is the choices
  table's (by the mean held-out NOISY accuracy of the chosen cells, ``rank_score_pct``: no
  test label orders the board); the **leader** is rank 1;
- its test accuracy: mean over seeds and 95% interval of every source (seeds and test samples,
  the choices made again in each bootstrap replicate), clipped to [0, 100];
- **against the leader**: the seed-paired difference in test accuracy (method minus leader),
  its interval and p-value, Holm-adjusted within the setting (one family per setting); a
  method is in the leader's **tier** (1) unless it is significantly below it (tier 2); one
  significantly above it is in tier 1 and marked "above" (the held-out split and the test set
  disagree);
- beside it, exploratory: the method's best-on-test figure (parameters and variant chosen by
  clean test accuracy, the reference code's selection) and its **optimism gap** (best-on-test
  minus honest, seed-paired, with its interval: what choosing on the test set adds), and its
  final-epoch figure.

Methods told the noise's true transition matrix or rate are marked "oracle T" or "oracle rate" (no real
method knows them; the ``oracle`` column), those that estimate them "estimated T" or "estimated rate".
"""

from __future__ import annotations

import numpy as np

from .. import methods as registry
from . import inference
from .collect import csv_text
from .seedstats import Entry, better_row, by_pair

COLUMNS = ["dataset", "noise_kind", "noise_rate", "ranked_by", "rank", "tier", "vs_leader", "method", "label",
           "params", "edge", "oracle", "variant", "rank_score_pct", "test_mean_pct", "test_low_pct", "test_high_pct",
           "n_seeds", "n_diverged", "diff_vs_leader_pct", "diff_low_pct", "diff_high_pct", "p_vs_leader",
           "p_adj_vs_leader", "best_on_test_mean_pct", "best_on_test_params", "optimism_gap_pct", "optimism_low_pct",
           "optimism_high_pct", "final_mean_pct"]


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def rows(analysis) -> list[dict]:
    """The leaderboard rows of every (dataset, noise kind, noise rate), in rank order."""
    out = []
    alpha = analysis.alpha
    for (ds, kind), variants in by_pair(analysis.settings).items():
        rates = list(dict.fromkeys(s.noise_rate for sets in variants.values() for s in sets))
        sel = analysis.ranked_by(ds)
        for rate in rates:
            sets = [s for v in variants.values() for s in v if s.noise_rate == rate]
            entries = better_row(sets, sel)
            best, final = better_row(sets, "best"), better_row(sets, "final")
            ranked = sorted((e for e in entries.values() if e is not None),
                            key=lambda e: (e.choice is None or e.choice.rank is None,
                                           e.choice.rank if e.choice is not None and e.choice.rank else 0,
                                           registry.order(e.method)))
            leader = ranked[0] if ranked and ranked[0].choice is not None and ranked[0].choice.rank else None

            def arm(method: str):
                return lambda view: view.best_variant(sets, method)

            level = {e.method: analysis.estimate(sel, arm(e.method), ds) for e in ranked}
            diffs: dict[str, inference.Estimate | None] = {}
            for e in ranked:
                if leader is not None and e is not leader and e.choice is not None and e.choice.rank:
                    diffs[e.method] = analysis.estimate(
                        sel, lambda view, m=e.method: view.best_variant(sets, m) - view.best_variant(sets, leader.method),
                        ds)
            members = [m for m, d in diffs.items() if d is not None and d.p is not None]
            adjusted = dict(zip(members, inference.holm([diffs[m].p for m in members], alpha)))
            for e in ranked:
                out.append(_row(analysis, ds, kind, rate, sel, e, leader, level[e.method], diffs.get(e.method),
                                adjusted.get(e.method), best.get(e.method), final.get(e.method), sets))
    return out


def _row(analysis, ds, kind, rate, sel, e: Entry, leader, level, diff, p_adj, b, f, sets) -> dict:
    m = registry.get(e.method)
    alpha = analysis.alpha
    usable = e.choice is not None and e.choice.rank is not None
    if not usable:
        tier, vs = None, ""
    elif e is leader:
        tier, vs = 1, "leader"
    elif diff is None or p_adj is None or p_adj >= alpha:
        tier, vs = 1, "not distinguishable"
    else:
        tier, vs = (2, "below") if diff.mean < 0 else (1, "above")
    level = level.clipped() if level is not None else None
    gap = None
    if sel == "selected" and usable and b is not None and b.stat is not None:
        gap = analysis.estimate("selected", lambda view: _gap(analysis, view, sets, e.method), ds)
    return {
        "dataset": ds, "noise_kind": kind, "noise_rate": rate, "ranked_by": sel,
        "rank": e.choice.rank if usable else None, "tier": tier, "vs_leader": vs,
        "method": e.method, "label": m.label, "params": None if e.values is None else m.params_text(e.values),
        "edge": e.edge, "oracle": int(m.oracle), "variant": e.variant,
        "rank_score_pct": _r(100 * e.choice.score_mean) if usable else None,
        "test_mean_pct": None if e.stat is None else _r(100 * e.stat.mean),
        "test_low_pct": None if level is None else _r(level.low),
        "test_high_pct": None if level is None else _r(level.high),
        "n_seeds": 0 if e.stat is None else e.stat.n_ok, "n_diverged": e.n_diverged,
        "diff_vs_leader_pct": None if diff is None else _r(diff.mean),
        "diff_low_pct": None if diff is None else _r(diff.low), "diff_high_pct": None if diff is None else _r(diff.high),
        "p_vs_leader": None if diff is None else _r(diff.p), "p_adj_vs_leader": _r(p_adj),
        "best_on_test_mean_pct": None if b is None or b.stat is None else _r(100 * b.stat.mean),
        "best_on_test_params": None if b is None or b.values is None else m.params_text(b.values),
        "optimism_gap_pct": None if gap is None else _r(gap.mean),
        "optimism_low_pct": None if gap is None else _r(gap.low),
        "optimism_high_pct": None if gap is None else _r(gap.high),
        "final_mean_pct": None if f is None or f.stat is None else _r(100 * f.stat.mean),
    }


def _gap(analysis, honest_view, sets, method: str) -> np.ndarray:
    """(R, S) best-on-test minus honest, per seed: the method at its test-chosen variant and
    parameters (best-on-test epochs) minus at its honest ones (honest epochs), the same
    replicates (seeds and test samples) for both."""
    best_view = analysis.view("best", replicates=not honest_view.observed, seeds=honest_view.seeds,
                              test=honest_view.test)
    return best_view.best_variant(sets, method) - honest_view.best_variant(sets, method)


def csv(board: list[dict]) -> str:
    return csv_text(COLUMNS, ([r[c] for c in COLUMNS] for r in board))


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def _interval(low, high, signed: bool = False) -> str:
    if low is None:
        return "—"
    return f"[{low:+.2f}, {high:+.2f}]" if signed else f"[{low:.2f}, {high:.2f}]"


def params_label(r: dict, show_variant: bool) -> str:
    """A row's parameters as the board shows them, the grid's edge marked."""
    m = registry.get(r["method"])
    text = m.label_params(m.parse_params_text(r["params"])) if r["params"] is not None else ""
    if r["edge"]:
        text += " (edge)"
    return text + (f"; {r['variant']}" if r["variant"] and show_variant else "")


def md(board: list[dict]) -> list[str]:
    """The leaderboard as Markdown: one table per (dataset, noise kind, noise rate)."""
    if not board:
        return []
    by = {r["ranked_by"] for r in board}
    lines = ["## Leaderboard: every method at its chosen parameters, tiered by paired comparison", "",
             "Ranked by the mean held-out accuracy on the NOISY labels of each method at its honestly chosen "
             "parameters (no test label orders the board); the leader is rank 1. Test accuracy (%): mean over "
             "seeds and 95% interval of every source of variance (seeds, test samples, the choices; clipped to "
             "[0, 100]). \"vs leader\": the seed-paired difference in test accuracy with its interval and its "
             "Holm-adjusted p-value within the setting; tier 1 holds the leader and every method not "
             "significantly below it, tier 2 the methods significantly below. Beside it, exploratory: the "
             "best-on-test figure (parameters chosen on the clean test set, the reference code's selection), "
             "the optimism gap (best-on-test minus honest, seed-paired, with its interval) and the final epoch. "
             "(edge): the chosen value is the lowest or highest of its grid. \"oracle T\", \"oracle rate\": told the "
             "noise's true transition matrix or rate, which no real method knows; \"estimated T\", \"estimated "
             "rate\": estimated from the CE warm-up model."]
    if "best" in by:
        lines += ["", "A dataset without a held-out split (val_fraction 0) has no honest selection: its boards are "
                      "ranked, tiered and compared under the best-on-test selection (parameters, epochs and order "
                      "chosen on the clean test set), and say so in their title."]
    lines.append("")
    show_variant = len({x["variant"] for x in board}) > 1
    keys = list(dict.fromkeys((r["dataset"], r["noise_kind"], r["noise_rate"]) for r in board))
    for ds, kind, rate in keys:
        part = [x for x in board if (x["dataset"], x["noise_kind"], x["noise_rate"]) == (ds, kind, rate)]
        honest = part[0]["ranked_by"] == "selected"
        title = f"### {ds} / {kind} {rate}" + ("" if honest else " — ranked under best-on-test (no held-out split)")
        score = "held-out" if honest else "best-on-test"
        lines += [title, "",
                  f"| rank | tier | method | parameters | {score} | test | 95% interval | vs leader | p_adj | n | "
                  "best-on-test | optimism gap | final |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in part:
            m = registry.get(r["method"])
            label = m.label + (f" ({m.noise})" if m.noise else "")
            vs = r["vs_leader"] if r["diff_vs_leader_pct"] is None else \
                f"{r['diff_vs_leader_pct']:+.2f} {_interval(r['diff_low_pct'], r['diff_high_pct'], True)} ({r['vs_leader']})"
            p_adj = "—" if r["p_adj_vs_leader"] is None else inference.p_text(r["p_adj_vs_leader"])
            div = f" ({r['n_diverged']} diverged)" if r["n_diverged"] else ""
            gap = "—" if r["optimism_gap_pct"] is None else \
                f"{r['optimism_gap_pct']:+.2f} {_interval(r['optimism_low_pct'], r['optimism_high_pct'], True)}"
            lines.append(f"| {r['rank'] or '—'} | {r['tier'] or '—'} | {label} | {params_label(r, show_variant) or '—'} | "
                         f"{_pct(r['rank_score_pct'])} | {_pct(r['test_mean_pct'])} | "
                         f"{_interval(r['test_low_pct'], r['test_high_pct'])} | {vs or '—'} | {p_adj} | "
                         f"{r['n_seeds']}{div} | {_pct(r['best_on_test_mean_pct'])} | {gap} | "
                         f"{_pct(r['final_mean_pct'])} |")
        lines.append("")
    return lines


