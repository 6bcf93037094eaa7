"""Results collector: group outputs -> the tidy results and curves tables; reading them back.

``collect`` gathers the cells of finished groups (``group.json`` plus each cell's
``curves.csv``, and the group's per-test-sample correctness ``test_correct.npz``) into two
tidy CSV files, one row per cell (``results.csv``, with the held-out accuracy of each cell's
last epoch read off its curves: ``val_acc_final``) and one row per cell and epoch
(``curves.csv``), and one array file (``test_correct.npz``: per row of results.csv and
selection, the cell's correctness on each test sample, 8 a byte). ``read_results`` /
``read_curves`` / ``read_test_correct`` read them back with their types,
``read_references`` the published reference numbers.

Conventions (fixed, so that rebuilt files are byte-identical): CSV files are written
with the ``csv`` module, ``\\n`` line ends; floats as Python's ``repr`` (shortest text
that reads back to the same float), integers as integers, missing values (JSON
``null``) as empty fields, non-finite floats as ``nan``/``inf``.

Published reference numbers are CSV files (columns ``dataset, noise_kind, noise_rate,
method, rate, test_acc, std, selection, confidence, source``; ``test_acc`` and ``std``
in percent exactly as printed, ``selection`` the checkpoint choice the number uses
(``best``: best clean-test epoch; ``final``: last epoch), ``confidence`` ``high`` or
``low``, ``source`` naming paper, table and page). They are read from ``reference_dir``
when given, else from the package's ``references/`` folder.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from pathlib import Path
from typing import Iterable

from .. import methods as registry
from ..core.vocabulary import (CELL_METRIC_COLUMNS, CURVE_COLUMNS, CURVES_OUT_COLUMNS, FLOAT_COLUMNS, INT_COLUMNS,
                               KEY_COLUMNS, RESULT_COLUMNS, STATUSES, TEST_CORRECT_FILE, VARIANT_PATTERN, Cell,
                               fmt_rate)
from ..core.files import read_json, write_npz, write_text
from ..core.selection import SELECTIONS

SELECTION_NAMES = tuple(SELECTIONS)

REFERENCE_COLUMNS = ["dataset", "noise_kind", "noise_rate", "method", "rate", "test_acc", "std", "selection",
                     "confidence", "source"]
REFERENCE_CONFIDENCE = ("high", "low")
PACKAGE_REFERENCE_DIR = Path(__file__).resolve().parent / "references"


# --------------------------------------------------------------------------- helpers


def fmt_value(value: object) -> str:
    """Deterministic text of one CSV field (NumPy scalars as the Python numbers they hold)."""
    if value is None:
        return ""
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    return str(value)


def csv_text(header: list[str], rows: Iterable[Iterable[object]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow([fmt_value(v) for v in row])
    return buf.getvalue()


def rate_key(noise_rate: str) -> tuple:
    """Sort key of a noise rate's text: numbers by value first, then names."""
    try:
        return (0, float(noise_rate), "")
    except ValueError:
        return (1, 0.0, noise_rate)


def _row_key(row: dict) -> tuple:
    return (row["dataset"], row["noise_kind"], rate_key(row["noise_rate"]), row["seed"], row["variant"],
            registry.order(row["method"]), row["values"])


def checked_cell(method: str, params: str, where: str) -> Cell:
    """The cell of a method and its parameters' text (``alpha=0.1;beta=1``), checked against
    the registry; ValueError naming ``where``."""
    try:
        m = registry.get(method)
        return registry.cell(m, m.parse_params_text(params))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


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


TEXT_COLUMNS = frozenset({"status", "branch"})  # text metrics of a cell (branch: null for direct variants)


def _parse_field(column: str, text: str, what: str) -> object:
    """Parse one CSV field by its column's type ('' is missing)."""
    if column in INT_COLUMNS:
        return None if text == "" else _as_int(text, what)
    if column in FLOAT_COLUMNS:
        return None if text == "" else _as_float(text, what)
    if column == "branch":
        return None if text == "" else text
    return text


def _with_values(row: dict, where: str) -> dict:
    """A row read back from CSV with its cell's parameter values (``values``) from ``params``."""
    row["values"] = checked_cell(row["method"], row["params"], where).values
    return row


# --------------------------------------------------------------------------- collect


