"""Hand-made group outputs for the collector, table and report tests: known numbers,
so every figure in the tables can be checked by hand."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from smoothbench.core import vocabulary as vocab
from smoothbench import methods as registry

K = 10

# Hand-made numbers: (noise_rate) -> {(method, rate): [(status, best, selected), per seed]}
D = "diverged"
TOY = {
    "0.2": {
        ("ce", 0.0): [("ok", 0.80, 0.79), ("ok", 0.80, 0.79)],
        ("ls", 0.2): [("ok", 0.85, 0.84), ("ok", 0.85, 0.84)],
        ("ls", 0.4): [("ok", 0.82, 0.81), ("ok", 0.82, 0.81)],
        ("nls", -0.4): [("ok", 0.78, 0.77), ("ok", 0.78, 0.77)],
        ("nls", -1.0): [("ok", 0.70, 0.69), ("ok", 0.70, 0.69)],
        ("flip", 0.18): [("ok", 0.84, 0.83), ("ok", 0.84, 0.83)],
    },
    "0.6": {
        ("ce", 0.0): [("ok", 0.50, 0.50), ("ok", 0.52, 0.50)],
        ("ls", 0.2): [("ok", 0.53, 0.45), ("ok", 0.55, 0.45)],
        ("ls", 0.4): [("ok", 0.56, 0.44), ("ok", 0.58, 0.44)],
        ("nls", -0.4): [("ok", 0.60, 0.40), ("ok", 0.62, 0.40)],
        # all seeds diverged; the frozen figures are high but must never count
        ("nls", -1.0): [(D, 0.90, 0.90), (D, 0.90, 0.90)],
        # one of two seeds diverged
        ("flip", 0.18): [(D, 0.99, 0.99), ("ok", 0.55, 0.43)],
    },
}


def metrics(method: str, rate: float, status: str, best: float, selected: float, variant: str = "direct") -> dict:
    cell = registry.cell(method, (rate,))
    return {
        "variant": variant, "cell_id": cell.id, "method": method, "rate": rate,
        "params": registry.params_text(cell),
        "branch": None if variant == "direct" else "last", "branch_epoch": None if variant == "direct" else 1,
        "status": status, "diverged_epoch": 2 if status == D else None, "epochs": 3,
        "test_acc_final": round(selected - 0.02, 6), "test_acc_best": best, "best_epoch": 2,
        "test_acc_selected": selected, "selected_epoch": 3, "val_acc_selected": 0.5,
        "clean_train_acc": round(0.9 - rate / 10, 6), "noisy_train_acc": round(0.6 + rate / 10, 6),
        "test_nll": 1.25, "ece": round(0.05 + abs(rate) / 20, 6), "train_loss": 0.75,
        "transition_mae": None, "noise_rate_hat": None,
    }


def _realised(noise_rate: str) -> float | None:
    try:
        return round(float(noise_rate) - 0.003, 6)
    except ValueError:  # a human label-set name
        return None


def write_group(root: Path, dataset: str, kind: str, noise_rate: str, seed: int,
                cells: list[dict], skip_curves: str | None = None) -> Path:
    gdir = root / dataset / f"{kind}-{noise_rate}" / f"seed{seed}"
    for c in cells:
        if c["cell_id"] == skip_curves:
            continue
        cdir = gdir / "cells" / c["variant"] / c["cell_id"]
        cdir.mkdir(parents=True, exist_ok=True)
        lines = [",".join(vocab.CURVE_COLUMNS)]
        for ep, phase in ((1, "warmup"), (2, "main"), (3, "main")):
            acc = c["test_acc_best"] - 0.01 * (3 - ep)
            lines.append(f"{ep},{phase},0.1,{1.0 / ep},0.5,0.6,0.55,{acc},1.5,0.1")
        (cdir / "curves.csv").write_text("\n".join(lines) + "\n")
    gdir.mkdir(parents=True, exist_ok=True)
    group = {"group_id": f"{dataset}-{kind}-{noise_rate}-s{seed}", "dataset": dataset,
             "noise_kind": kind, "noise_rate": noise_rate, "seed": seed, "num_classes": K,
             "realised_noise_rate": _realised(noise_rate), "protocol": {"epochs": 3},
             "device": "cpu", "cells": cells}
    path = gdir / "group.json"
    path.write_text(json.dumps(group))
    return path


def write_toy(root: Path, dataset: str = "toy", kind: str = "symmetric", data: dict = TOY,
              variants: dict[str, float] | None = None) -> list[Path]:
    """The TOY groups; ``variants`` (name -> offset added to every accuracy) writes one set of
    cells per variant (default: one variant, ``direct``, unchanged numbers)."""
    paths = []
    for noise_rate, cells in data.items():
        nseeds = len(next(iter(cells.values())))
        for seed in range(nseeds):
            cell_metrics = [metrics(m, r, st, round(b + off, 6), round(sel + off, 6), variant)
                            for variant, off in (variants or {"direct": 0.0}).items()
                            for (m, r), per_seed in cells.items() for st, b, sel in [per_seed[seed]]]
            paths.append(write_group(root, dataset, kind, noise_rate, seed, cell_metrics))
    return paths


def write_refs(folder: Path) -> Path:
    """A fixture reference file (made-up numbers, only to test the mechanism)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fixture.csv").write_text(
        "dataset,noise_kind,noise_rate,method,rate,test_acc,std,selection,confidence,source\n"
        "toy,symmetric,0.6,ce,0,48.50,,best,high,fixture table 1 p. 1\n"
        "toy,symmetric,0.6,nls,-0.2,59.00,,best,high,fixture table 1 p. 1\n"
        "toy,symmetric,0.6,nls,-0.4,60.25,0.30,best,high,fixture table 1 p. 1\n"
        "toy,symmetric,0.6,ce,0,45.00,,final,low,fixture summary\n")
    return folder


def read_csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
