"""The engine with the baselines that need more than a loss: cells of two models (Co-teaching,
JoCoR), peer samples from the whole training set (a second forward pass), and T estimated from
the warm-up model. A seed's results stay those it gets trained alone, a cell's those it gets
trained alone, and a killed run resumes to the same bytes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import kill_and_resume, train_command, write_dataset, write_labels
from smoothbench.engine import training as train
from smoothbench.methods import parse_cells


def proto(epochs=3, warmup=0, **shared) -> dict:
    v = {"epochs": epochs, "optimizer": {"lr": 0.05}}
    name = "warmup" if warmup else "direct"
    if warmup:
        v["warmup"] = {"epochs": warmup}
    base = {"model": "mlp", "model_args": {"hidden": [32]}, "batch_size": 32, "val_fraction": 0.1,
            "checkpoint_every": 1, "device": "cpu", "variants": {name: v}}
    return {**base, **shared}


@pytest.fixture(scope="module")
def seeds2(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("baselines")
    d = write_dataset(tmp / "toy.npz")
    return d, [write_labels(tmp, d, seed=s) for s in (0, 1)]


CELLS = "ce,forward_est,backward_est:50,peer:0.5,peer:2:1,coteach:2,coteach_est,jocor:0.5:3,jocor_est"


def test_a_seed_in_a_stack_equals_the_seed_trained_alone_with_the_new_baselines(seeds2, tmp_path):
    """Two-model cells, peer cells and estimated-T cells in a warm-up variant: seed 1 trained beside
    seed 0 writes the bytes it writes trained alone; the estimated cells report T's error."""
    d, labels = seeds2
    p = proto(warmup=2)
    outs = [str(tmp_path / f"all{s}") for s in range(2)]
    summaries = train.train_setting(str(d), [str(x) for x in labels], parse_cells(CELLS), p, outs, progress=False)
    alone = train.train_group(str(d), str(labels[1]), parse_cells(CELLS), p, str(tmp_path / "alone"), progress=False)
    assert alone == summaries[1]
    assert (tmp_path / "alone" / "group.json").read_bytes() == (tmp_path / "all1" / "group.json").read_bytes()
    for c in alone["cells"]:
        rel = Path("cells") / c["variant"] / c["cell_id"] / "curves.csv"
        assert (tmp_path / "alone" / rel).read_bytes() == (tmp_path / "all1" / rel).read_bytes()
    by = {c["cell_id"]: c for c in summaries[0]["cells"]}
    estimated = [by[i] for i in ("forward_est_97", "coteach_est_10_97", "jocor_est_0.9_10_97")]
    assert len({c["transition_mae"] for c in estimated}) == 1          # one estimate per seed and quantile
    assert 0 < estimated[0]["transition_mae"] < 0.5 and 0 <= estimated[0]["noise_rate_hat"] < 1
    assert by["backward_est_50"]["transition_mae"] != estimated[0]["transition_mae"]
    assert by["ce_0"]["transition_mae"] is None and by["coteach_2"]["noise_rate_hat"] is None


def test_cells_equal_cells_trained_alone_beside_peer_and_two_model_cells_with_batch_norm(tmp_path):
    """A CNN (batch norm): the peer cells' second forward pass leaves the other models' running
    statistics as they were, and two-model cells take their own slots: CE and LS beside them equal
    CE and LS trained alone, to the bit."""
    d = write_dataset(tmp_path / "img.npz", d=36, image=True)
    labels = write_labels(tmp_path, d, rate=0.2)
    p = proto(epochs=2, model="cnn", model_args={"width": 0.25})
    together = train.train_group(str(d), str(labels), parse_cells("ce,ls:0.2,peer:0.5,coteach"), p,
                                 str(tmp_path / "together"), progress=False)
    alone = train.train_group(str(d), str(labels), parse_cells("ce,ls:0.2"), p, str(tmp_path / "alone"),
                              progress=False)
    assert together["cells"][:2] == alone["cells"]


