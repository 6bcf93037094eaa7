"""The training engine: protocol, schedules, metrics, augmentation, and the promises
of a group: cells trained together equal cells trained alone, same inputs give the
same metrics, a diverging cell is frozen without stopping the others, a killed run
resumes to the same result."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import kill_and_resume, train_command, write_dataset, write_labels

from smoothbench.core import vocabulary as cells, draws
from smoothbench.engine import device, protocol, phase as stackrun, training as train
from smoothbench.methods import parse_cells

# ----------------------------------------------------------------------------- fixtures

_write_dataset, _write_labels = write_dataset, write_labels


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("toy")
    d = _write_dataset(tmp / "toy.npz")
    return d, _write_labels(tmp, d)


def proto(epochs=3, lr=0.05, warmup=None, variant="direct", **shared) -> dict:
    """A protocol with one variant (``direct``, or a warm-up variant when ``warmup`` is given)."""
    v = {"epochs": epochs, "optimizer": {"lr": lr}}
    if warmup:
        v["warmup"] = warmup
    base = {"model": "mlp", "model_args": {"hidden": [32]}, "batch_size": 32, "val_fraction": 0.1,
            "checkpoint_every": 1, "device": "cpu", "variants": {variant: v}}
    return {**base, **shared}


PROTO = proto()


def _run(toy, tmp_path, cells, proto=PROTO, name="g"):
    d, labels = toy
    return train.train_group(str(d), str(labels), parse_cells(cells) if isinstance(cells, str) else cells,
                             proto, str(tmp_path / name), progress=False)


def _curves(path):
    import pandas as pd

    return pd.read_csv(path)


# ----------------------------------------------------------------------------- protocol and pieces

class _Fixed(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits[:, x.long().flatten()]


def test_evaluate_accuracy_nll_and_ece_against_hand_computation():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 50, 3, generator=g) * 2
    y = torch.randint(0, 3, (50,), generator=g)
    x = torch.arange(50).float()[:, None]
    model = _Fixed(logits)
    model.num_models, model.num_classes, model.input_shape = 2, 3, (1,)
    out, = device.evaluate(model, x, [y], torch.zeros(2, dtype=torch.bool), ece_bins=5, batch=16,
                           autocast=lambda: torch.autocast("cpu", enabled=False))
    p = torch.softmax(logits, -1)
    for m in range(2):
        conf, pred = p[m].max(-1)
        acc = (pred == y).double()
        assert out["acc"][m].item() == pytest.approx(acc.mean().item())
        assert out["nll"][m].item() == pytest.approx(-torch.log(p[m, torch.arange(50), y]).mean().item(), rel=1e-5)
        ece = 0.0
        for b in range(5):
            lo, hi = b / 5, (b + 1) / 5
            sel = (conf > lo) & (conf <= hi)
            if sel.any():
                ece += sel.double().mean().item() * abs(acc[sel].mean().item() - conf[sel].double().mean().item())
        assert out["ece"][m].item() == pytest.approx(ece, abs=1e-6)


def _augment(x, cfg, key=1, counter=0, black=None):
    """``device.augment`` of one batch (S = 1) with its own key."""
    if x.dim() != 4:
        return device.augment(x, cfg, draws.keys([key], "cpu"), counter, black)
    return device.augment(x.unsqueeze(0), cfg, draws.keys([key], "cpu"), counter, black)[0]


def test_augment_crops_are_windows_of_the_padded_image_and_flips_mirror():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, 6, 6, generator=g)
    cfg = protocol.AugmentConfig(crop_padding=2, hflip=False)
    out = _augment(x, cfg)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    offsets = set()
    for b in range(64):
        hits = [(i, j) for i in range(5) for j in range(5) if torch.equal(padded[b, :, i:i + 6, j:j + 6], out[b])]
        assert hits, f"sample {b} is not a crop of its padded image"
        offsets.add(hits[0])
    assert len(offsets) > 10                       # offsets vary across the batch
    flipped = _augment(x, protocol.AugmentConfig(crop_padding=0, hflip=True))
    same = [torch.equal(flipped[b], x[b]) for b in range(64)]
    mirrored = [torch.equal(flipped[b], x[b].flip(-1)) for b in range(64)]
    assert all(s or m for s, m in zip(same, mirrored)) and 10 < sum(mirrored) < 54
    vec = torch.randn(1, 5, 7)
    assert _augment(vec, protocol.AugmentConfig(4, True)) is vec
    # each seed of a stack draws its own crops: the same key, the same crops, whatever else is stacked
    both = device.augment(torch.stack([x, x]), cfg, draws.keys([1, 2], "cpu"), 0)
    assert torch.equal(both[0], out) and not torch.equal(both[1], out)


# ----------------------------------------------------------------------------- the group promises

def test_group_writes_metrics_curves_and_group_json(toy, tmp_path):
    summary = _run(toy, tmp_path, "ce:0,ls:0.4,nls:-0.5,flip:0.3")
    out = tmp_path / "g"
    assert json.loads((out / "group.json").read_text()) == json.loads(json.dumps(summary))
    assert summary["group_id"] == "toy-symmetric-0.3-s0"
    assert not (out / ".checkpoint").exists()
    for cell in summary["cells"]:
        assert cell["variant"] == "direct" and cell["branch"] is None and cell["branch_epoch"] is None
        met = json.loads((out / "cells" / "direct" / cell["cell_id"] / "metrics.json").read_text())
        assert met["status"] == "ok" and met["epochs"] == 3
        cur = _curves(out / "cells" / "direct" / cell["cell_id"] / "curves.csv")
        assert list(cur.columns) == list(cells.CURVE_COLUMNS) and list(cur.epoch) == [1, 2, 3]
        assert met["test_acc_final"] == pytest.approx(cur.test_acc.iloc[-1])
        assert met["test_acc_best"] == pytest.approx(cur.test_acc.max())
        assert met["test_acc_selected"] == pytest.approx(cur.test_acc[cur.val_acc.idxmax()])
        assert met["test_acc_best"] >= met["test_acc_selected"] and met["test_acc_best"] >= met["test_acc_final"]
        assert 0.5 < met["test_acc_final"] <= 1.0          # learnable toy problem
    assert [c["cell_id"] for c in summary["cells"]] == ["ce_0", "ls_0.4", "nls_-0.5", "flip_0.3"]


def test_cells_in_a_group_equal_cells_trained_alone(toy, tmp_path):
    cells = parse_cells("ce:0,ls:0.4,nls:-0.5,flip:0.3")
    together = _run(toy, tmp_path, cells, name="together")
    for cell, met in zip(cells, together["cells"]):
        alone = _run(toy, tmp_path, [cell], name=f"alone-{cell.id}")["cells"][0]
        for key in ("test_acc_final", "test_acc_best", "test_nll", "ece", "train_loss", "clean_train_acc"):
            assert alone[key] == pytest.approx(met[key], abs=1e-4), (cell.id, key)
        a = _curves(tmp_path / f"alone-{cell.id}" / "cells" / "direct" / cell.id / "curves.csv")
        t = _curves(tmp_path / "together" / "cells" / "direct" / cell.id / "curves.csv")
        np.testing.assert_allclose(a.test_nll, t.test_nll, rtol=1e-4)


def test_same_inputs_give_identical_metrics(toy, tmp_path):
    a = _run(toy, tmp_path, "ce:0,nls:-0.5,flip:0.3", name="a")
    b = _run(toy, tmp_path, "ce:0,nls:-0.5,flip:0.3", name="b")
    assert a == b
    for cell in ("ce_0", "nls_-0.5", "flip_0.3"):
        assert (tmp_path / "a/cells/direct" / cell / "curves.csv").read_bytes() == \
            (tmp_path / "b/cells/direct" / cell / "curves.csv").read_bytes()


def test_flip_cells_see_different_labels_than_ce(toy, tmp_path):
    s = _run(toy, tmp_path, "ce:0,flip:0.6")
    ce, flip = s["cells"]
    assert ce["train_loss"] != flip["train_loss"]


def _correct(out: Path) -> dict:
    with np.load(out / cells.TEST_CORRECT_FILE) as z:
        return {k: z[k] for k in z.files}


def test_group_writes_each_cells_test_correctness_at_each_selections_epoch(toy, tmp_path):
    """test_correct.npz: per cell and selection, the right/wrong of every test sample at the epoch
    the selection chose; counted, it is the cell's test accuracy there (a diverged cell's too: its
    last finite epoch's). A resumed run writes the same bytes (helpers.kill_and_resume)."""
    d, _ = toy
    summary = _run(toy, tmp_path, "ce:0,ls:0.4,nls:-1000000", proto=proto(epochs=4, lr=0.5), name="bits")
    z = _correct(tmp_path / "bits")
    n = int(z["test_samples"])
    with np.load(d) as data:
        assert n == data["y_test"].shape[0]
    assert list(z["selections"]) == ["best", "selected", "final"] and z["has"].all()
    assert [str(c) for c in z["cell_id"]] == [c["cell_id"] for c in summary["cells"]]
    for i, cell in enumerate(summary["cells"]):
        for j, sel in enumerate(z["selections"]):
            right = np.unpackbits(z["bits"][i, j], bitorder="little")[:n]
            assert right[n:].sum() == 0 and right.sum() == round(cell[f"test_acc_{sel}"] * n), (cell["cell_id"], sel)
    assert summary["cells"][2]["status"] == "diverged"
    # without a held-out split the honest selection chose no epoch: no bits for it
    noval = _run(toy, tmp_path, "ce:0", proto=proto(val_fraction=0.0), name="bits-noval")
    assert list(_correct(tmp_path / "bits-noval")["has"][0]) == [True, False, True]
    assert noval["cells"][0]["test_acc_selected"] is None