def read_group(path: Path) -> tuple[list[dict], list[dict]]:
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
        "noise_rate": fmt_rate(group["noise_rate"]),
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
        for key in ("variant", "cell_id", "method", "params", "rate") + CELL_METRIC_COLUMNS:
            if key not in cell:
                raise ValueError(f"{where}: key {key!r} is missing")
        variant = str(cell["variant"])
        if not re.match(VARIANT_PATTERN, variant):
            raise ValueError(f"{where}: variant {variant!r} must match {VARIANT_PATTERN}")
        method = str(cell["method"])
        c = checked_cell(method, str(cell["params"] or ""), where)
        cell_id = str(cell["cell_id"])
        if cell_id != c.id:
            raise ValueError(f"{where}: cell_id {cell_id!r} does not match method/params ({c.id!r})")
        if cell["status"] not in STATUSES:
            raise ValueError(f"{where}: status {cell['status']!r} is not one of {', '.join(STATUSES)}")
        row = dict(base, variant=variant, method=method, params=registry.params_text(c), rate=c.rate,
                   cell_id=cell_id, values=c.values)
        for key in CELL_METRIC_COLUMNS:
            value = cell[key]
            if key in TEXT_COLUMNS:
                row[key] = None if value is None else str(value)
            elif key in INT_COLUMNS:
                row[key] = _as_int(value, f"{where}: {key}")
            else:
                row[key] = _as_float(value, f"{where}: {key}")
        row["num_classes"] = num_classes
        row["realised_noise_rate"] = realised
        curves = _read_cell_curves(path.parent / "cells" / variant / cell_id / "curves.csv", row)
        row["val_acc_final"] = max(curves, key=lambda r: r["epoch"])["val_acc"]
        rows.append(row)
        curve_rows.extend(curves)
    _attach_test_correct(path.parent / TEST_CORRECT_FILE, rows)
    return rows, curve_rows


def _attach_test_correct(path: Path, rows: list[dict]) -> None:
    """Each row's per-test-sample correctness (``correct``: (selections, bytes) uint8, ``has``,
    ``test_samples``) from its group's test_correct.npz (ValueError naming the file)."""
    import numpy as np

    if not path.is_file():
        raise ValueError(f"{path}: per-test-sample correctness file is missing")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("variant", "cell_id", "selections", "test_samples", "bits", "has")}
    except Exception as exc:  # truncated, corrupted, a key missing
        raise ValueError(f"{path}: not a readable correctness file ({type(exc).__name__}: {exc})") from None
    if list(arrays["selections"]) != list(SELECTION_NAMES):
        raise ValueError(f"{path}: selections {list(arrays['selections'])}; expected {list(SELECTION_NAMES)}")
    n = int(arrays["test_samples"])
    width = -(-n // 8)
    index = {(str(v), str(c)): i for i, (v, c) in enumerate(zip(arrays["variant"], arrays["cell_id"]))}
    if arrays["bits"].shape != (len(index), len(SELECTION_NAMES), width) or arrays["has"].shape != (
            len(index), len(SELECTION_NAMES)):
        raise ValueError(f"{path}: arrays of the wrong shape for {len(index)} cells and {n} test samples")
    for row in rows:
        i = index.get((row["variant"], row["cell_id"]))
        if i is None:
            raise ValueError(f"{path}: no correctness of cell {row['variant']}/{row['cell_id']}")
        row["correct"], row["has_correct"], row["test_samples"] = arrays["bits"][i], arrays["has"][i], n


def _read_cell_curves(path: Path, row: dict) -> list[dict]:
    keys = {k: row[k] for k in KEY_COLUMNS + ("cell_id", "values")}
    out = [{**keys, **rec} for rec in read_csv(path, CURVE_COLUMNS, "curves")]
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
            curves_out: str | os.PathLike, correct_out: str | os.PathLike | None = None) -> None:
    """Gather the cells of ``group.json`` files into ``results.csv`` and ``curves.csv``, and
    their per-test-sample correctness into ``correct_out`` (default: ``test_correct.npz``
    beside ``results_out``).

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
        g_rows, g_curves = read_group(path)
        for row in g_rows:
            key = tuple(row[k] for k in KEY_COLUMNS)
            if key in seen:
                desc = ", ".join(f"{k}={fmt_value(v)}" for k, v in zip(KEY_COLUMNS, key))
                raise ValueError(f"duplicate cell ({desc}) in {seen[key]} and {path}")
            seen[key] = path
        rows.extend(g_rows)
        curve_rows.extend(g_curves)
    rows.sort(key=_row_key)
    curve_rows.sort(key=lambda r: (_row_key(r), r["epoch"]))
    by_dataset: dict[str, int] = {}
    for row in rows:
        if by_dataset.setdefault(row["dataset"], row["test_samples"]) != row["test_samples"]:
            raise ValueError(f"dataset {row['dataset']}: its groups have test sets of different sizes "
                             f"({by_dataset[row['dataset']]} and {row['test_samples']} samples)")
    results_text = csv_text(RESULT_COLUMNS, ([r[c] for c in RESULT_COLUMNS] for r in rows))
    curves_text = csv_text(CURVES_OUT_COLUMNS, ([r[c] for c in CURVES_OUT_COLUMNS] for r in curve_rows))
    write_text(results_out, results_text)
    write_text(curves_out, curves_text)
    write_npz(Path(results_out).with_name(TEST_CORRECT_FILE) if correct_out is None else correct_out,
              _correct_arrays(rows))


def row_key(row: dict) -> str:
    """A result row's coordinates as one text (what test_correct.npz names its rows by)."""
    return "|".join(fmt_value(row[k]) for k in KEY_COLUMNS)


