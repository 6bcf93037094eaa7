"""The training engine: protocol, schedules, metrics, augmentation, and the promises
of a group: cells trained together equal cells trained alone, same inputs give the
same metrics, a diverging cell is frozen without stopping the others, a killed run
resumes to the same result."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import kill_and_resume, train_command, write_dataset, write_labels

from smoothbench import train
from smoothbench.grid import parse_cells

# ----------------------------------------------------------------------------- fixtures

_write_dataset, _write_labels = write_dataset, write_labels


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("toy")
    d = _write_dataset(tmp / "toy.npz")
    return d, _write_labels(tmp, d)


PROTO = {"model": "mlp", "model_args": {"hidden": [32]}, "batch_size": 32, "epochs": 3,
         "optimizer": {"lr": 0.05}, "val_fraction": 0.1, "checkpoint_every": 1, "device": "cpu"}


def _run(toy, tmp_path, cells, proto=PROTO, name="g"):
    d, labels = toy
    return train.train_group(str(d), str(labels), parse_cells(cells) if isinstance(cells, str) else cells,
                             proto, str(tmp_path / name), progress=False)


def _curves(path):
    import pandas as pd

    return pd.read_csv(path)


# ----------------------------------------------------------------------------- protocol and pieces

def test_protocol_defaults_and_round_trip():
    p = train.Protocol.from_dict({})
    assert p.model == "mlp" and p.warmup.epochs == 0 and p.schedule.name == "cosine"
    again = train.Protocol.from_dict(p.to_dict())
    assert again == p
    p2 = train.Protocol.from_dict({"warmup": {"epochs": 2, "optimizer": {"lr": 0.02}},
                                   "schedule": {"name": "multistep", "milestones": [3, 5]}})
    assert p2.warmup.optimizer.lr == 0.02 and p2.schedule.milestones == (3, 5)


@pytest.mark.parametrize("bad, match", [
    ({"epochs": -1}, r"protocol.epochs = -1: allowed"),
    ({"optimizer": {"name": "adamw"}}, r"protocol.optimizer.name = 'adamw': allowed sgd"),
    ({"optimizer": {"lr": 0}}, r"protocol.optimizer.lr = 0: allowed > 0"),
    ({"schedule": {"name": "linear"}}, r"protocol.schedule.name = 'linear'"),
    ({"val_fraction": 0.7}, r"protocol.val_fraction = 0.7: allowed \[0, 0.5\)"),
    ({"batchsize": 3}, r"protocol.batchsize is not a known key"),
    ({"warmup": {"epochs": 1, "lr": 0.1}}, r"protocol.warmup.lr is not a known key"),
    ({"epochs": 0}, r"allowed >= 1 epoch in all"),
])
def test_protocol_bad_values_name_the_key(bad, match):
    with pytest.raises(ValueError, match=match):
        train.Protocol.from_dict(bad)


def test_learning_rate_schedules_closed_forms():
    opt = train.OptimizerConfig(lr=0.1)
    const = train.ScheduleConfig(name="constant")
    multi = train.ScheduleConfig(name="multistep", milestones=(2, 4), gamma=0.1)
    cos = train.ScheduleConfig(name="cosine")
    assert train.learning_rate(opt, const, 7, 3, 10, 10) == 0.1
    assert [train.learning_rate(opt, multi, e, 0, 10, 6) for e in range(6)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    assert train.learning_rate(opt, cos, 0, 0, 10, 4) == pytest.approx(0.1)
    assert train.learning_rate(opt, cos, 2, 0, 10, 4) == pytest.approx(0.05)
    assert train.learning_rate(opt, cos, 3, 5, 10, 4) == pytest.approx(0.05 * (1 + math.cos(math.pi * 35 / 40)))


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
    out = train.evaluate(_Fixed(logits), x, y, ece_bins=5, batch=16, autocast=lambda: torch.autocast("cpu", enabled=False))
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


def test_augment_crops_are_windows_of_the_padded_image_and_flips_mirror():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, 6, 6, generator=g)
    cfg = train.AugmentConfig(crop_padding=2, hflip=False)
    out = train.augment(x, cfg, torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    offsets = set()
    for b in range(64):
        hits = [(i, j) for i in range(5) for j in range(5) if torch.equal(padded[b, :, i:i + 6, j:j + 6], out[b])]
        assert hits, f"sample {b} is not a crop of its padded image"
        offsets.add(hits[0])
    assert len(offsets) > 10                       # offsets vary across the batch
    flipped = train.augment(x, train.AugmentConfig(crop_padding=0, hflip=True), torch.Generator().manual_seed(1))
    same = [torch.equal(flipped[b], x[b]) for b in range(64)]
    mirrored = [torch.equal(flipped[b], x[b].flip(-1)) for b in range(64)]
    assert all(s or m for s, m in zip(same, mirrored)) and 10 < sum(mirrored) < 54
    vec = torch.randn(5, 7)
    assert train.augment(vec, train.AugmentConfig(4, True), g) is vec


# ----------------------------------------------------------------------------- the group promises

def test_group_writes_metrics_curves_and_group_json(toy, tmp_path):
    summary = _run(toy, tmp_path, "ce:0,ls:0.4,nls:-0.5,flip:0.3")
    out = tmp_path / "g"
    assert json.loads((out / "group.json").read_text()) == json.loads(json.dumps(summary))
    assert summary["group_id"] == "toy-symmetric-0.3-s0"
    assert not (out / ".checkpoint").exists()
    for cell in summary["cells"]:
        met = json.loads((out / "cells" / cell["cell_id"] / "metrics.json").read_text())
        assert met["status"] == "ok" and met["epochs"] == 3
        cur = _curves(out / "cells" / cell["cell_id"] / "curves.csv")
        assert list(cur.columns) == list(train.CURVE_COLUMNS) and list(cur.epoch) == [1, 2, 3]
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
        a = _curves(tmp_path / f"alone-{cell.id}" / "cells" / cell.id / "curves.csv")
        t = _curves(tmp_path / "together" / "cells" / cell.id / "curves.csv")
        np.testing.assert_allclose(a.test_nll, t.test_nll, rtol=1e-4)


def test_same_inputs_give_identical_metrics(toy, tmp_path):
    a = _run(toy, tmp_path, "ce:0,nls:-0.5,flip:0.3", name="a")
    b = _run(toy, tmp_path, "ce:0,nls:-0.5,flip:0.3", name="b")
    assert a == b
    for cell in ("ce_0", "nls_-0.5", "flip_0.3"):
        assert (tmp_path / "a/cells" / cell / "curves.csv").read_bytes() == \
            (tmp_path / "b/cells" / cell / "curves.csv").read_bytes()


def test_flip_cells_see_different_labels_than_ce(toy, tmp_path):
    s = _run(toy, tmp_path, "ce:0,flip:0.6")
    ce, flip = s["cells"]
    assert ce["train_loss"] != flip["train_loss"]


def test_diverging_cell_is_frozen_and_others_go_on(toy, tmp_path):
    proto = dict(PROTO, epochs=4, optimizer={"lr": 0.5, "momentum": 0.9})
    s = _run(toy, tmp_path, "ce:0,nls:-1000000", proto=proto, name="div")
    ce, nls = s["cells"]
    assert nls["status"] == "diverged" and nls["diverged_epoch"] == 1
    assert ce["status"] == "ok" and ce["diverged_epoch"] is None
    for key in ("test_acc_final", "test_nll", "ece", "clean_train_acc"):
        assert nls[key] is not None and math.isfinite(nls[key])        # frozen at its last finite state
    alone = _run(toy, tmp_path, "ce:0", proto=proto, name="div-alone")["cells"][0]
    assert alone["test_acc_final"] == pytest.approx(ce["test_acc_final"], abs=1e-4)
    cur = _curves(tmp_path / "div/cells/nls_-1e+06/curves.csv")
    assert math.isnan(cur.train_loss.iloc[0]) and len(cur) == 4


def test_warmup_is_shared_then_branched(toy, tmp_path):
    proto = dict(PROTO, epochs=2, warmup={"epochs": 2, "optimizer": {"lr": 0.05}},
                 optimizer={"lr": 1e-3}, schedule={"name": "constant"})
    s = _run(toy, tmp_path, "ce:0,ls:0.5,nls:-2", proto=proto, name="warm")
    curves = [_curves(tmp_path / "warm/cells" / c["cell_id"] / "curves.csv") for c in s["cells"]]
    for c in curves:
        assert list(c.phase) == ["warmup", "warmup", "main", "main"]
        assert c.lr.iloc[2] == pytest.approx(1e-3)
        assert c.iloc[:2].equals(curves[0].iloc[:2])          # one warm-up for all cells
    assert not curves[1].iloc[2:].equals(curves[2].iloc[2:])  # then they differ
    # the warm-up equals a direct 2-epoch CE run with the same optimizer (same init, same batches)
    _run(toy, tmp_path, "ce:0", proto=dict(PROTO, epochs=2, optimizer={"lr": 0.05}), name="direct")
    d = _curves(tmp_path / "direct/cells/ce_0/curves.csv")
    np.testing.assert_allclose(d.test_nll, curves[0].test_nll.iloc[:2], rtol=1e-5)


def test_image_data_with_cnn_and_augmentation(tmp_path):
    d = _write_dataset(tmp_path / "img.npz", d=36, image=True)
    labels = _write_labels(tmp_path, d, rate=0.2)
    proto = dict(PROTO, model="cnn", model_args={}, epochs=2, augment={"crop_padding": 1, "hflip": True})
    s = train.train_group(str(d), str(labels), parse_cells("ce:0,ls:0.2"), proto, str(tmp_path / "img"),
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
                        "--cells", "ce:0", "--protocol", '{"optimizer": {"lr": -1}}', "--out", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "protocol.optimizer.lr" in r.stderr


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    d = _write_dataset(tmp_path / "big.npz", n_train=3000, n_test=300, d=64)
    labels = _write_labels(tmp_path, d)
    proto = json.dumps(dict(PROTO, model_args={"hidden": [256, 256]}, epochs=6, batch_size=32))
    cmd = train_command(d, labels, "ce:0,ls:0.3,nls:-0.6,flip:0.2", proto)
    kill_and_resume(cmd, tmp_path, epochs=6, cell_ids=["ce_0", "ls_0.3", "nls_-0.6", "flip_0.2"])


def test_bf16_autocast_path_runs_and_stays_close_to_fp32(toy, tmp_path):
    """The mixed-precision path the engine takes on CUDA, exercised with CPU autocast."""
    fp32 = _run(toy, tmp_path, "ce:0,nls:-0.5", proto=dict(PROTO, precision="fp32"), name="fp32")
    bf16 = _run(toy, tmp_path, "ce:0,nls:-0.5", proto=dict(PROTO, precision="bf16"), name="bf16")
    for a, b in zip(fp32["cells"], bf16["cells"]):
        assert b["status"] == "ok" and math.isfinite(b["test_nll"])
        assert abs(a["test_acc_final"] - b["test_acc_final"]) < 0.1
    assert fp32["cells"][0]["test_nll"] != bf16["cells"][0]["test_nll"]      # autocast really was on


def test_without_a_held_out_split_there_is_no_selected_figure(toy, tmp_path):
    s = _run(toy, tmp_path, "ce:0", proto=dict(PROTO, val_fraction=0.0), name="noval")
    cell = s["cells"][0]
    assert cell["test_acc_selected"] is None and cell["selected_epoch"] is None
    assert cell["test_acc_best"] is not None
