"""What the numbers say: ``summary.json`` (headline figures for ``dvc metrics show``) and
``findings.md`` (sentences computed from the results; nothing is fixed text).
"""

from __future__ import annotations

import math

from .cells import flip_to_smooth, fmt_rate
from .selection import EPOCH_COLUMNS, SELECTION_TITLES, SELECTIONS
from .stats import Setting, table_row
from .tables import diverged_notes, entry_name, pct, winner_label

def summary(settings: dict[tuple[str, str], list[Setting]]) -> dict:
    out: dict = {}
    total_cells = total_div = 0
    for (ds, kind), sets in settings.items():
        for s in sets:
            node: dict = {"cells": s.n_cells, "diverged": s.n_diverged, "seeds": len(s.seeds)}
            for selection in SELECTIONS:
                entries = table_row(s, selection)
                sel: dict = {}
                for m, e in entries.items():
                    if e is None or e.stat is None:
                        continue
                    sel[m] = round(100 * e.stat.mean, 4)
                    if m != "ce":
                        sel[f"{m}_rate"] = e.rate
                    if e.stat.std is not None:
                        sel[f"{m}_std"] = round(100 * e.stat.std, 4)
                ce = entries["ce"]
                for m in ("ls", "nls", "flip"):
                    e = entries[m]
                    if ce and ce.stat and e and e.stat:
                        sel[f"{m}_minus_ce"] = round(100 * (e.stat.mean - ce.stat.mean), 4)
                node[selection] = sel
            out.setdefault(ds, {}).setdefault(kind, {})[s.noise_rate] = node
            total_cells += s.n_cells
            total_div += s.n_diverged
    out["total"] = {"cells": total_cells, "diverged": total_div}
    return out


def _pts(x: float) -> str:
    return f"{100 * x:+.2f}"


def _selection_sentence(s: Setting, selection: str) -> str:
    entries = table_row(s, selection)
    usable = [e for e in entries.values() if e is not None and e.stat is not None]
    if not usable:
        return f"{SELECTION_TITLES[selection]}: no usable cell."
    winners = [e for e in usable if e.best]
    w = winners[0]
    parts = [f"{SELECTION_TITLES[selection]}: best is {' = '.join(entry_name(x) for x in winners)} "
             f"at {pct(w.stat.mean)}%"]
    ce = entries["ce"]
    if ce is not None and ce.stat is not None:
        gaps = []
        for m in ("ls", "nls", "flip"):
            e = entries[m]
            if e is not None and e.stat is not None:
                gap = e.stat.mean - ce.stat.mean
                spread = max([x for x in (e.stat.std, ce.stat.std) if x is not None], default=None)
                within = ""
                if spread is not None:
                    within = ", within one seed std" if abs(gap) <= spread else ", beyond one seed std"
                gaps.append(f"{entry_name(e)} {_pts(gap)} points vs CE{within}")
        parts.append(f"CE {pct(ce.stat.mean)}%" + (("; " + "; ".join(gaps)) if gaps else ""))
    elif ce is not None:
        parts.append("CE diverged in every seed")
    return "; ".join(parts) + "."


def _flip_checks(s: Setting, selection: str) -> list[str]:
    """Flip ε against LS at r = εK/(K−1) where the grid has that LS rate."""
    metric = SELECTIONS[selection][0]
    K = s.num_classes
    out = []
    for eps in s.rates("flip"):
        r_eq = flip_to_smooth(eps, K)
        match = [r for r in s.rates("ls") + s.rates("ce") if math.isclose(r, r_eq, rel_tol=1e-6, abs_tol=1e-9)]
        if not match:
            continue
        method = "ce" if match[0] == 0 else "ls"
        f_st = s.stat("flip", eps, metric)
        l_st = s.stat(method, match[0], metric)
        if f_st.mean is None or l_st.mean is None:
            continue
        out.append(f"flip ε={fmt_rate(eps)} vs LS r={fmt_rate(match[0])}: "
                   f"{pct(f_st.mean)}% vs {pct(l_st.mean)}% ({_pts(f_st.mean - l_st.mean)} points)")
    return out


