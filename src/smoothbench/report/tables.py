"""Paper-style tables: Markdown, LaTeX and CSV, one per selection, with the paper column,
and the reproduction verdicts.

Per dataset x noise kind, rows are noise rates and columns the study's smoothing methods
(the ``SUBJECT`` families of the registry: CE, best LS (its r), best NLS (its r), flip,
and the BCE family) at the parameters the choices table chose for the selection (honest: by
held-out NOISY accuracy); mean ± std over seeds in percent, the method the selection ranks
first in bold (honest: by held-out accuracy, not by test accuracy), a chosen value on the
edge of its grid marked, diverged cells counted. The robust baselines are ranked beside them in the leaderboard
(``leaderboard``); the CSV tables hold every method. There is one table per protocol variant and, when a study
has several, one more whose entries are each method's better variant (the paper
reports the better of direct training and warm-up). Where the package's reference
numbers (``collect.read_references``) have a published figure for a setting and the
table's selection, a "paper" column shows it beside ours, and the reproduction section
gives the verdict: reproduced (within 1.5 points) or the difference.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .. import methods as registry
from .collect import csv_text
from ..core.selection import SELECTION_TITLES, SELECTIONS
from .seedstats import REPORT_SELECTIONS, Entry, Setting, better_row, by_pair, mark_best, table_row

FOLDER = "tables"  # under the report folder
SUBJECT = ("gls", "flip", "bce")  # the method families of the paper-style tables (the study's subject)
REPRODUCED_WITHIN = 1.5  # points: the paper's number is reproduced when ours lies this close
Settings = dict[tuple[str, str, str], list[Setting]]


def reference_best(refs: list[dict], dataset: str, kind: str, noise_rate: str, method: str,
                   selection: str) -> dict | None:
    """The published figure of a method in a setting under a selection (its best rate)."""
    cands = [r for r in refs if (r["dataset"], r["noise_kind"], r["noise_rate"], r["method"], r["selection"])
             == (dataset, kind, noise_rate, method, selection)]
    if not cands:
        return None
    return min(cands, key=lambda r: (-r["test_acc"], abs(r["rate"]), r["rate"]))


@dataclass
class Block:
    """One table of a (dataset, noise kind) under a selection: a variant's, or the better-of."""

    title: str
    rows: list[tuple[str, dict[str, Entry | None], list[Setting]]]  # noise rate, entries, its settings
    better: bool
    with_paper: bool

    @property
    def methods(self) -> list[str]:
        """The table's columns: the study's smoothing methods with a cell in some row, in registry order."""
        return [m for m in registry.names() if registry.get(m).group in SUBJECT
                and any(entries[m] is not None for _, entries, _ in self.rows)]


def blocks(variants: dict[str, list[Setting]], selection: str) -> list[Block]:
    """The tables of one (dataset, noise kind): one per variant, then the better-of when
    there are several; the paper column goes with the last (what the paper reports)."""
    names = list(variants)
    out = [Block(f"variant {v}", [(s.noise_rate, subject(table_row(s, selection)), [s]) for s in variants[v]],
                 False, len(names) == 1) for v in names]
    if len(names) > 1:
        rates = list(dict.fromkeys(s.noise_rate for v in names for s in variants[v]))
        rows = []
        for rate in rates:
            sets = [s for v in names for s in variants[v] if s.noise_rate == rate]
            rows.append((rate, subject(better_row(sets, selection), overall=True), sets))
        out.append(Block("better of " + ", ".join(names), rows, True, True))
    return out


def subject(entries: dict[str, Entry | None], overall: bool = False) -> dict[str, Entry | None]:
    """A row's entries of the study's smoothing methods (``SUBJECT``), the one the selection ranks
    first among them marked (``overall``: ranks across variants)."""
    out = {m: (None if e is None else replace(e, best=False)) for m, e in entries.items()
           if registry.get(m).group in SUBJECT}
    return mark_best(out, overall)


def verdict(ours_pct: float | None, ref: dict) -> str:
    """Reproduced (within REPRODUCED_WITHIN points) or the difference; low-confidence marked."""
    low = " (low-confidence reference)" if ref["confidence"] == "low" else ""
    if ours_pct is None:
        return "no result" + low
    delta = ours_pct - ref["test_acc"]
    if abs(delta) <= REPRODUCED_WITHIN:
        return f"reproduced ({delta:+.2f}){low}"
    return f"differs by {delta:+.2f} points{low}"


def pct(x: float) -> str:
    return f"{100.0 * x:.2f}"