def test_diverging_cell_is_frozen_and_others_go_on(toy, tmp_path):
    p = proto(epochs=4, lr=0.5)
    s = _run(toy, tmp_path, "ce:0,nls:-1000000", proto=p, name="div")
    ce, nls = s["cells"]
    assert nls["status"] == "diverged" and nls["diverged_epoch"] == 1
    assert ce["status"] == "ok" and ce["diverged_epoch"] is None
    for key in ("test_acc_final", "test_nll", "ece", "clean_train_acc"):
        assert nls[key] is not None and math.isfinite(nls[key])        # frozen at its last finite state
    alone = _run(toy, tmp_path, "ce:0", proto=p, name="div-alone")["cells"][0]
    assert alone["test_acc_final"] == pytest.approx(ce["test_acc_final"], abs=1e-4)
    cur = _curves(tmp_path / "div/cells/direct/nls_-1e+06/curves.csv")
    assert math.isnan(cur.train_loss.iloc[0]) and len(cur) == 4


def test_warmup_is_shared_then_branched(toy, tmp_path):
    p = proto(epochs=2, lr=1e-3, variant="warm", warmup={"epochs": 2, "optimizer": {"lr": 0.05}})
    p["variants"]["warm"]["schedule"] = {"name": "constant"}
    s = _run(toy, tmp_path, "ce:0,ls:0.5,nls:-2", proto=p, name="warm")
    curves = [_curves(tmp_path / "warm/cells/warm" / c["cell_id"] / "curves.csv") for c in s["cells"]]
    for c in curves:
        assert list(c.phase) == ["warmup", "warmup", "main", "main"]
        assert c.lr.iloc[2] == pytest.approx(1e-3)
        assert c.iloc[:2].equals(curves[0].iloc[:2])          # one warm-up for all cells
    assert not curves[1].iloc[2:].equals(curves[2].iloc[2:])  # then they differ
    for c, cell in zip(curves, s["cells"]):
        own = c.iloc[2:]                                       # selections look at the own phase only
        assert cell["branch"] == "last" and cell["branch_epoch"] == 2
        assert cell["best_epoch"] in (3, 4) and cell["selected_epoch"] in (3, 4)
        assert cell["test_acc_best"] == pytest.approx(own.test_acc.max())
    # the warm-up equals a direct 2-epoch CE run with the same optimizer (same init; its own batch stream)
    _run(toy, tmp_path, "ce:0", proto=proto(epochs=2, lr=0.05), name="direct")
    d = _curves(tmp_path / "direct/cells/direct/ce_0/curves.csv")
    assert abs(d.test_acc.iloc[-1] - curves[0].test_acc.iloc[1]) < 0.1


