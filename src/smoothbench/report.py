"""Results collector and report builder.

``collect`` gathers the cells of finished groups (``group.json`` plus each cell's
``curves.csv``) into two tidy CSV files; ``build_reports`` turns them into paper-style
tables (Markdown, LaTeX, CSV), figures (PNG and SVG), ``summary.json`` (for
``dvc metrics show``) and a generated ``findings.md``.

Conventions (fixed, so that rebuilt reports are byte-identical):

- CSV files are written with the ``csv`` module, ``\\n`` line ends; floats as Python's
  ``repr`` (shortest text that reads back to the same float), integers as integers,
  missing values (JSON ``null``) as empty fields, non-finite floats as ``nan``/``inf``.
- Reports print test accuracy in percent, mean ± std over seeds, std with ddof=1
  (the sample standard deviation); with one contributing seed only the mean is shown.
- Diverged cells (``status == "diverged"``) never enter a mean; they are counted and
  shown ("1/3 diverged"); a rate whose seeds all diverged cannot be "best".
- The best LS / NLS / flip rate of a table row is the one with the highest mean of the
  selection's figure (ties: the rate closer to 0, then the smaller one).
- Figures: Agg canvas, fixed dpi, DejaVu Sans, ``svg.hashsalt`` fixed, no ``Date`` /
  ``Creator`` / ``Software`` metadata.

Published reference numbers are CSV files (columns ``dataset, noise_kind, noise_rate,
method, rate, test_acc, source``; ``test_acc`` in percent exactly as printed in the
paper, ``source`` naming paper, table and page). They are read from ``reference_dir``
when given, else from the package's ``references/`` folder.
"""

from __future__ import annotations

import csv
import io
import math
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from . import grid
from .io import atomic_path, read_json, write_json, write_text

KEY_COLUMNS = ["dataset", "noise_kind", "noise_rate", "seed", "method", "rate"]
CELL_METRIC_COLUMNS = [
    "status", "diverged_epoch", "test_acc_final", "test_acc_best", "test_acc_selected",
    "best_epoch", "selected_epoch", "val_acc_selected", "clean_train_acc", "noisy_train_acc",
    "test_nll", "ece", "train_loss", "smooth_rate", "flip_rate",
]
RESULT_COLUMNS = KEY_COLUMNS + ["cell_id"] + CELL_METRIC_COLUMNS + ["num_classes", "realised_noise_rate"]
CURVE_COLUMNS = ["epoch", "phase", "lr", "train_loss", "noisy_train_acc", "clean_train_acc",
                 "val_acc", "test_acc", "test_nll", "ece"]
CURVES_OUT_COLUMNS = KEY_COLUMNS + ["cell_id"] + CURVE_COLUMNS

INT_COLUMNS = {"seed", "diverged_epoch", "best_epoch", "selected_epoch", "num_classes", "epoch"}
FLOAT_COLUMNS = {
    "rate", "test_acc_final", "test_acc_best", "test_acc_selected", "val_acc_selected",
    "clean_train_acc", "noisy_train_acc", "test_nll", "ece", "train_loss", "smooth_rate",
    "flip_rate", "realised_noise_rate", "lr", "val_acc", "test_acc",
}
STATUSES = ("ok", "diverged")

# selection -> (column of results.csv, what it means)
SELECTIONS: dict[str, tuple[str, str]] = {
    "best": ("test_acc_best",
             "checkpoint with the best CLEAN-TEST accuracy over all epochs (the reference code's "
             "choice; it looks at test labels, so it is optimistic)"),
    "selected": ("test_acc_selected",
                 "checkpoint with the best accuracy on a held-out split of the NOISY training labels "
                 "(honest: no clean label is used to choose the epoch)"),
    "final": ("test_acc_final", "last epoch (no checkpoint selection)"),
}
SELECTION_TITLES = {"best": "best-on-test", "selected": "honest (noisy held-out)", "final": "final epoch"}
COLUMN_METHODS = ("ce", "ls", "nls", "flip")
METHOD_LABELS = {"ce": "CE", "ls": "LS", "nls": "NLS", "flip": "flip"}
FIGURES = ("acc_vs_rate", "heatmap", "memorisation", "calibration", "flip_vs_ls", "curves")
FIGURE_FORMATS = ("png", "svg")
TEXT_FILES = ("tables.md", "tables.tex") + tuple(f"table_{s}.csv" for s in SELECTIONS) + (
    "summary.json", "findings.md")
DPI = 100
REFERENCE_COLUMNS = ["dataset", "noise_kind", "noise_rate", "method", "rate", "test_acc", "source"]
PACKAGE_REFERENCE_DIR = Path(__file__).resolve().parent / "references"


# --------------------------------------------------------------------------- helpers


def _fmt_value(value: object) -> str:
    """Deterministic text of one CSV field."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    return str(value)


def _csv_text(header: list[str], rows: Iterable[Iterable[object]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow([_fmt_value(v) for v in row])
    return buf.getvalue()


def _rate_key(noise_rate: str) -> tuple:
    """Sort key of a noise rate's text: numbers by value first, then names."""
    try:
        return (0, float(noise_rate), "")
    except ValueError:
        return (1, 0.0, noise_rate)


def _row_key(row: dict) -> tuple:
    return (row["dataset"], row["noise_kind"], _rate_key(row["noise_rate"]), row["seed"],
            row["method"], row["rate"])