def rate_label(method: str, values: tuple | float | None, fmt: str) -> str:
    """A method's parameters as a table shows them (``r=0.2``, ``α=0.1, β=1``), and what it is
    told of the noise ("oracle T", "estimated T", "oracle rate", "estimated rate"); empty for CE."""
    m = registry.get(method)
    if isinstance(values, (int, float)):
        values = (float(values),) + m.defaults[1:]
    label = m.label_params(values, fmt) if values is not None else ""
    return ", ".join(x for x in (label, m.noise) if x)


def method_label(method: str) -> str:
    return registry.get(method).label


def is_baseline(method: str) -> bool:
    """Whether the method has no parameter to choose (CE, BCE): its column is not a 'best'."""
    return not registry.get(method).tunable


def entry_name(e: Entry) -> str:
    label = rate_label(e.method, e.values, "plain")
    return method_label(e.method) + (f" ({label})" if label else "")


def entry_text(e: Entry | None, fmt: str = "md", show_variant: bool = False) -> str:
    """'85.23 ± 0.31 (r=0.4; 1/3 diverged)' in Markdown, LaTeX or plain text; with
    ``show_variant`` the protocol variant the entry comes from is named too."""
    dash = {"md": "—", "tex": "--", "plain": ""}[fmt]
    if e is None:
        return dash
    if e.stat is None:
        return f"diverged ({e.n_diverged}/{e.n_seeds})" if e.n_diverged else "n/a"
    pm = " $\\pm$ " if fmt == "tex" else " ± "
    text = pct(e.stat.mean) + (pm + pct(e.stat.std) if e.stat.std is not None else "")
    notes = [n for n in (rate_label(e.method, e.values, fmt), "edge" if e.edge else "",
                         e.variant if show_variant else "",
                         f"{e.n_diverged}/{e.n_seeds} diverged" if e.n_diverged else "") if n]
    if notes:
        text += " (" + "; ".join(notes) + ")"
    if e.best and fmt in ("md", "tex"):
        text = f"**{text}**" if fmt == "md" else f"\\textbf{{{text}}}"
    return text


def _ref_text(ref: dict | None, fmt: str) -> str:
    if ref is None:
        return {"md": "—", "tex": "--", "plain": ""}[fmt]
    label = rate_label(ref["method"], ref["rate"], fmt)
    pm = " $\\pm$ " if fmt == "tex" else " ± "
    text = ref["text"] + (pm + ref["std"] if ref["std"] else "")
    return text + (f" ({label})" if label else "") + ("†" if ref["confidence"] == "low" else "")


def _tex_escape(s: str) -> str:
    out = s
    for a, b in (("\\", "\\textbackslash{}"), ("_", "\\_"), ("%", "\\%"), ("&", "\\&"),
                 ("#", "\\#"), ("$", "\\$"), ("{", "\\{"), ("}", "\\}")):
        if a == "\\":
            out = out.replace(a, "\x00")
        else:
            out = out.replace(a, b)
    return out.replace("\x00", "\\textbackslash{}")


def diverged_notes(setting: Setting, status: str = "diverged") -> list[str]:
    """'LS r=0.4: 2/10' per (method, rate) of the setting with cells of ``status`` (diverged, or
    failed: not trained)."""
    notes = []
    for (m, v), cells in sorted(setting.cells.items(), key=lambda kv: (registry.order(kv[0][0]), kv[0][1])):
        n_div = sum(c["status"] == status for c in cells)
        if n_div:
            label = rate_label(m, v, "plain")
            notes.append(f"{method_label(m)}{' ' + label if label else ''}: {n_div}/{len(cells)}")
    return notes


def winner_label(entries: dict[str, Entry | None]) -> str:
    best = [e for e in entries.values() if e is not None and e.best]
    if not best:
        return "n/a"
    return " = ".join(entry_name(e) for e in best)


CHOSEN_BY_TEXT = {"val_acc_selected": "held-out NOISY accuracy at the honest epoch (no test label)",
                  "val_acc_final": "held-out NOISY accuracy at the final epoch (no test label)",
                  "test_acc_final": "clean TEST accuracy at the final epoch (no held-out split; optimistic)",
                  "test_acc_best": "clean TEST accuracy at the best-on-test epoch (optimistic)"}


def chosen_by(block: "Block", selection: str) -> str:
    """What a block's choices were made by (the choices table's ``chosen_by``), in words."""
    used = sorted({e.choice.chosen_by for _, entries, _ in block.rows for e in entries.values()
                   if e is not None and e.choice is not None})
    return "; ".join(CHOSEN_BY_TEXT[u] for u in used) or "nothing (no usable cell)"