def test_branch_point_is_the_chosen_warmup_epoch(toy, tmp_path):
    """``best`` branches from the warm-up epoch with the best clean-test accuracy, ``selected``
    from the best held-out noisy accuracy, ``last`` from the end; one warm-up serves all three."""
    warm = {"epochs": 5, "optimizer": {"lr": 0.2}}
    p = proto(epochs=1, lr=1e-9)
    p["variants"] = {name: {"epochs": 1, "optimizer": {"lr": 1e-9}, "schedule": {"name": "constant"},
                            "warmup": dict(warm, branch=name)} for name in ("last", "best", "selected")}
    s = _run(toy, tmp_path, "ce:0", proto=p, name="branch")
    by = {c["variant"]: c for c in s["cells"]}
    hist = _curves(tmp_path / "branch/cells/best/ce_0/curves.csv").iloc[:5]
    assert by["best"]["branch_epoch"] == int(hist.epoch[hist.test_acc.idxmax()])
    assert by["selected"]["branch_epoch"] == int(hist.epoch[hist.val_acc.idxmax()])
    assert by["last"]["branch_epoch"] == 5
    # lr 1e-9 for one epoch: each variant's model is its branch checkpoint
    for name, cell in by.items():
        assert cell["test_acc_final"] == pytest.approx(float(hist.test_acc[hist.epoch == cell["branch_epoch"]].iloc[0]),
                                                       abs=2e-3), name
    for name in by:
        assert _curves(tmp_path / f"branch/cells/{name}/ce_0/curves.csv").iloc[:5].equals(hist)