def _correct_arrays(rows: list[dict]) -> dict:
    import numpy as np

    width = max(r["correct"].shape[-1] for r in rows)
    bits = np.zeros((len(rows), len(SELECTION_NAMES), width), dtype=np.uint8)
    for i, r in enumerate(rows):
        bits[i, :, :r["correct"].shape[-1]] = r["correct"]
    return {"row": np.array([row_key(r) for r in rows]), "selections": np.array(SELECTION_NAMES),
            "test_samples": np.array([r["test_samples"] for r in rows], dtype=np.int64),
            "has": np.array([r["has_correct"] for r in rows], dtype=bool), "bits": bits}


# --------------------------------------------------------------------------- reading


def read_csv(path: str | os.PathLike, columns: Iterable[str], what: str) -> list[dict]:
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
    rows = read_csv(path, RESULT_COLUMNS, "results")
    for i, row in enumerate(rows, start=2):
        if row["status"] not in STATUSES:
            raise ValueError(f"{path}: line {i}: status {row['status']!r} is not one of {', '.join(STATUSES)}")
        if row["seed"] is None:
            raise ValueError(f"{path}: line {i}: bad cell coordinates")
        _with_values(row, f"{path}: line {i}")
    return rows


def read_test_correct(path: str | os.PathLike, rows: list[dict]) -> dict:
    """test_correct.npz, checked against the rows of results.csv it belongs to (ValueError
    naming the file): ``bits`` (rows, selections, bytes), ``has`` (rows, selections),
    ``test_samples`` (rows,), ``selections``."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: per-test-sample correctness file is missing")
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in ("row", "selections", "test_samples", "has", "bits")}
    except Exception as exc:
        raise ValueError(f"{path}: not a readable correctness file ({type(exc).__name__}: {exc})") from None
    if list(out["selections"]) != list(SELECTION_NAMES) or len(out["row"]) != len(rows) or \
            any(str(k) != row_key(r) for k, r in zip(out["row"], rows)):
        raise ValueError(f"{path}: not the correctness of the cells of the results table beside it "
                         "(collect writes both)")
    return out


def read_curves(path: str | os.PathLike) -> dict[tuple, list[dict]]:
    """curves.csv -> {cell coordinates (KEY_COLUMNS values): its rows in epoch order}."""
    curves: dict[tuple, list[dict]] = {}
    for rec in read_csv(path, CURVES_OUT_COLUMNS, "curves"):
        curves.setdefault(tuple(rec[k] for k in KEY_COLUMNS), []).append(rec)
    return curves


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
                    m = registry.get(method)
                    registry.cell(m, (rate,) + m.defaults[1:] if m.params else ())
                except ValueError as exc:
                    raise ValueError(f"{where}: {exc}") from None
                text = rec["test_acc"].strip()
                acc = _as_float(text, f"{where}: test_acc")
                if acc is None or not 0.0 <= acc <= 100.0:
                    raise ValueError(f"{where}: test_acc must be a percentage in [0, 100], got {text!r}")
                if not rec["source"].strip():
                    raise ValueError(f"{where}: source is empty (name paper, table and page)")
                std = rec["std"].strip()
                if std:
                    _as_float(std, f"{where}: std")
                selection, confidence = rec["selection"].strip(), rec["confidence"].strip()
                if selection not in SELECTION_NAMES:
                    raise ValueError(f"{where}: selection {selection!r}; allowed: {', '.join(SELECTION_NAMES)}")
                if confidence not in REFERENCE_CONFIDENCE:
                    raise ValueError(f"{where}: confidence {confidence!r}; allowed: {', '.join(REFERENCE_CONFIDENCE)}")
                ref = {
                    "dataset": rec["dataset"].strip(), "noise_kind": rec["noise_kind"].strip(),
                    "noise_rate": fmt_rate(rec["noise_rate"].strip()), "method": method,
                    "rate": rate, "test_acc": acc, "text": text, "std": std, "selection": selection,
                    "confidence": confidence, "source": rec["source"].strip(),
                }
                key = (ref["dataset"], ref["noise_kind"], ref["noise_rate"], method, rate, selection)
                if key in seen:
                    raise ValueError(f"{where}: reference for {key} also in {seen[key]}")
                seen[key] = path
                refs.append(ref)
    return refs