def warmup_checkpoints(rows: list[dict], curves: dict[tuple, list[dict]]) -> dict[tuple[str, str], dict[str, int]]:
    """Per (dataset, noise kind): how many cells took their best-on-test / honest checkpoint
    from the shared CE warm-up (where every method of a group is the same model)."""
    last_warm: dict[tuple, int] = {}
    for rec in (r for cell_rows in curves.values() for r in cell_rows):
        if rec["phase"] == "warmup":
            key = (rec["dataset"], rec["noise_kind"], rec["noise_rate"], rec["seed"])
            last_warm[key] = max(last_warm.get(key, 0), rec["epoch"])
    out: dict[tuple[str, str], dict[str, int]] = {}
    for row in rows:
        w = last_warm.get((row["dataset"], row["noise_kind"], row["noise_rate"], row["seed"]), 0)
        c = out.setdefault((row["dataset"], row["noise_kind"]), {"cells": 0, "best": 0, "selected": 0})
        c["cells"] += 1
        for sel, col in EPOCH_COLUMNS.items():
            c[sel] += row[col] is not None and row[col] <= w
    return out


def findings(settings: dict[tuple[str, str], list[Setting]],
              warm: dict[tuple[str, str], dict[str, int]] | None = None) -> str:
    lines = [
        "# Findings", "",
        "Generated by `smoothbench report` from results.csv: every statement below is computed from "
        "the results; nothing is fixed text. Test accuracy in %, mean over seeds with diverged cells "
        "excluded. *best-on-test*: checkpoint chosen on clean test labels (the reference code's "
        "choice, optimistic); *honest*: checkpoint chosen on held-out noisy training labels; "
        "*final epoch*: the last checkpoint. In each, "
        "the best LS/NLS/flip rate of a row is the one with the highest mean under that selection.", "",
    ]
    for (ds, kind), sets in settings.items():
        lines += [f"## {ds} / {kind}", ""]
        c = (warm or {}).get((ds, kind))
        if c and (c["best"] or c["selected"]):
            lines.append(f"- Checkpoints from the shared CE warm-up, where every method of a group is still the "
                         f"same model: best-on-test {c['best']}/{c['cells']} cells, honest {c['selected']}/"
                         f"{c['cells']} cells. Methods that tie exactly below tie for this reason; the "
                         f"final-epoch figures show what each method's own phase did.")
        for s in sets:
            lines.append(f"- **noise {s.noise_rate}** ({len(s.seeds)} seed(s), {s.n_cells} cells, "
                         f"{s.n_diverged} diverged):")
            for selection in ("best", "selected", "final"):
                lines.append(f"  - {_selection_sentence(s, selection)}")
            w_best = winner_label(table_row(s, "best"))
            w_sel = winner_label(table_row(s, "selected"))
            if w_best == w_sel:
                lines.append(f"  - The winner is the same under both selections ({w_best}).")
            else:
                lines.append(f"  - The winner changes under honest selection: {w_best} (best-on-test) "
                             f"→ {w_sel} (honest).")
            notes = diverged_notes(s)
            if notes:
                lines.append("  - Diverged (seeds): " + ", ".join(notes) + ".")
        # optimal smooth rate across noise rates (ce, ls and nls cells together)
        for selection in ("best", "selected", "final"):
            metric = SELECTIONS[selection][0]
            trail = []
            for s in sets:
                cands = []
                for m in ("ce", "ls", "nls"):
                    for r in s.rates(m):
                        st = s.stat(m, r, metric)
                        if st.mean is not None:
                            cands.append((-st.mean, abs(r), r))
                if cands:
                    trail.append(f"r={fmt_rate(min(cands)[2])} at noise {s.noise_rate}")
            if trail:
                lines.append(f"- Optimal smooth rate r ({SELECTION_TITLES[selection]}): " + ", ".join(trail) + ".")
        any_check = False
        for selection in ("best", "final"):
            checks = [f"noise {s.noise_rate}: {c}" for s in sets for c in _flip_checks(s, selection)]
            if checks:
                any_check = True
                lines.append("- Flip vs LS at the matching rate r = εK/(K−1) (seed note 000: equal in "
                             f"expectation), {SELECTION_TITLES[selection]}: " + "; ".join(checks) + ".")
        if not any_check:
            lines.append("- Flip vs LS: no flip cell has an LS cell at its matching rate r = εK/(K−1).")
        lines.append("")
    return "\n".join(lines)