def test_direct_and_warmup_variants_in_one_group(toy, tmp_path):
    p = proto(epochs=2, lr=0.05)
    p["variants"]["warmup"] = {"epochs": 1, "optimizer": {"lr": 1e-3}, "warmup": {"epochs": 2}}
    s = _run(toy, tmp_path, "ce:0,ls:0.4", proto=p, name="both")
    assert [(c["variant"], c["cell_id"]) for c in s["cells"]] == [
        ("direct", "ce_0"), ("direct", "ls_0.4"), ("warmup", "ce_0"), ("warmup", "ls_0.4")]
    assert [c["epochs"] for c in s["cells"]] == [2, 2, 3, 3]
    alone = _run(toy, tmp_path, "ce:0,ls:0.4", proto=proto(epochs=2, lr=0.05), name="direct-alone")
    assert alone["cells"] == s["cells"][:2]                  # a variant does not depend on the others


def test_image_data_with_cnn_and_augmentation(tmp_path):
    d = _write_dataset(tmp_path / "img.npz", d=36, image=True)
    labels = _write_labels(tmp_path, d, rate=0.2)
    p = proto(epochs=2, model="cnn", model_args={}, augment={"crop_padding": 1, "hflip": True})
    s = train.train_group(str(d), str(labels), parse_cells("ce:0,ls:0.2"), p, str(tmp_path / "img"),
                          progress=False)
    assert all(c["status"] == "ok" and math.isfinite(c["test_acc_final"]) for c in s["cells"])


def test_mismatched_labels_file_is_refused(toy, tmp_path):
    d, _ = toy
    other = _write_dataset(tmp_path / "other.npz", n_train=300)
    labels = _write_labels(tmp_path, other)
    with pytest.raises(ValueError, match="training samples|hash mismatch"):
        train.train_group(str(d), str(labels), parse_cells("ce:0"), PROTO, str(tmp_path / "x"), progress=False)