def _as_int(value: object, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise ValueError(f"{what} must be an integer, got {value!r}")


def _as_float(value: object, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise ValueError(f"{what} must be a number, got {value!r}")


def _parse_field(column: str, text: str, what: str) -> object:
    """Parse one CSV field by its column's type ('' is missing)."""
    if column in INT_COLUMNS:
        return None if text == "" else _as_int(text, what)
    if column in FLOAT_COLUMNS:
        return None if text == "" else _as_float(text, what)
    return text


# --------------------------------------------------------------------------- collect


def _read_group(path: Path) -> tuple[list[dict], list[dict]]:
    """One group.json -> (result rows, curve rows)."""
    if not path.is_file():
        raise ValueError(f"{path}: group file is missing")
    try:
        group = read_json(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(group, dict):
        raise ValueError(f"{path}: must hold a JSON object")
    for key in ("dataset", "noise_kind", "noise_rate", "seed", "num_classes", "cells"):
        if key not in group:
            raise ValueError(f"{path}: key {key!r} is missing")
    if not isinstance(group["cells"], list) or not group["cells"]:
        raise ValueError(f"{path}: 'cells' must be a non-empty list")
    base = {
        "dataset": str(group["dataset"]),
        "noise_kind": str(group["noise_kind"]),
        "noise_rate": grid.fmt_rate(group["noise_rate"]),
        "seed": _as_int(group["seed"], f"{path}: seed"),
    }
    num_classes = _as_int(group["num_classes"], f"{path}: num_classes")
    if num_classes is None or num_classes < 2:
        raise ValueError(f"{path}: num_classes must be an integer >= 2, got {group['num_classes']!r}")
    realised = _as_float(group.get("realised_noise_rate"), f"{path}: realised_noise_rate")

    rows, curve_rows = [], []
    for i, cell in enumerate(group["cells"]):
        where = f"{path}: cells[{i}]"
        if not isinstance(cell, dict):
            raise ValueError(f"{where} must be an object")
        for key in ["cell_id", "method", "rate"] + CELL_METRIC_COLUMNS:
            if key not in cell:
                raise ValueError(f"{where}: key {key!r} is missing")
        method = str(cell["method"])
        rate = _as_float(cell["rate"], f"{where}: rate")
        if rate is None:
            raise ValueError(f"{where}: rate is null")
        try:
            grid.check_method_rate(method, rate)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        cell_id = str(cell["cell_id"])
        expected_id = f"{method}_{grid.fmt_rate(rate)}"
        if cell_id != expected_id:
            raise ValueError(f"{where}: cell_id {cell_id!r} does not match method/rate ({expected_id!r})")
        if cell["status"] not in STATUSES:
            raise ValueError(f"{where}: status {cell['status']!r} is not one of {', '.join(STATUSES)}")
        row = dict(base, method=method, rate=rate, cell_id=cell_id)
        for key in CELL_METRIC_COLUMNS:
            value = cell[key]
            if key == "status":
                row[key] = value
            elif key in INT_COLUMNS:
                row[key] = _as_int(value, f"{where}: {key}")
            else:
                row[key] = _as_float(value, f"{where}: {key}")
        row["num_classes"] = num_classes
        row["realised_noise_rate"] = realised
        rows.append(row)
        curve_rows.extend(_read_cell_curves(path.parent / "cells" / cell_id / "curves.csv", row))
    return rows, curve_rows


def _read_cell_curves(path: Path, row: dict) -> list[dict]:
    keys = {k: row[k] for k in KEY_COLUMNS + ["cell_id"]}
    out = [{**keys, **rec} for rec in _read_csv(path, CURVE_COLUMNS, "curves")]
    for line_no, item in enumerate(out, start=2):
        if item["epoch"] is None:
            raise ValueError(f"{path}: line {line_no}: epoch is empty")
    if not out:
        raise ValueError(f"{path}: no epochs")
    epochs = [r["epoch"] for r in out]
    if len(set(epochs)) != len(epochs):
        raise ValueError(f"{path}: an epoch appears twice")
    return out


def collect(group_json_paths: Iterable[str | os.PathLike], results_out: str | os.PathLike,
            curves_out: str | os.PathLike) -> None:
    """Gather the cells of ``group.json`` files into ``results.csv`` and ``curves.csv``.

    Raises ``ValueError`` (one line, naming the file) if a file is missing or malformed
    or a cell (dataset, noise_kind, noise_rate, seed, method, rate) appears twice.
    """
    paths = [Path(p) for p in group_json_paths]
    if not paths:
        raise ValueError("collect needs at least one group.json")
    rows: list[dict] = []
    curve_rows: list[dict] = []
    seen: dict[tuple, Path] = {}
    for path in paths:
        g_rows, g_curves = _read_group(path)
        for row in g_rows:
            key = tuple(row[k] for k in KEY_COLUMNS)
            if key in seen:
                desc = ", ".join(f"{k}={_fmt_value(v)}" for k, v in zip(KEY_COLUMNS, key))
                raise ValueError(f"duplicate cell ({desc}) in {seen[key]} and {path}")
            seen[key] = path
        rows.extend(g_rows)
        curve_rows.extend(g_curves)
    rows.sort(key=_row_key)
    curve_rows.sort(key=lambda r: (_row_key(r), r["epoch"]))
    results_text = _csv_text(RESULT_COLUMNS, ([r[c] for c in RESULT_COLUMNS] for r in rows))
    curves_text = _csv_text(CURVES_OUT_COLUMNS, ([r[c] for c in CURVES_OUT_COLUMNS] for r in curve_rows))
    write_text(results_out, results_text)
    write_text(curves_out, curves_text)


# --------------------------------------------------------------------------- reading


def _read_csv(path: str | os.PathLike, columns: list[str], what: str) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: {what} file is missing")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(f"{path}: columns missing: {', '.join(missing)}")
        rows = []
        for line_no, rec in enumerate(reader, start=2):
            item = {}
            for col in columns:
                text = rec[col]
                if text is None:
                    raise ValueError(f"{path}: line {line_no} has too few fields")
                item[col] = _parse_field(col, text.strip(), f"{path}: line {line_no}: {col}")
            rows.append(item)
    return rows


def read_results(path: str | os.PathLike) -> list[dict]:
    rows = _read_csv(path, RESULT_COLUMNS, "results")
    for i, row in enumerate(rows, start=2):
        if row["status"] not in STATUSES:
            raise ValueError(f"{path}: line {i}: status {row['status']!r} is not one of {', '.join(STATUSES)}")
        if row["method"] not in COLUMN_METHODS or row["rate"] is None or row["seed"] is None:
            raise ValueError(f"{path}: line {i}: bad cell coordinates")
    return rows


def read_references(reference_dir: str | os.PathLike | None = None) -> list[dict]:
    """Published numbers: every ``*.csv`` in ``reference_dir`` (else the package's own)."""
    if reference_dir is None:
        folder = PACKAGE_REFERENCE_DIR
        if not folder.is_dir():
            return []
    else:
        folder = Path(reference_dir)
        if not folder.is_dir():
            raise ValueError(f"reference dir {folder} does not exist")
    refs: list[dict] = []
    seen: dict[tuple, Path] = {}
    for path in sorted(folder.glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REFERENCE_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{path}: columns missing: {', '.join(missing)}")
            for line_no, rec in enumerate(reader, start=2):
                where = f"{path}: line {line_no}"
                if any(rec[c] is None for c in REFERENCE_COLUMNS):
                    raise ValueError(f"{where} has too few fields")
                method = rec["method"].strip()
                rate = _as_float(rec["rate"].strip(), f"{where}: rate")
                try:
                    grid.check_method_rate(method, rate)
                except ValueError as exc:
                    raise ValueError(f"{where}: {exc}") from None
                text = rec["test_acc"].strip()
                acc = _as_float(text, f"{where}: test_acc")
                if acc is None or not 0.0 <= acc <= 100.0:
                    raise ValueError(f"{where}: test_acc must be a percentage in [0, 100], got {text!r}")
                if not rec["source"].strip():
                    raise ValueError(f"{where}: source is empty (name paper, table and page)")
                ref = {
                    "dataset": rec["dataset"].strip(), "noise_kind": rec["noise_kind"].strip(),
                    "noise_rate": grid.fmt_rate(rec["noise_rate"].strip()), "method": method,
                    "rate": rate, "test_acc": acc, "text": text, "source": rec["source"].strip(),
                }
                key = (ref["dataset"], ref["noise_kind"], ref["noise_rate"], method, rate)
                if key in seen:
                    raise ValueError(f"{where}: reference for {key} also in {seen[key]}")
                seen[key] = path
                refs.append(ref)
    return refs


# --------------------------------------------------------------------------- statistics


@dataclass
class Stat:
    """A metric of one (setting, method, rate) over seeds; diverged seeds excluded."""

    mean: float | None
    std: float | None
    n_ok: int
    n_seeds: int
    n_diverged: int


def _stat(cells: list[dict], metric: str) -> Stat:
    values = [c[metric] for c in cells if c["status"] == "ok" and c[metric] is not None
              and math.isfinite(c[metric])]
    n_div = sum(c["status"] == "diverged" for c in cells)
    mean = statistics.fmean(values) if values else None
    std = statistics.stdev(values) if len(values) >= 2 else None
    return Stat(mean, std, len(values), len(cells), n_div)


@dataclass
class Setting:
    """All cells of one (dataset, noise kind, noise rate), grouped by (method, rate)."""

    dataset: str
    kind: str
    noise_rate: str
    cells: dict[tuple[str, float], list[dict]] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return next(iter(self.cells.values()))[0]["num_classes"]

    def rates(self, method: str) -> list[float]:
        return sorted(r for m, r in self.cells if m == method)

    def stat(self, method: str, rate: float, metric: str) -> Stat:
        return _stat(self.cells[(method, rate)], metric)

    @property
    def n_cells(self) -> int:
        return sum(len(v) for v in self.cells.values())

    @property
    def n_diverged(self) -> int:
        return sum(c["status"] == "diverged" for v in self.cells.values() for c in v)

    @property
    def seeds(self) -> list[int]:
        return sorted({c["seed"] for v in self.cells.values() for c in v})


def _settings(rows: list[dict]) -> dict[tuple[str, str], list[Setting]]:
    """(dataset, kind) -> its settings, noise rates in order."""
    by: dict[tuple[str, str, str], Setting] = {}
    for row in rows:
        key = (row["dataset"], row["noise_kind"], row["noise_rate"])
        s = by.setdefault(key, Setting(*key))
        s.cells.setdefault((row["method"], row["rate"]), []).append(row)
    out: dict[tuple[str, str], list[Setting]] = {}
    for key in sorted(by, key=lambda k: (k[0], k[1], _rate_key(k[2]))):
        out.setdefault(key[:2], []).append(by[key])
    return out


@dataclass
class Entry:
    """One table cell: a method at its chosen rate (``stat`` None: no usable seed)."""

    method: str
    rate: float | None
    stat: Stat | None
    n_seeds: int
    n_diverged: int
    best: bool = False


def choose(setting: Setting, method: str, metric: str) -> Entry | None:
    """The method's best rate in this setting by mean ``metric`` (None: no cells)."""
    rates = setting.rates(method)
    if not rates:
        return None
    stats = {r: setting.stat(method, r, metric) for r in rates}
    usable = [r for r in rates if stats[r].mean is not None]
    if not usable:
        cells = [c for r in rates for c in setting.cells[(method, r)]]
        return Entry(method, None, None, len(cells), sum(c["status"] == "diverged" for c in cells))
    r = min(usable, key=lambda x: (-stats[x].mean, abs(x), x))
    return Entry(method, r, stats[r], stats[r].n_seeds, stats[r].n_diverged)


def table_row(setting: Setting, selection: str) -> dict[str, Entry | None]:
    """CE, best LS, best NLS and best flip of one setting, the best one(s) marked."""
    metric = SELECTIONS[selection][0]
    entries = {m: choose(setting, m, metric) for m in COLUMN_METHODS}
    means = [e.stat.mean for e in entries.values() if e is not None and e.stat is not None]
    if means:
        top = max(means)
        for e in entries.values():
            if e is not None and e.stat is not None and e.stat.mean == top:
                e.best = True
    return entries


def _reference_best(refs: list[dict], setting: Setting, method: str) -> dict | None:
    cands = [r for r in refs if (r["dataset"], r["noise_kind"], r["noise_rate"], r["method"])
             == (setting.dataset, setting.kind, setting.noise_rate, method)]
    if not cands:
        return None
    return min(cands, key=lambda r: (-r["test_acc"], abs(r["rate"]), r["rate"]))


# --------------------------------------------------------------------------- text tables


def _pct(x: float) -> str:
    return f"{100.0 * x:.2f}"


def _rate_label(method: str, rate: float | None, fmt: str) -> str:
    if method == "ce" or rate is None:
        return ""
    sym = "r" if method != "flip" else ("$\\varepsilon$" if fmt == "tex" else "ε")
    return f"{sym}={grid.fmt_rate(rate)}"


def entry_text(e: Entry | None, fmt: str = "md") -> str:
    """'85.23 ± 0.31 (r=0.4; 1/3 diverged)' in Markdown, LaTeX or plain text."""
    dash = {"md": "—", "tex": "--", "plain": ""}[fmt]
    if e is None:
        return dash
    if e.stat is None:
        return f"diverged ({e.n_diverged}/{e.n_seeds})" if e.n_diverged else "n/a"
    pm = " $\\pm$ " if fmt == "tex" else " ± "
    text = _pct(e.stat.mean) + (pm + _pct(e.stat.std) if e.stat.std is not None else "")
    notes = [n for n in (_rate_label(e.method, e.rate, fmt),
                         f"{e.n_diverged}/{e.n_seeds} diverged" if e.n_diverged else "") if n]
    if notes:
        text += " (" + "; ".join(notes) + ")"
    if e.best and fmt in ("md", "tex"):
        text = f"**{text}**" if fmt == "md" else f"\\textbf{{{text}}}"
    return text


def _ref_text(ref: dict | None, fmt: str) -> str:
    if ref is None:
        return {"md": "—", "tex": "--", "plain": ""}[fmt]
    label = _rate_label(ref["method"], ref["rate"], fmt)
    return ref["text"] + (f" ({label})" if label else "")


def _tex_escape(s: str) -> str:
    out = s
    for a, b in (("\\", "\\textbackslash{}"), ("_", "\\_"), ("%", "\\%"), ("&", "\\&"),
                 ("#", "\\#"), ("$", "\\$"), ("{", "\\{"), ("}", "\\}")):
        if a == "\\":
            out = out.replace(a, "\x00")
        else:
            out = out.replace(a, b)
    return out.replace("\x00", "\\textbackslash{}")


def _diverged_notes(setting: Setting) -> list[str]:
    notes = []
    for (m, r), cells in sorted(setting.cells.items(), key=lambda kv: (COLUMN_METHODS.index(kv[0][0]), kv[0][1])):
        n_div = sum(c["status"] == "diverged" for c in cells)
        if n_div:
            label = _rate_label(m, r, "plain")
            notes.append(f"{METHOD_LABELS[m]}{' ' + label if label else ''}: {n_div}/{len(cells)}")
    return notes


def _winner_label(entries: dict[str, Entry | None]) -> str:
    best = [e for e in entries.values() if e is not None and e.best]
    if not best:
        return "n/a"
    return " = ".join(METHOD_LABELS[e.method] + (f" ({_rate_label(e.method, e.rate, 'plain')})"
                                                 if e.method != "ce" else "") for e in best)


def _caption(selection: str, dataset: str, kind: str, has_ref: bool) -> str:
    metric, meaning = SELECTIONS[selection]
    text = (f"{dataset}, {kind} noise: test accuracy (%) under `{selection}` selection "
            f"({metric}): {meaning}. Mean ± std over seeds (sample std, ddof=1; one seed: mean only); "
            "diverged cells are excluded from the mean and counted. Best LS/NLS/flip rate per row "
            f"chosen by the mean {metric}. Bold: best method of the row.")
    if has_ref:
        text += " 'paper' columns: published numbers (the paper's own protocol and selection)."
    return text


def _md_tables(settings: dict[tuple[str, str], list[Setting]], refs: list[dict]) -> str:
    lines = ["# Results tables", "",
             "Generated by `smoothbench report` from results.csv. Test accuracy in %.", ""]
    for selection in SELECTIONS:
        lines += [f"## Selection: {selection} — {SELECTION_TITLES[selection]}", ""]
        for (ds, kind), sets in settings.items():
            has_ref = any(_reference_best(refs, s, m) for s in sets for m in COLUMN_METHODS)
            lines += [f"### {ds} / {kind} ({selection})", "", _caption(selection, ds, kind, has_ref), ""]
            head = ["noise rate"]
            for m in COLUMN_METHODS:
                head.append(METHOD_LABELS[m] if m == "ce" else f"best {METHOD_LABELS[m]}")
                if has_ref:
                    head.append(f"{METHOD_LABELS[m]} (paper)")
            lines.append("| " + " | ".join(head) + " |")
            lines.append("|" + "|".join("---" for _ in head) + "|")
            div_lines = []
            for s in sets:
                entries = table_row(s, selection)
                cells = [s.noise_rate]
                for m in COLUMN_METHODS:
                    cells.append(entry_text(entries[m], "md"))
                    if has_ref:
                        cells.append(_ref_text(_reference_best(refs, s, m), "md"))
                lines.append("| " + " | ".join(cells) + " |")
                notes = _diverged_notes(s)
                if notes:
                    div_lines.append(f"noise {s.noise_rate}: " + ", ".join(notes))
            lines.append("")
            lines.append("Diverged cells (seeds diverged/total): " + ("; ".join(div_lines) if div_lines else "none") + ".")
            if has_ref:
                sources = sorted({_reference_best(refs, s, m)["source"] for s in sets for m in COLUMN_METHODS
                                  if _reference_best(refs, s, m)})
                lines.append("Paper numbers from: " + "; ".join(sources) + ".")
            lines.append("")
    lines += ["## Does the ranking survive honest selection?", "",
              "Winner of each row (highest mean) under each selection.", ""]
    lines.append("| dataset | noise kind | noise rate | " + " | ".join(
        f"winner ({SELECTION_TITLES[s]})" for s in SELECTIONS) + " | same winner (best vs honest) |")
    lines.append("|" + "|".join("---" for _ in range(4 + len(SELECTIONS))) + "|")
    for (ds, kind), sets in settings.items():
        for s in sets:
            winners = {sel: _winner_label(table_row(s, sel)) for sel in SELECTIONS}
            same = "yes" if winners["best"] == winners["selected"] else "no"
            lines.append(f"| {ds} | {kind} | {s.noise_rate} | " + " | ".join(winners.values()) + f" | {same} |")
    lines.append("")
    return "\n".join(lines)


def _tex_tables(settings: dict[tuple[str, str], list[Setting]], refs: list[dict]) -> str:
    lines = ["% Generated by `smoothbench report` from results.csv; needs \\usepackage{booktabs}.", ""]
    for selection in SELECTIONS:
        for (ds, kind), sets in settings.items():
            has_ref = any(_reference_best(refs, s, m) for s in sets for m in COLUMN_METHODS)
            ncol = 1 + len(COLUMN_METHODS) * (2 if has_ref else 1)
            caption = _tex_escape(_caption(selection, ds, kind, has_ref).replace("`", "")).replace("±", "$\\pm$")
            lines += ["\\begin{table}[t]", "\\centering", "\\small",
                      f"\\caption{{{caption}}}",
                      f"\\label{{tab:{_label_id(ds)}-{_label_id(kind)}-{selection}}}",
                      "\\begin{tabular}{" + "l" * ncol + "}", "\\toprule"]
            head = ["noise rate"]
            for m in COLUMN_METHODS:
                head.append(METHOD_LABELS[m] if m == "ce" else f"best {METHOD_LABELS[m]}")
                if has_ref:
                    head.append(f"{METHOD_LABELS[m]} (paper)")
            lines.append(" & ".join(head) + " \\\\")
            lines.append("\\midrule")
            for s in sets:
                entries = table_row(s, selection)
                cells = [_tex_escape(s.noise_rate)]
                for m in COLUMN_METHODS:
                    cells.append(entry_text(entries[m], "tex"))
                    if has_ref:
                        cells.append(_ref_text(_reference_best(refs, s, m), "tex"))
                lines.append(" & ".join(cells) + " \\\\")
            lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)


def _label_id(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in s)


TABLE_CSV_COLUMNS = ["dataset", "noise_kind", "noise_rate", "selection", "method", "rate",
                     "test_acc_mean_pct", "test_acc_std_pct", "n_used", "n_seeds", "n_diverged",
                     "best", "text", "paper_rate", "paper_test_acc_pct", "paper_source"]


def _csv_table(settings: dict[tuple[str, str], list[Setting]], refs: list[dict], selection: str) -> str:
    rows = []
    for (ds, kind), sets in settings.items():
        for s in sets:
            entries = table_row(s, selection)
            for m in COLUMN_METHODS:
                e = entries[m]
                if e is None:
                    continue
                ref = _reference_best(refs, s, m)
                st = e.stat
                rows.append([
                    ds, kind, s.noise_rate, selection, m,
                    e.rate if e.rate is not None else None,
                    f"{100 * st.mean:.4f}" if st else None,
                    f"{100 * st.std:.4f}" if st and st.std is not None else None,
                    st.n_ok if st else 0, e.n_seeds, e.n_diverged, int(e.best),
                    entry_text(e, "plain"),
                    ref["rate"] if ref else None, ref["text"] if ref else None, ref["source"] if ref else None,
                ])
    return _csv_text(TABLE_CSV_COLUMNS, rows)


# --------------------------------------------------------------------------- summary and findings


def _summary(settings: dict[tuple[str, str], list[Setting]]) -> dict:
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


def _entry_name(e: Entry) -> str:
    label = _rate_label(e.method, e.rate, "plain")
    return METHOD_LABELS[e.method] + (f" ({label})" if label else "")


def _selection_sentence(s: Setting, selection: str) -> str:
    entries = table_row(s, selection)
    usable = [e for e in entries.values() if e is not None and e.stat is not None]
    if not usable:
        return f"{SELECTION_TITLES[selection]}: no usable cell."
    winners = [e for e in usable if e.best]
    w = winners[0]
    parts = [f"{SELECTION_TITLES[selection]}: best is {' = '.join(_entry_name(x) for x in winners)} "
             f"at {_pct(w.stat.mean)}%"]
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
                gaps.append(f"{_entry_name(e)} {_pts(gap)} points vs CE{within}")
        parts.append(f"CE {_pct(ce.stat.mean)}%" + (("; " + "; ".join(gaps)) if gaps else ""))
    elif ce is not None:
        parts.append("CE diverged in every seed")
    return "; ".join(parts) + "."


def _flip_checks(s: Setting, selection: str) -> list[str]:
    """Flip ε against LS at r = εK/(K−1) where the grid has that LS rate."""
    metric = SELECTIONS[selection][0]
    K = s.num_classes
    out = []
    for eps in s.rates("flip"):
        r_eq = eps * K / (K - 1)
        match = [r for r in s.rates("ls") + s.rates("ce") if math.isclose(r, r_eq, rel_tol=1e-6, abs_tol=1e-9)]
        if not match:
            continue
        method = "ce" if match[0] == 0 else "ls"
        f_st = s.stat("flip", eps, metric)
        l_st = s.stat(method, match[0], metric)
        if f_st.mean is None or l_st.mean is None:
            continue
        out.append(f"flip ε={grid.fmt_rate(eps)} vs LS r={grid.fmt_rate(match[0])}: "
                   f"{_pct(f_st.mean)}% vs {_pct(l_st.mean)}% ({_pts(f_st.mean - l_st.mean)} points)")
    return out


def _warmup_checkpoints(rows: list[dict], curve_rows: list[dict]) -> dict[tuple[str, str], dict[str, int]]:
    """Per (dataset, noise kind): how many cells took their best-on-test / honest checkpoint
    from the shared CE warm-up (where every method of a group is the same model)."""
    last_warm: dict[tuple, int] = {}
    for rec in curve_rows:
        if rec["phase"] == "warmup":
            key = (rec["dataset"], rec["noise_kind"], rec["noise_rate"], rec["seed"])
            last_warm[key] = max(last_warm.get(key, 0), rec["epoch"])
    out: dict[tuple[str, str], dict[str, int]] = {}
    for row in rows:
        w = last_warm.get((row["dataset"], row["noise_kind"], row["noise_rate"], row["seed"]), 0)
        c = out.setdefault((row["dataset"], row["noise_kind"]), {"cells": 0, "best": 0, "selected": 0})
        c["cells"] += 1
        for sel, col in (("best", "best_epoch"), ("selected", "selected_epoch")):
            c[sel] += row[col] is not None and row[col] <= w
    return out


def _findings(settings: dict[tuple[str, str], list[Setting]],
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
            w_best = _winner_label(table_row(s, "best"))
            w_sel = _winner_label(table_row(s, "selected"))
            if w_best == w_sel:
                lines.append(f"  - The winner is the same under both selections ({w_best}).")
            else:
                lines.append(f"  - The winner changes under honest selection: {w_best} (best-on-test) "
                             f"→ {w_sel} (honest).")
            notes = _diverged_notes(s)
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
                    trail.append(f"r={grid.fmt_rate(min(cands)[2])} at noise {s.noise_rate}")
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


# --------------------------------------------------------------------------- figures


def _rc() -> dict:
    import seaborn as sns

    rc = dict(sns.axes_style("whitegrid"))
    rc.update({
        "svg.hashsalt": "smoothbench",
        "svg.fonttype": "path",
        "font.family": "DejaVu Sans",
        "font.size": 7,
        "axes.titlesize": 8,
        "axes.labelsize": 7,
        "legend.fontsize": 6,
        "xtick.labelsize": 6,
        "ytick.labelsize": 6,
        "figure.dpi": DPI,
        "savefig.dpi": DPI,
        "image.cmap": "viridis",
    })
    return rc


def _new_figure(width: float, height: float, nrows: int = 1, ncols: int = 1, *, left: float = 0.5,
                right: float = 0.15, bottom: float = 0.42, top: float = 0.45, wspace: float = 0.3,
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


LEGEND_WIDTH = 0.95  # inches kept free on the right for a figure legend
# panels of the accuracy figures: the reference's choice, the honest one, and the last epoch
# (with a shared warm-up the first two often pick a warm-up checkpoint; the last shows each method's phase)
FIGURE_SELECTIONS = ("best", "selected", "final")


def _save(fig, out_dir: Path, stem: str) -> None:
    for ext in FIGURE_FORMATS:
        with atomic_path(out_dir / f"{stem}.{ext}") as tmp:
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

    handles = [Line2D([], [], color=c, lw=1, marker="o", ms=3, label=f"noise {s.noise_rate}")
               for c, s in zip(colors, sets)]
    fig.legend(handles=handles + (extra or []), loc="center right", frameon=False,
               bbox_to_anchor=(1.0, 0.5))


def _gls_points(s: Setting, metric: str) -> tuple[list[float], list[float], list[float], list[float]]:
    """(rates, means, stds, all-diverged rates) of the CE/LS/NLS cells of a setting, in %."""
    xs, ys, es, dead = [], [], [], []
    for r in sorted(s.rates("ce") + s.rates("ls") + s.rates("nls")):
        m = "ce" if r == 0 else ("ls" if r > 0 else "nls")
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
    """x axis of smooth rates: symlog beyond |r| > 1, NLS side shaded red, LS side blue."""
    from matplotlib.ticker import NullLocator

    lo, hi = min(rates + [-0.1]), max(rates + [0.1])
    if max(-lo, hi) > 1.0:
        ax.set_xscale("symlog", linthresh=1.0)
        left = lo * 1.2 if lo < -1 else lo - 0.1
        right = hi * 1.2 if hi > 1 else hi + 0.1
    else:
        pad = 0.06 * (hi - lo)
        left, right = lo - pad, hi + pad
    if shade:
        ax.axvspan(left, 0, color="tab:red", alpha=0.07, lw=0)
        ax.axvspan(0, right, color="tab:blue", alpha=0.07, lw=0)
        ax.text(0.02, 0.97, "NLS (r<0)", transform=ax.transAxes, ha="left", va="top", fontsize=6,
                color="tab:red")
        ax.text(0.98, 0.97, "LS (r>0)", transform=ax.transAxes, ha="right", va="top", fontsize=6,
                color="tab:blue")
    ax.axvline(0, color="0.3", lw=0.8, ls=":")
    ax.set_xlim(left, right)
    ticks = sorted(set(rates) | {0.0})
    ax.set_xticks(ticks, [grid.fmt_rate(r) for r in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    if len(ticks) > 7:
        ax.tick_params(axis="x", labelrotation=90, labelsize=5)


def _all_gls_rates(sets: list[Setting]) -> list[float]:
    return sorted({r for s in sets for m in ("ce", "ls", "nls") for r in s.rates(m)})


def _errorbars(ax, xs, ys, es, color, **kw) -> None:
    ax.errorbar(xs, ys, yerr=es, color=color, ms=3, lw=1, capsize=2, elinewidth=0.8, **kw)


def _fig_acc_vs_rate(ds: str, kind: str, sets: list[Setting], out: Path) -> None:
    from matplotlib.lines import Line2D

    fig, axes = _new_figure(9.4, 2.6, 1, 3, right=LEGEND_WIDTH, top=0.5)
    colors = _palette(len(sets))
    rates = _all_gls_rates(sets)
    for ax, selection in zip(axes, FIGURE_SELECTIONS):
        metric = SELECTIONS[selection][0]
        any_data = False
        for color, s in zip(colors, sets):
            xs, ys, es, dead = _gls_points(s, metric)
            if xs:
                any_data = True
                _errorbars(ax, xs, ys, es, color, marker="o")
            if dead:
                ax.plot(dead, [0.04] * len(dead), ls="none", marker="x", ms=4, color=color,
                        transform=ax.get_xaxis_transform())
        if rates:
            _rate_axis(ax, rates)
        if not any_data:
            _no_data(ax)
        ax.set_title(f"{SELECTION_TITLES[selection]} ({metric})")
        ax.set_xlabel("smooth rate r (CE at r = 0)")
    axes[0].set_ylabel("test accuracy (%)")
    _noise_legend(fig, sets, colors, [Line2D([], [], color="0.3", ls="none", marker="x", ms=4,
                                             label="all seeds\ndiverged")])
    fig.suptitle(f"{ds} / {kind}: test accuracy vs smooth rate (mean ± std over seeds)", fontsize=8)
    _save(fig, out, f"fig_acc_vs_rate_{ds}_{kind}")


def _fig_heatmap(ds: str, kind: str, sets: list[Setting], out: Path) -> None:
    import numpy as np
    import seaborn as sns

    rates = _all_gls_rates(sets)
    width = min(9.0, max(3.6, 0.42 * len(rates) + 1.6))
    panel_h = 0.22 * len(sets) + 0.3
    fig, axes = _new_figure(width, 3 * panel_h + 2.2, 3, 1, left=0.55, right=0.1, top=0.45,
                            bottom=0.4, hspace=0.9)
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
                        annot_kws={"size": 5}, cbar_kws={"pad": 0.02},
                        xticklabels=[grid.fmt_rate(r) for r in rates],
                        yticklabels=[s.noise_rate for s in sets], linewidths=0.3, linecolor="white")
            for i, j in dead:
                ax.text(j + 0.5, i + 0.5, "div", ha="center", va="center", fontsize=5, color="tab:red")
            ax.tick_params(axis="y", rotation=0)
            ax.grid(False)
        else:
            _no_data(ax)
        ax.set_title(f"{SELECTION_TITLES[selection]} ({metric})")
        ax.set_ylabel("noise rate")
    axes[-1].set_xlabel("smooth rate r")
    fig.suptitle(f"{ds} / {kind}: mean test accuracy (%), noise rate × r (div: all seeds diverged)",
                 fontsize=8)
    _save(fig, out, f"fig_heatmap_{ds}_{kind}")


def _fig_metric_vs_rate(ds: str, kind: str, sets: list[Setting], out: Path, stem: str,
                        series: list[tuple[str, str]], ylabel: str, title: str) -> None:
    from matplotlib.lines import Line2D

    fig, axes = _new_figure(4.4, 2.6, right=LEGEND_WIDTH + 0.25, top=0.35)
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
        extra = [Line2D([], [], color="0.3", ls=st, marker=mk, ms=3, lw=1, label=lab)
                 for (_, lab), st, mk in zip(series, styles, markers)]
    _noise_legend(fig, sets, colors, extra)
    ax.set_xlabel("smooth rate r (CE at r = 0)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{ds} / {kind}: {title}")
    _save(fig, out, f"{stem}_{ds}_{kind}")


def _fig_flip_vs_ls(ds: str, kind: str, sets: list[Setting], out: Path) -> None:
    from matplotlib.lines import Line2D

    fig, axes = _new_figure(9.4, 2.6, 1, 3, right=LEGEND_WIDTH, top=0.5)
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
                    fx.append(eps * K / (K - 1))
                    fy.append(100 * st.mean)
                    fe.append(100 * st.std if st.std is not None else 0.0)
            if fx:
                any_data = True
                _errorbars(ax, fx, fy, fe, color, marker="s", mfc="none", ls="none")
            xs_all += xs + fx
        if not any_data:
            _no_data(ax)
        ax.set_title(f"{SELECTION_TITLES[selection]} ({metric})")
        ax.set_xlabel("r (LS)  =  εK/(K−1) (flip)")
    axes[0].set_ylabel("test accuracy (%)")
    extra = [Line2D([], [], color="0.3", marker="o", ms=3, lw=1, label="LS / CE (r)"),
             Line2D([], [], color="0.3", marker="s", mfc="none", ms=3, ls="none", label="flip (ε)")]
    _noise_legend(fig, sets, colors, extra)
    fig.suptitle(f"{ds} / {kind}: label flipping at ε vs LS at r = εK/(K−1) (equal in expectation)",
                 fontsize=8)
    _save(fig, out, f"fig_flip_vs_ls_{ds}_{kind}")


def _fig_curves(ds: str, kind: str, sets: list[Setting], curves: dict, out: Path) -> None:
    from matplotlib.ticker import MaxNLocator

    n = max(len(sets), 1)
    ncols = min(n, 3)
    nrows = (n + ncols - 1) // ncols
    fig, axes = _new_figure(2.2 * ncols + 0.7, 1.9 * nrows + 0.6, nrows, ncols, top=0.5, wspace=0.35)
    styles = {"ce": ("0.2", "-"), "ls": ("tab:blue", "-"), "nls": ("tab:red", "-"), "flip": ("tab:green", "--")}
    for ax in axes[len(sets):]:
        ax.set_axis_off()
    if not sets:
        _no_data(axes[0])
    for i, (ax, s) in enumerate(zip(axes, sets)):
        entries = table_row(s, "best")
        any_data = False
        warm_end = 0
        for m in COLUMN_METHODS:
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
            ax.plot(ep, [100 * statistics.fmean(per_epoch[k]) for k in ep], color=color, ls=style, lw=1,
                    label=_entry_name(e))
        if warm_end:
            ax.axvspan(0.5, warm_end + 0.5, color="0.8", alpha=0.5, lw=0)
        if any_data:
            ax.legend(loc="lower right", fontsize=5)
        else:
            _no_data(ax)
        ax.set_title(f"noise {s.noise_rate}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if i // ncols == nrows - 1:
            ax.set_xlabel("epoch (grey: warm-up)")
        if i % ncols == 0:
            ax.set_ylabel("test accuracy (%)")
    fig.suptitle(f"{ds} / {kind}: test accuracy per epoch, mean over non-diverged seeds "
                 "(rates: best-on-test choice)", fontsize=7)
    _save(fig, out, f"fig_curves_{ds}_{kind}")


def _figures(settings: dict[tuple[str, str], list[Setting]], curves: dict, out: Path) -> None:
    import matplotlib

    with matplotlib.rc_context(_rc()):
        for (ds, kind), sets in settings.items():
            _fig_acc_vs_rate(ds, kind, sets, out)
            _fig_heatmap(ds, kind, sets, out)
            _fig_metric_vs_rate(ds, kind, sets, out, "fig_memorisation",
                                [("clean_train_acc", "vs clean labels"),
                                 ("noisy_train_acc", "vs noisy labels")],
                                "final training accuracy (%)", "memorisation")
            _fig_metric_vs_rate(ds, kind, sets, out, "fig_calibration", [("ece", "ECE")],
                                "ECE × 100 (15 bins, final epoch)", "calibration")
            _fig_flip_vs_ls(ds, kind, sets, out)
            _fig_curves(ds, kind, sets, curves, out)


# --------------------------------------------------------------------------- entry points


def report_files(pairs: Iterable[tuple[str, str]]) -> list[str]:
    """The file names (relative to the report folder) written for these (dataset, kind) pairs."""
    names = list(TEXT_FILES)
    for ds, kind in sorted(set((str(d), str(k)) for d, k in pairs)):
        for fig in FIGURES:
            for ext in FIGURE_FORMATS:
                names.append(f"fig_{fig}_{ds}_{kind}.{ext}")
    return names


def build_reports(results_csv: str | os.PathLike, curves_csv: str | os.PathLike,
                  out_dir: str | os.PathLike, reference_dir: str | os.PathLike | None = None) -> list[str]:
    """Write tables, figures, summary.json and findings.md into ``out_dir``; return their paths."""
    rows = read_results(results_csv)
    if not rows:
        raise ValueError(f"{results_csv}: no cells")
    curve_rows = _read_csv(curves_csv, CURVES_OUT_COLUMNS, "curves")
    curves: dict[tuple, list[dict]] = {}
    for rec in curve_rows:
        curves.setdefault(tuple(rec[k] for k in KEY_COLUMNS), []).append(rec)
    refs = read_references(reference_dir)
    settings = _settings(rows)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    write_text(out / "tables.md", _md_tables(settings, refs))
    write_text(out / "tables.tex", _tex_tables(settings, refs))
    for selection in SELECTIONS:
        write_text(out / f"table_{selection}.csv", _csv_table(settings, refs, selection))
    write_json(out / "summary.json", _summary(settings))
    write_text(out / "findings.md", _findings(settings, _warmup_checkpoints(rows, curve_rows)))
    _figures(settings, curves, out)
    return [str(out / name) for name in report_files(settings.keys())]