def test_peer_samples_are_a_fresh_shuffle_of_the_training_split_per_step(seeds2):
    """Per step and seed: inputs the first b and labels the next b of a permutation of the seed's
    training split (never its held-out samples); over many steps every training sample is a peer
    input about b/n of the time (binomial tolerance)."""
    from smoothbench.engine.phase import PhaseRun, SettingContext
    from smoothbench.engine.checkpoints import CheckpointDir
    from smoothbench.engine.device import prepare_data
    from smoothbench.engine.protocol import Protocol
    from smoothbench.data import datasets as data_mod

    d, labels = seeds2
    ds = data_mod.load_dataset(str(d))
    noisy = [np.load(x)["noisy_labels"] for x in labels]
    protocol = Protocol.from_dict(proto())
    dev = torch.device("cpu")
    data = prepare_data(ds, noisy, [np.eye(4)] * 2, 0.1, [11, 12], dev)
    ctx = SettingContext(["g0", "g1"], protocol, dev, data, CheckpointDir("/nonexistent"), "fp", None)
    v = protocol.variants[0]
    run = PhaseRun(ctx, "k", "main", 1, v.optimizer, v.schedule, [0, 1], parse_cells("peer:0.5"))
    b, steps = 32, 3000
    n = data.train_idx.shape[1]
    counts = torch.zeros(2, len(ds.y_train))
    for step in range(steps):
        x_idx, y_idx = run.peer_indices(step, b)
        for s in range(2):
            both = torch.cat([x_idx[s], y_idx[s]])
            assert len(set(both.tolist())) == 2 * b                                 # one permutation: disjoint
            assert set(both.tolist()) <= set(data.train_idx[s].tolist())           # the training split only
        counts.scatter_add_(1, x_idx, torch.ones_like(x_idx, dtype=torch.float))
    held_out = torch.zeros(2, len(ds.y_train), dtype=torch.bool).scatter_(1, data.val_idx, True)
    assert counts[held_out].sum() == 0
    share = b / n
    freq = counts[~held_out] / steps
    assert (freq - share).abs().max() < 6 * math.sqrt(share * (1 - share) / steps)
    first, again = run.peer_indices(5, b), run.peer_indices(5, b)
    assert torch.equal(first[0], again[0]) and not torch.equal(first[0], run.peer_indices(6, b)[0])


def test_the_engine_refuses_estimated_t_without_any_warm_up(seeds2, tmp_path):
    d, labels = seeds2
    with pytest.raises(ValueError, match=r"^cell forward_est_97: forward_est estimates T from a CE warm-up model, "
                                         r"and no protocol variant has a warm-up"):
        train.train_group(str(d), str(labels[0]), parse_cells("ce,forward_est"), proto(), str(tmp_path / "x"),
                          progress=False)


def test_a_variant_without_warm_up_estimates_t_from_another_variants_warm_up(seeds2, tmp_path):
    """Patrini et al.'s two stages: the direct variant's corrected cells train from scratch with T
    estimated from the warm-up variant's CE model, the same estimate its warm-up cells get."""
    d, labels = seeds2
    p = proto(warmup=2)
    p["variants"]["direct"] = {"epochs": 2, "optimizer": {"lr": 0.05}}
    s = train.train_group(str(d), str(labels[0]), parse_cells("ce,forward_est"), p, str(tmp_path / "x"),
                          progress=False)
    by = {(c["variant"], c["cell_id"]): c for c in s["cells"]}
    assert by[("direct", "forward_est_97")]["transition_mae"] == by[("warmup", "forward_est_97")]["transition_mae"]
    assert by[("direct", "forward_est_97")]["branch"] is None


@pytest.mark.slow
def test_killed_run_with_two_model_peer_and_estimated_cells_resumes_to_the_uninterrupted_result(tmp_path):
    """Co-teaching, JoCoR, peer and estimated-T cells after a warm-up, two seeds in one stack:
    SIGKILL inside the cells' own phase (after its first checkpoint), resume, the same bytes."""
    d = write_dataset(tmp_path / "big.npz", n_train=1500, n_test=300, d=64)
    labels = [write_labels(tmp_path, d, seed=s) for s in (0, 1)]
    protocol_json = json.dumps(proto(epochs=5, warmup=1, model_args={"hidden": [128, 128]}, batch_size=32))
    cells = "ce:0,forward_est,peer:0.5,coteach:2,jocor_est"
    cmd = train_command(d, labels[0], cells, protocol_json)
    cmd[cmd.index("--labels") + 1:cmd.index("--labels") + 2] = [str(x) for x in labels]
    kill_and_resume(cmd, tmp_path, epochs=5, cell_ids=[c.id for c in parse_cells(cells)], outs=2, variant="warmup",
                    wait_for="warmup.pt", timeout=600)