def test_cli_train_one_line_error_for_bad_protocol(toy, tmp_path):
    d, labels = toy
    r = subprocess.run([sys.executable, "-m", "smoothbench.cli", "train", "--data", str(d), "--labels", str(labels),
                        "--cells", "ce:0", "--protocol", '{"variants": {"direct": {"optimizer": {"lr": -1}}}}',
                        "--out", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "protocol.variants.direct.optimizer.lr = -1" in r.stderr


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    d = _write_dataset(tmp_path / "big.npz", n_train=3000, n_test=300, d=64)
    labels = _write_labels(tmp_path, d)
    protocol_json = json.dumps(proto(epochs=6, model_args={"hidden": [256, 256]}, batch_size=32))
    cmd = train_command(d, labels, "ce:0,ls:0.3,nls:-0.6,flip:0.2", protocol_json)
    kill_and_resume(cmd, tmp_path, epochs=6, cell_ids=["ce_0", "ls_0.3", "nls_-0.6", "flip_0.2"])


def test_bf16_autocast_path_runs_and_stays_close_to_fp32(toy, tmp_path):
    """The mixed-precision path the engine takes on CUDA, exercised with CPU autocast."""
    fp32 = _run(toy, tmp_path, "ce:0,nls:-0.5", proto=proto(precision="fp32"), name="fp32")
    bf16 = _run(toy, tmp_path, "ce:0,nls:-0.5", proto=proto(precision="bf16"), name="bf16")
    for a, b in zip(fp32["cells"], bf16["cells"]):
        assert b["status"] == "ok" and math.isfinite(b["test_nll"])
        assert abs(a["test_acc_final"] - b["test_acc_final"]) < 0.1
    assert fp32["cells"][0]["test_nll"] != bf16["cells"][0]["test_nll"]      # autocast really was on


def test_without_a_held_out_split_there_is_no_selected_figure(toy, tmp_path):
    s = _run(toy, tmp_path, "ce:0", proto=proto(val_fraction=0.0), name="noval")
    cell = s["cells"][0]
    assert cell["test_acc_selected"] is None and cell["selected_epoch"] is None
    assert cell["test_acc_best"] is not None


# ----------------------------------------------------------------------------- a setting: every seed in one stack

@pytest.fixture(scope="module")
def seeds3(toy, tmp_path_factory):
    """The toy dataset's noisy labels for seeds 0, 1, 2 (each seed its own draw)."""
    d, _ = toy
    tmp = tmp_path_factory.mktemp("seeds")
    return d, [_write_labels(tmp, d, seed=s) for s in (0, 1, 2)]


SEED_CELLS = "ce:0,ls:0.4,nls:-0.5,flip:0.3,bce,gce,sce,forward,peer:0.5,elr"


def test_a_seed_in_a_stack_of_seeds_equals_the_seed_trained_alone(seeds3, tmp_path):
    """The seeds of a setting train as one stack, each with its own labels, held-out split, init
    and batches: every seed's outputs are byte for byte those of the seed trained alone."""
    d, labels = seeds3
    outs = [str(tmp_path / f"all{s}") for s in range(3)]
    summaries = train.train_setting(str(d), [str(x) for x in labels], parse_cells(SEED_CELLS), PROTO, outs,
                                    progress=False)
    assert [x["seed"] for x in summaries] == [0, 1, 2]
    assert summaries[0]["cells"] != summaries[1]["cells"]               # different seeds, different numbers
    for s in (1, 2):
        alone = train.train_group(str(d), str(labels[s]), parse_cells(SEED_CELLS), PROTO,
                                  str(tmp_path / f"alone{s}"), progress=False)
        assert alone == summaries[s]
        assert (tmp_path / f"alone{s}" / "group.json").read_bytes() == (tmp_path / f"all{s}" / "group.json").read_bytes()
        for c in alone["cells"]:
            rel = Path("cells") / c["variant"] / c["cell_id"] / "curves.csv"
            assert (tmp_path / f"alone{s}" / rel).read_bytes() == (tmp_path / f"all{s}" / rel).read_bytes()


def test_a_stack_over_the_memory_budget_trains_in_passes_with_the_same_results(seeds3, tmp_path, capfd):
    d, labels = seeds3
    cells = parse_cells("ce:0,ls:0.4,nls:-0.5,elr")
    whole = train.train_setting(str(d), [str(x) for x in labels], cells, PROTO,
                                [str(tmp_path / f"w{s}") for s in range(3)], progress=False)
    capfd.readouterr()
    from smoothbench.engine.models import measure

    per_model = measure.memory_per_model("mlp", (12,), 4, 32, 4, hidden=[32])
    budget_mib = 2.5 * per_model / 2**20            # room for two models: passes of 1 seed x 2 cells
    passes = train.train_setting(str(d), [str(x) for x in labels], cells, PROTO,
                                 [str(tmp_path / f"p{s}") for s in range(3)], progress=False,
                                 memory_budget_mib=budget_mib)
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "training in 6 passes of 1 seed(s) x 2 model(s)" in err[0], err
    assert passes == whole
    assert train.plan_passes(3, 4, 10, 120) == (3, 4) and train.plan_passes(3, 4, 10, 25) == (1, 2)
    assert train.plan_passes(3, 4, 10, 80) == (2, 4)
    with pytest.raises(ValueError, match="more than the memory budget"):
        train.plan_passes(3, 4, 10, 5)


def test_every_registered_method_trains_in_one_stack(seeds3, tmp_path):
    """One group holding every method (a warm-up variant: the estimated-T methods estimate from it):
    every cell finishes (ok, or diverged and frozen) with finite figures, and the methods that become
    CE at a parameter value train like the CE cell."""
    from smoothbench import methods as registry

    d, labels = seeds3
    spec = ",".join(registry.names()) + ",focal:0,sce:1:0,boot_soft:1,boot_hard:1,elr:0:0.7"
    warm = proto(warmup={"epochs": 1}, variant="warmup")
    s = train.train_group(str(d), str(labels[0]), parse_cells(spec), warm, str(tmp_path / "all"), progress=False)
    assert {c["method"] for c in s["cells"]} == set(registry.names())
    for c in s["cells"]:
        assert c["status"] in ("ok", "diverged") and math.isfinite(c["test_acc_final"]), c["cell_id"]
    by = {c["cell_id"]: c for c in s["cells"]}
    for twin in ("focal_0_0", "sce_1_0", "boot_soft_1", "boot_hard_1", "elr_0_0.7"):
        for key in ("test_acc_final", "test_acc_best", "clean_train_acc"):
            assert by[twin][key] == pytest.approx(by["ce_0"][key], abs=1 / 200 + 1e-9), (twin, key)
        assert by[twin]["test_nll"] == pytest.approx(by["ce_0"]["test_nll"], rel=1e-3), twin


def test_bce_cells_report_nll_and_ece_of_their_own_sigmoids():
    """One-vs-all models (K > 2): class j's probability is sigmoid(z_j); the prediction is the
    largest logit, its confidence sigmoid(z_pred), the NLL -log sigmoid(z_y)."""
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 60, 4, generator=g) * 2
    y = torch.randint(0, 4, (60,), generator=g)
    x = torch.arange(60).float()[:, None]
    model = _Fixed(logits)
    model.num_models, model.num_classes, model.input_shape = 2, 4, (1,)
    out, = device.evaluate(model, x, [y], torch.tensor([False, True]), ece_bins=5, batch=16,
                           autocast=lambda: torch.autocast("cpu", enabled=False))
    for m, probs in ((0, torch.softmax(logits[0], -1)), (1, torch.sigmoid(logits[1]))):
        conf, pred = probs.max(-1)
        acc = (pred == y).double()
        assert out["acc"][m].item() == pytest.approx(acc.mean().item())
        assert out["nll"][m].item() == pytest.approx(-torch.log(probs[torch.arange(60), y]).mean().item(), rel=1e-5)
        ece = sum(((conf > b / 5) & (conf <= (b + 1) / 5)).double().mean().item() *
                  abs(acc[(conf > b / 5) & (conf <= (b + 1) / 5)].mean().item() -
                      conf[(conf > b / 5) & (conf <= (b + 1) / 5)].double().mean().item())
                  for b in range(5) if ((conf > b / 5) & (conf <= (b + 1) / 5)).any())
        assert out["ece"][m].item() == pytest.approx(ece, abs=1e-6)


@pytest.mark.slow
def test_killed_setting_with_stateful_and_random_methods_resumes_to_the_uninterrupted_result(tmp_path):
    """ELR's per-sample targets, peer and flip draws, two seeds in one stack: SIGKILL mid-run,
    resume, the same bytes."""
    d = _write_dataset(tmp_path / "big.npz", n_train=3000, n_test=300, d=64)
    labels = [_write_labels(tmp_path, d, seed=s) for s in (0, 1)]
    protocol_json = json.dumps(proto(epochs=6, model_args={"hidden": [256, 256]}, batch_size=32))
    cmd = train_command(d, labels[0], "ce:0,flip:0.2,peer:0.5,elr", protocol_json)
    cmd[cmd.index("--labels") + 1:cmd.index("--labels") + 2] = [str(x) for x in labels]
    kill_and_resume(cmd, tmp_path, epochs=6, cell_ids=["ce_0", "flip_0.2", "peer_0.5_0", "elr_3_0.7"], outs=2)


# ----------------------------------------------------------------------------- the reference's options

def test_fixed_normalisation_and_black_padding():
    """normalize: the reference's constants on inputs scaled to [0, 1]; pad_fill black pads with
    what a zero pixel becomes after normalisation (the reference pads the raw image)."""
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(20, 3, 4, 4), dtype=np.uint8)
    ds = SimpleNamespace(name="toy", x_train=x, y_train=np.arange(20) % 2, x_test=x[:4], y_test=np.arange(4) % 2,
                         num_classes=2)
    norm = {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]}
    d = device.prepare_data(ds, [ds.y_train], [np.eye(2)], 0.0, [0], torch.device("cpu"), norm)
    mean, std = np.array(norm["mean"])[:, None, None], np.array(norm["std"])[:, None, None]
    np.testing.assert_allclose(d.x_train.numpy(), (x / 255.0 - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d.black.numpy(), -np.array(norm["mean"]) / np.array(norm["std"]), rtol=1e-6)
    cfg = protocol.AugmentConfig(crop_padding=2, hflip=False, pad_fill="black")
    out = _augment(d.x_train, cfg, key=3, black=d.black)
    # rows/columns outside the image are black: un-normalised, exactly zero pixels
    raw = out.numpy() * std + mean
    border = np.isclose(raw, 0.0, atol=1e-6).all(axis=1)          # (B, H, W): pixel black in every channel
    assert border.any() and not np.isclose(x, 0).all(axis=1).any()  # the image itself has no black pixel
    mean_pad = _augment(d.x_train, protocol.AugmentConfig(2, False, "mean"), key=3)
    assert (mean_pad.numpy()[border[:, None].repeat(3, 1)] == 0).all()   # same windows, zeros instead
    with pytest.raises(ValueError, match="3 channels"):
        device.prepare_data(ds, [ds.y_train], [np.eye(2)], 0.0, [0], torch.device("cpu"), {"mean": [0.5], "std": [0.5]})


def test_torch_default_init_matches_pytorchs_conv_default():
    """init torch_default draws conv weights like nn.Conv2d does (kaiming_uniform, a = sqrt(5)):
    uniform on +-1/sqrt(fan_in); kaiming_normal is the He normal, fan_out."""
    from smoothbench.engine import models

    m = models.build_model("resnet18", 1, (3, 32, 32), 10, seed=0, init="torch_default", width=0.25)
    ref = torch.nn.Conv2d(64, 64, 3, bias=False)                 # PyTorch's own default
    w = m.layers[1].conv1.weight[0].detach()                     # a 16 -> 16 3x3 conv at width 0.25
    bound = 1 / math.sqrt(w.shape[1] * 9)
    assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
    # the variance of U(-b, b) is b^2/3, as for nn.Conv2d's weights (4.5 standard errors from the sample size)
    for weights, b in ((w, bound), (ref.weight.detach(), 1 / math.sqrt(64 * 9))):
        n = weights.numel()
        assert abs(weights.var().item() - b * b / 3) < 4.5 * (b * b) * math.sqrt(4 / 45 / n)
    he = models.build_model("resnet18", 1, (3, 32, 32), 10, seed=0, width=0.25).layers[1].conv1.weight[0]
    fan_out = he.shape[0] * 9
    assert abs(he.std().item() - math.sqrt(2 / fan_out)) < 0.15 * math.sqrt(2 / fan_out)
    with pytest.raises(ValueError, match="init 'xavier' is unknown"):
        models.build_model("cnn", 1, (3, 8, 8), 10, seed=0, init="xavier")


@pytest.mark.parametrize("drop_last, steps", [(True, 11), (False, 12)])
def test_last_partial_batch_kept_or_dropped(toy, tmp_path, monkeypatch, drop_last, steps):
    """360 training samples (400 minus the held-out 10%), batch 32: 11 full batches, and a
    12th of 8 samples when the last partial batch is kept (drop_last: false, the reference)."""
    sizes = []
    real = stackrun.augment

    def spy(x, *args, **kwargs):
        sizes.append(x.shape[1])          # (S, B, ...): the batch of each seed
        return real(x, *args, **kwargs)

    monkeypatch.setattr(stackrun, "augment", spy)
    _run(toy, tmp_path, "ce:0", proto=proto(epochs=1, drop_last=drop_last))
    assert len(sizes) == steps and sum(sizes) == (360 if not drop_last else 352)


def test_bce_cells_in_a_group_equal_bce_cells_trained_alone(toy, tmp_path):
    """Seed note 001 in the engine: BCE cells (one-vs-all here, K = 4) stacked with softmax cells
    in one group train exactly as when trained alone."""
    cells = parse_cells("ce:0,ls:0.4,bce:0,bls:0.2,bnls:-0.5")
    together = _run(toy, tmp_path, cells, name="mixed")
    assert [c["cell_id"] for c in together["cells"]] == ["ce_0", "ls_0.4", "bce_0", "bls_0.2", "bnls_-0.5"]
    for cell, met in zip(cells, together["cells"]):
        alone = _run(toy, tmp_path, [cell], name=f"alone-{cell.id}")["cells"][0]
        for key in ("test_acc_final", "test_acc_best", "test_nll", "train_loss", "clean_train_acc"):
            assert alone[key] == pytest.approx(met[key], abs=1e-4), (cell.id, key)
    bce, bls = together["cells"][2], together["cells"][3]
    assert bce["status"] == "ok" and 0.5 < bce["test_acc_final"] <= 1.0 and bce["train_loss"] != bls["train_loss"]


@pytest.mark.slow
def test_trainer_dies_with_its_shell(tmp_path):
    """A killed job shell takes its trainer with it (no orphan writing checkpoints while a
    retried trainer starts); what it checkpointed resumes."""
    d = write_dataset(tmp_path / "big.npz", n_train=3000, n_test=300, d=64)
    labels = write_labels(tmp_path, d)
    cmd = train_command(d, labels, "ce:0,ls:0.3", json.dumps(proto(epochs=400, model_args={"hidden": [256, 256]})),
                        "--out", str(tmp_path / "o"), "--checkpoint-dir", str(tmp_path / "ck"))
    shell = subprocess.Popen(["bash", "-c", " ".join(f"'{c}'" for c in cmd) + "; true"], start_new_session=True)
    deadline = time.time() + 120
    while not (tmp_path / "ck" / "direct.pt").exists() and time.time() < deadline:
        time.sleep(0.1)
    trainer = [int(p) for p in subprocess.run(["pgrep", "-P", str(shell.pid)], capture_output=True,
                                               text=True).stdout.split()]
    assert trainer, "no trainer under the shell"
    os.kill(shell.pid, signal.SIGKILL)
    shell.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(os.path.exists(f"/proc/{p}") for p in trainer):
        time.sleep(0.1)
    assert not any(os.path.exists(f"/proc/{p}") and "Z" not in open(f"/proc/{p}/stat").read().split()[2]
                   for p in trainer), "the trainer outlived its shell"
    state = torch.load(tmp_path / "ck" / "direct.pt", weights_only=True)
    assert 1 <= state["done"] < 400


# ----------------------------------------------------------------------------- a cell that fails alone

def _with_transition(src: Path, dest: Path, transition: np.ndarray) -> Path:
    """A copy of a noisy-label file whose recorded T is ``transition`` (as a realised T may be)."""
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["transition"] = transition
    np.savez(dest, **arrays)
    return dest


def test_a_cell_whose_method_refuses_its_seed_s_t_fails_alone(seeds3, tmp_path):
    """Backward correction with a singular T for seed 1 (here: class 3 never a noisy label, so
    T's column 3 is zero): that cell is `failed` with the reason and no figures, the job goes on,
    and every other cell of every seed, seed 1's included, is byte for byte what it is in a run
    without it; the collector and the tables count it."""
    from smoothbench.report import collect

    d, labels = seeds3
    singular = np.full((4, 4), 1 / 3)
    singular[:, 3] = 0.0
    two = [str(labels[0]), str(_with_transition(labels[1], tmp_path / "singular.npz", singular))]
    outs = [str(tmp_path / f"with{s}") for s in range(2)]
    summaries = train.train_setting(str(d), two, parse_cells("ce:0,forward,backward"), PROTO, outs, progress=False)
    ok0 = {c["cell_id"]: c["status"] for c in summaries[0]["cells"]}
    assert ok0 == {"ce_0": "ok", "forward": "ok", "backward": "ok"}
    failed = next(c for c in summaries[1]["cells"] if c["cell_id"] == "backward")
    assert failed["status"] == "failed" and "singular" in failed["failure"] and "condition number inf" in failed["failure"]
    assert all(failed[k] is None for k in ("test_acc_final", "test_acc_best", "test_acc_selected", "test_nll"))
    metrics = json.loads((tmp_path / "with1/cells/direct/backward/metrics.json").read_text())
    assert metrics["status"] == "failed" and metrics["failure"] == failed["failure"]
    curves = _curves(tmp_path / "with1/cells/direct/backward/curves.csv")
    assert list(curves.epoch) == [1, 2, 3] and curves.test_acc.isna().all()
    without = [str(tmp_path / f"without{s}") for s in range(2)]
    train.train_setting(str(d), two, parse_cells("ce:0,forward"), PROTO, without, progress=False)
    for s in range(2):
        for cell in ("ce_0", "forward"):
            rel = Path("cells/direct") / cell
            for name in ("metrics.json", "curves.csv"):
                assert (Path(outs[s]) / rel / name).read_bytes() == (Path(without[s]) / rel / name).read_bytes()
    collect.collect([Path(o) / "group.json" for o in outs], tmp_path / "results.csv", tmp_path / "curves.csv")
    rows = collect.read_results(tmp_path / "results.csv")
    assert [(r["seed"], r["cell_id"]) for r in rows if r["status"] == "failed"] == [(1, "backward")]