def _caption(selection: str, dataset: str, kind: str, block: "Block") -> str:
    metric, meaning = SELECTIONS[selection]
    text = (f"{dataset}, {kind} noise, {block.title}: test accuracy (%) under `{selection}` selection "
            f"({metric}): {meaning}. Mean ± std over seeds (sample std, ddof=1; one seed: mean only); "
            "diverged cells are excluded from the mean and counted. Each method's parameters (LS/NLS/flip rate, "
            f"...) chosen by the mean {chosen_by(block, selection)}; \"edge\": the chosen value is the lowest or "
            "highest of its grid. Bold: the method ranked first by that score.")
    if block.better:
        text += " Each entry is the better of the protocol variants (named in brackets), as the paper reports."
    if block.with_paper:
        text += (" 'paper' columns: published numbers for this selection (their protocol; † lower "
                 "confidence, see the reproduction section).")
    return text


def md_tables(settings: Settings, refs: list[dict]) -> str:
    pairs = by_pair(settings)
    lines = ["# Results tables", "",
             "Generated by `smoothbench report` from results.csv. Test accuracy in %.", ""]
    lines += _md_reproduction(pairs, refs)
    for selection in shown_selections(settings):
        lines += [f"## Selection: {selection} — {SELECTION_TITLES[selection]}", ""]
        for (ds, kind), variants in pairs.items():
            for block in blocks(variants, selection):
                lines += _md_block(ds, kind, selection, block, refs)
    shown = shown_selections(settings)
    if "selected" in shown and any(block_methods(pairs)):
        lines += ["## Does the ranking survive honest selection?", "",
                  "The smoothing method each selection ranks first in each row (the better of the variants when "
                  "there are several): honest by held-out accuracy, final epoch by held-out accuracy at the last "
                  "epoch, best-on-test by clean test accuracy. (The leaderboard compares every method with its "
                  "leader, seed-paired.)", ""]
        lines.append("| dataset | noise kind | noise rate | " + " | ".join(
            f"first ({SELECTION_TITLES[s]})" for s in shown) + " | same (best vs honest) |")
        lines.append("|" + "|".join("---" for _ in range(4 + len(shown))) + "|")
        for (ds, kind), variants in pairs.items():
            finals = {sel: blocks(variants, sel)[-1] for sel in shown}
            for i, (rate, _, _) in enumerate(finals["best"].rows):
                winners = {sel: winner_label(finals[sel].rows[i][1]) for sel in shown}
                same = "yes" if winners["best"] == winners["selected"] else "no"
                lines.append(f"| {ds} | {kind} | {rate} | " + " | ".join(winners.values()) + f" | {same} |")
        lines.append("")
    return "\n".join(lines)


def shown_selections(settings: Settings) -> list[str]:
    """The selections the tables show: every one, but the honest one only where some dataset
    has a held-out split (without one there is no honest choice)."""
    held_out = any(c["val_acc_selected"] is not None for sets in settings.values() for s in sets
                   for cells in s.cells.values() for c in cells)
    return [sel for sel in SELECTIONS if sel != "selected" or held_out]


def block_methods(pairs: dict) -> list[str]:
    """The smoothing methods any (dataset, noise kind) has (the paper-style tables' columns)."""
    return [m for m in registry.names() if registry.get(m).group in SUBJECT and any(
        m in s.methods() for variants in pairs.values() for sets in variants.values() for s in sets)]


def _md_block(ds: str, kind: str, selection: str, block: Block, refs: list[dict]) -> list[str]:
    has_ref = block.with_paper and any(reference_best(refs, ds, kind, rate, m, selection)
                                       for rate, _, _ in block.rows for m in block.methods)
    block = Block(block.title, block.rows, block.better, has_ref)
    lines = [f"### {ds} / {kind}, {block.title} ({selection})", "", _caption(selection, ds, kind, block), ""]
    head = ["noise rate"]
    for m in block.methods:
        head.append(method_label(m) if is_baseline(m) else f"best {method_label(m)}")
        if has_ref:
            head.append(f"{method_label(m)} (paper)")
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join("---" for _ in head) + "|")
    div_lines, failed_lines = [], []
    for rate, entries, sets in block.rows:
        cells = [rate]
        for m in block.methods:
            cells.append(entry_text(entries[m], "md", show_variant=block.better))
            if has_ref:
                cells.append(_ref_text(reference_best(refs, ds, kind, rate, m, selection), "md"))
        lines.append("| " + " | ".join(cells) + " |")
        notes = [f"{s.variant} {n}" if block.better else n for s in sets for n in diverged_notes(s)]
        if notes:
            div_lines.append(f"noise {rate}: " + ", ".join(notes))
        failed = [f"{s.variant} {n}" if block.better else n for s in sets for n in diverged_notes(s, "failed")]
        if failed:
            failed_lines.append(f"noise {rate}: " + ", ".join(failed))
    lines.append("")
    lines.append("Diverged cells (seeds diverged/total): " + ("; ".join(div_lines) if div_lines else "none") + ".")
    if failed_lines:
        lines.append("Failed cells, not trained, their reasons in the train log and each cell's metrics.json (seeds "
                     "failed/total): " + "; ".join(failed_lines) + ".")
    if has_ref:
        sources = sorted({reference_best(refs, ds, kind, rate, m, selection)["source"] for rate, _, _ in block.rows
                          for m in block.methods if reference_best(refs, ds, kind, rate, m, selection)})
        lines.append("Paper numbers from: " + "; ".join(sources) + ".")
    lines.append("")
    return lines


