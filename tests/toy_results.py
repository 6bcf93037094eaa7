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


def metrics(method: str, rate: float | tuple, status: str, best: float, selected: float | None,
            variant: str = "direct") -> dict:
    """A cell's metrics as group.json holds them (``rate``: its first parameter, the others at
    their defaults, or all its values; ``selected`` None: no held-out split)."""
    m = registry.get(method)
    cell = registry.cell(method, rate if isinstance(rate, tuple) else ((rate,) + m.defaults[1:] if m.params else ()))
    rate = cell.rate if cell.rate is not None else 0.0
    held_out = selected is not None
    selected = selected if held_out else best
    out = {
        "variant": variant, "cell_id": cell.id, "method": method, "rate": cell.rate,
        "params": registry.params_text(cell),
        "branch": None if variant == "direct" else "last", "branch_epoch": None if variant == "direct" else 1,
        "status": status, "diverged_epoch": 2 if status == D else None, "epochs": 3,
        "test_acc_final": round(selected - 0.02, 6), "test_acc_best": best, "best_epoch": 2,
        # the held-out (noisy) accuracy follows the honest test accuracy 5 points lower: honest choices
        # are those the test accuracy would make, but made without it
        "test_acc_selected": selected, "selected_epoch": 3, "val_acc_selected": round(selected - 0.05, 6),
        "clean_train_acc": round(0.9 - rate / 10, 6), "noisy_train_acc": round(0.6 + rate / 10, 6),
        "test_nll": 1.25, "ece": round(0.05 + abs(rate) / 20, 6), "train_loss": 0.75,
        "transition_mae": None, "noise_rate_hat": None,
    }
    if not held_out:
        out.update(test_acc_selected=None, selected_epoch=None, val_acc_selected=None)
    return out


def _realised(noise_rate: str) -> float | None:
    try:
        return round(float(noise_rate) - 0.003, 6)
    except ValueError:  # a human label-set name
        return None


TEST_SAMPLES = 1_000  # the toy test set: every accuracy of 3 decimals is a whole number of samples


def correct_bits(acc: float | None, n: int = TEST_SAMPLES) -> "np.ndarray":
    """A cell's per-test-sample correctness at accuracy ``acc``: right on the first round(acc n)
    samples of the test set (the easiest first, the same order for every cell), packed."""
    import numpy as np

    right = np.zeros(n, dtype=bool)
    right[:int(round((acc or 0.0) * n))] = True
    return np.packbits(right, bitorder="little")


def write_test_correct(gdir: Path, cells: list[dict], n: int = TEST_SAMPLES) -> Path:
    """The group's test_correct.npz, as the engine writes it (its format: core.vocabulary)."""
    import numpy as np

    from smoothbench.core.files import write_npz

    sels = ("best", "selected", "final")
    bits = np.array([[correct_bits(c.get(f"test_acc_{sel}"), n) for sel in sels] for c in cells], dtype=np.uint8)
    has = np.array([[c.get(f"test_acc_{sel}") is not None for sel in sels] for c in cells], dtype=bool)
    path = gdir / vocab.TEST_CORRECT_FILE
    write_npz(path, {"variant": np.array([c["variant"] for c in cells]),
                     "cell_id": np.array([c["cell_id"] for c in cells]), "selections": np.array(sels),
                     "test_samples": np.array(n, dtype=np.int64), "bits": bits, "has": has})
    return path


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
            # the held-out accuracy, the last epoch's final - 5 points (nan: no held-out split)
            val = round(c["test_acc_final"] - 0.05 - 0.01 * (3 - ep), 6) if c["val_acc_selected"] is not None else "nan"
            lines.append(f"{ep},{phase},0.1,{1.0 / ep},0.5,0.6,{val},{acc},1.5,0.1")
        (cdir / "curves.csv").write_text("\n".join(lines) + "\n")
    gdir.mkdir(parents=True, exist_ok=True)
    write_test_correct(gdir, cells)
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