REPRODUCTION_COLUMNS = ["dataset", "noise_kind", "noise_rate", "method", "selection", "ours_pct", "ours_std_pct",
                        "ours_rate", "ours_variant", "n_seeds", "paper_pct", "paper_std_pct", "paper_rate",
                        "delta_points", "verdict", "confidence", "source"]


def reproduction_rows(settings: Settings, refs: list[dict]) -> list[dict]:
    """Every published figure that has a setting in the results, beside ours and its verdict:
    ours is the better-of (or only) variant's entry under the reference's selection."""
    out = []
    for (ds, kind), variants in by_pair(settings).items():
        for selection in SELECTIONS:
            for rate, entries, _ in blocks(variants, selection)[-1].rows:
                for m in registry.names():
                    ref = reference_best(refs, ds, kind, rate, m, selection)
                    if ref is None:
                        continue
                    e = entries.get(m)
                    ours = 100 * e.stat.mean if e is not None and e.stat is not None else None
                    std = 100 * e.stat.std if ours is not None and e.stat.std is not None else None
                    out.append({
                        "dataset": ds, "noise_kind": kind, "noise_rate": rate, "method": m, "selection": selection,
                        "ours_pct": None if ours is None else round(ours, 4),
                        "ours_std_pct": None if std is None else round(std, 4),
                        "ours_rate": None if e is None else e.rate, "ours_variant": None if e is None else e.variant,
                        "n_seeds": 0 if e is None or e.stat is None else e.stat.n_ok,
                        "paper_pct": ref["test_acc"], "paper_std_pct": ref["std"] or None, "paper_rate": ref["rate"],
                        "delta_points": None if ours is None else round(ours - ref["test_acc"], 4),
                        "verdict": verdict(ours, ref), "confidence": ref["confidence"], "source": ref["source"],
                    })
    return out


def _md_reproduction(pairs: dict, refs: list[dict]) -> list[str]:
    rows = reproduction_rows({(ds, kind, v): sets for (ds, kind), vs in pairs.items() for v, sets in vs.items()},
                             refs)
    if not rows:
        return []
    lines = ["## Reproduction of the paper", "",
             f"Each published figure beside ours under the same selection: reproduced when within "
             f"{REPRODUCED_WITHIN} points (the rule of the reference numbers; it presumes the paper's protocol - "
             "see docs/reproduction.md), else the difference. Ours is the better protocol variant per method, "
             "as the paper reports; † lower-confidence reference.", "",
             "| dataset | noise | rate | method | selection | ours | paper | Δ | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ours = "—" if r["ours_pct"] is None else (
            f"{r['ours_pct']:.2f}" + (f" ± {r['ours_std_pct']:.2f}" if r["ours_std_pct"] is not None else "")
            + f" ({', '.join(x for x in (rate_label(r['method'], r['ours_rate'], 'plain'), r['ours_variant']) if x)})")
        paper = f"{r['paper_pct']:.2f}" + (f" ± {r['paper_std_pct']}" if r["paper_std_pct"] else "") + \
            (f" ({rate_label(r['method'], r['paper_rate'], 'plain')})" if not is_baseline(r["method"]) else "") + \
            ("†" if r["confidence"] == "low" else "")
        delta = "—" if r["delta_points"] is None else f"{r['delta_points']:+.2f}"
        lines.append(f"| {r['dataset']} | {r['noise_kind']} | {r['noise_rate']} | {method_label(r['method'])} | "
                     f"{r['selection']} | {ours} | {paper} | {delta} | {r['verdict']} |")
    lines += ["", "Sources: " + "; ".join(sorted({r["source"] for r in rows})) + ".", ""]
    return lines


def tex_tables(settings: Settings, refs: list[dict]) -> str:
    lines = ["% Generated by `smoothbench report` from results.csv; needs \\usepackage{booktabs}.", ""]
    for selection in shown_selections(settings):
        for (ds, kind), variants in by_pair(settings).items():
            for block in blocks(variants, selection):
                has_ref = block.with_paper and any(reference_best(refs, ds, kind, rate, m, selection)
                                                   for rate, _, _ in block.rows for m in block.methods)
                block = Block(block.title, block.rows, block.better, has_ref)
                ncol = 1 + len(block.methods) * (2 if has_ref else 1)
                caption = _tex_escape(_caption(selection, ds, kind, block).replace("`", ""))
                caption = caption.replace("±", "$\\pm$").replace("†", "$\\dagger$")
                label = f"tab:{_label_id(ds)}-{_label_id(kind)}-{_label_id(block.title)}-{selection}"
                lines += ["\\begin{table}[t]", "\\centering", "\\small", f"\\caption{{{caption}}}",
                          f"\\label{{{label}}}", "\\begin{tabular}{" + "l" * ncol + "}", "\\toprule"]
                head = ["noise rate"]
                for m in block.methods:
                    head.append(method_label(m) if is_baseline(m) else f"best {method_label(m)}")
                    if has_ref:
                        head.append(f"{method_label(m)} (paper)")
                lines.append(" & ".join(head) + " \\\\")
                lines.append("\\midrule")
                for rate, entries, _ in block.rows:
                    cells = [_tex_escape(rate)]
                    for m in block.methods:
                        cells.append(entry_text(entries[m], "tex", show_variant=block.better))
                        if has_ref:
                            ref_text = _ref_text(reference_best(refs, ds, kind, rate, m, selection), "tex")
                            cells.append(ref_text.replace("†", "$^\\dagger$"))
                    lines.append(" & ".join(cells) + " \\\\")
                lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)


def _label_id(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in s)


TABLE_CSV_COLUMNS = ["dataset", "noise_kind", "noise_rate", "selection", "table", "method", "params", "rate",
                     "oracle", "variant",
                     "test_acc_mean_pct", "test_acc_std_pct", "n_used", "n_seeds", "n_diverged",
                     "best", "text", "paper_rate", "paper_test_acc_pct", "paper_source"]


def csv_table(settings: Settings, refs: list[dict], selection: str) -> str:
    rows = []
    for (ds, kind), variants in by_pair(settings).items():
        for block in blocks(variants, selection):
            table = "better" if block.better else block.rows[0][2][0].variant
            for rate, entries, _ in block.rows:
                for m in registry.names():
                    e = entries.get(m)
                    if e is None:
                        continue
                    ref = reference_best(refs, ds, kind, rate, m, selection) if block.with_paper else None
                    st = e.stat
                    rows.append([
                        ds, kind, rate, selection, table, m,
                        None if e.values is None else registry.get(m).params_text(e.values), e.rate,
                        int(registry.get(m).oracle), e.variant,
                        f"{100 * st.mean:.4f}" if st else None,
                        f"{100 * st.std:.4f}" if st and st.std is not None else None,
                        st.n_ok if st else 0, e.n_seeds, e.n_diverged, int(e.best),
                        entry_text(e, "plain", show_variant=block.better),
                        ref["rate"] if ref else None, ref["text"] if ref else None, ref["source"] if ref else None,
                    ])
    return csv_text(TABLE_CSV_COLUMNS, rows)


def reproduction_csv(settings: Settings, refs: list[dict]) -> str:
    rows = reproduction_rows(settings, refs)
    return csv_text(REPRODUCTION_COLUMNS, ([r[c] for c in REPRODUCTION_COLUMNS] for r in rows))


CLAIMS_COLUMNS = ["dataset", "noise_kind", "variant", "claim", "text", "kind", "margin"] + [
    f"{sel}{suffix}" for sel in REPORT_SELECTIONS
    for suffix in ("", "_mean", "_low", "_high", "_n", "_p", "_p_adj", "_family", "_seed_low", "_seed_high",
                   "_p_sign_flip", "_support", "_rests_on", "_evidence")]


def claims_csv(claim_rows: list[dict]) -> str:
    """The claims table (``claims.claims_table``) as CSV."""
    return csv_text(CLAIMS_COLUMNS, ([None if r[c] is None else (round(r[c], 4) if isinstance(r[c], float) else r[c])
                                      for c in CLAIMS_COLUMNS] for r in claim_rows))
