"""GPU-hours of a study from measured epochs (``smoothbench bench cost``): the sum over the
groups' stacks against a hand count, the epoch clock against scripted times, and the real
engine on a tiny CPU measurement (what the numbers are is not asserted: no timed tests)."""

from __future__ import annotations

import re

import pytest
import tqdm
import yaml

from smoothbench import cli, cost, grid, train

CELLS = "ce:0,ls:0.4,flip:0.36"


def _study(**protocol) -> dict:
    return grid.validate_params({
        "datasets": ["cifar10"], "noise": {"symmetric": [0.2, 0.4]},
        "methods": {"ce": [0.0], "ls": [0.4], "flip": [0.36]}, "seeds": [0],
        "protocol": {"default": {"model": "fastnet", "device": "cpu", **protocol}},
    })


WARM = {"epochs": 5, "optimizer": {"lr": 0.1, "momentum": 0.0, "nesterov": False}}


def test_cost_is_epochs_times_seconds_per_epoch_over_every_groups_stacks():
    """Two groups; per group one shared warm-up (5 epochs of one model) used by two variants,
    and three variants of 3 cells (direct 10 epochs; warma 3 and warmb 4 after the warm-up).
    With 2 s per epoch for one model and 5 s for the 3-stack:
    2 x (5 x 2 + (10 + 3 + 4) x 5) s."""
    study = _study(variants={"direct": {"epochs": 10}, "warma": {"epochs": 3, "warmup": WARM},
                             "warmb": {"epochs": 4, "warmup": {**WARM, "branch": "best"}}})
    phases = cost.study_phases(study)
    assert sorted((p.num_models, p.epochs) for p in phases) == sorted([(1, 5), (3, 10), (3, 3), (3, 4)] * 2)
    seconds = {1: 2.0, 3: 5.0}
    hours = cost.study_cost(study, lambda p: seconds[p.num_models])
    assert hours == pytest.approx(2 * (5 * 2 + (10 + 3 + 4) * 5) / 3600)
    # the same count in model-epochs as `smoothbench validate` makes
    assert sum(p.num_models * p.epochs for p in phases) == grid.model_epochs(study) == 2 * (5 + 3 * 17)


def test_a_stack_is_measured_once_for_its_kinds_of_cells_not_their_rates():
    part = cost._compute_part(grid.protocol_for(_study(), "cifar10"))
    key = cost.Phase("cifar10", part, CELLS, 1).key
    assert cost.Phase("cifar10", part, "ce:0,ls:0.2,flip:0.18", 7).key == key        # rates, epochs: same compute
    assert cost.Phase("cifar10", part, "ce:0,ls:0.2,ls:0.4", 1).key != key           # no flip cell
    assert cost.Phase("cifar100", part, CELLS, 1).key != key
    other = cost._compute_part(grid.protocol_for(_study(val_fraction=0.2), "cifar10"))
    assert cost.Phase("cifar10", other, CELLS, 1).key != key


def test_the_epoch_clock_takes_the_median_of_the_epochs_after_the_first(monkeypatch, tmp_path):
    """A stand-in engine advances its progress bar once per epoch at scripted times."""
    marks = iter([0.0, 10.0, 13.0, 17.0])                   # start, then the ends of epochs 1, 2, 3

    def engine(data, labels, cells, proto, out, progress):
        assert proto["variants"]["measure"]["epochs"] == 3 and not progress
        with tqdm.tqdm(total=3, disable=True) as bar:
            bar.update(0)
            for _ in range(3):
                bar.update(1)

    monkeypatch.setattr(cost.time, "perf_counter", lambda: next(marks))
    monkeypatch.setattr(train, "train_group", engine)
    monkeypatch.setattr(cost, "_synthetic", lambda *a: None)
    phase = cost.study_phases(_study())[0]
    assert cost.measure_epoch(phase, 32, "cpu", tmp_path) == 3.5              # median of 3 and 4
    assert tqdm.tqdm is not cost._EpochClock and callable(tqdm.tqdm)         # put back

    def twice_per_epoch(*args, **kwargs):
        with tqdm.tqdm() as bar:
            for _ in range(6):
                bar.update(1)

    monkeypatch.setattr(train, "train_group", twice_per_epoch)
    monkeypatch.setattr(cost.time, "perf_counter", lambda: 0.0)
    with pytest.raises(RuntimeError, match="advanced its progress 6 times for 3 epochs"):
        cost.measure_epoch(phase, 32, "cpu", tmp_path)


def test_the_engine_advances_its_progress_once_per_epoch(tmp_path):
    """The contract the measurement reads: a real (tiny) engine run gives one time per epoch."""
    phase = [p for p in cost.study_phases(_study()) if p.num_models == 3][0]
    seconds = cost.measure_epoch(phase, 16, "cpu", tmp_path, tiny=True, epochs=3)
    assert seconds > 0


def test_cli_cost_of_a_small_study_prints_its_measurements_and_hours(tmp_path, capsys):
    preset = tmp_path / "small.yaml"
    preset.write_text(yaml.safe_dump({
        "datasets": ["cifar10"], "noise": {"symmetric": [0.2, 0.4]}, "methods": {"ce": [0.0], "ls": [0.4]},
        "seeds": [0, 1], "protocol": {"default": {"model": "fastnet", "device": "cpu",
                                                  "variants": {"direct": {"epochs": 30}}}}}))
    assert cli.main(["bench", "cost", "--device", "cpu", "--quick", "--images", "16", "--presets", str(preset)]) == 0
    out = capsys.readouterr().out
    assert "(CPU smoke run, NOT the presets' cost:" in out
    tables = [[[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()[2:]]
              for block in re.findall(r"(?m)^(?:\|.*\n)+", out)]
    [[measured], [row]] = tables
    assert measured[:5] == ["cifar10", "fastnet", "auto", "2", "0.1"]
    full = float(measured[6])
    # printed to 3 and 1 decimals: the scaled figure agrees to the rounding of both
    assert full == pytest.approx(float(measured[5]) * 50_000 / 16, abs=0.0005 * 50_000 / 16 + 0.05)
    # 4 groups (2 noise rates x 2 seeds) of one 2-stack, 30 epochs each
    assert row[:4] == ["small", "4", "8", "240"]
    assert float(row[4]) == pytest.approx(4 * 30 * full / 3600, rel=0.01, abs=0.06)


def test_cli_cost_errors_are_one_line(tmp_path, capsys):
    preset = tmp_path / "digits.yaml"
    preset.write_text(yaml.safe_dump({"datasets": ["digits"], "noise": {"symmetric": [0.2]},
                                      "methods": {"ce": [0.0]}, "seeds": [0]}))
    assert cli.main(["bench", "cost", "--device", "cpu", "--quick", "--presets", str(preset)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"smoothbench bench: error: bench cost: {preset}: dataset digits: its size is not known; "
        f"allowed: cifar10, cifar100, mnist, fashion_mnist")
    assert cli.main(["bench", "cost", "--device", "cpu", "--quick", "--images", "0", "--presets", str(preset)]) == 2
    assert capsys.readouterr().err.strip() == "smoothbench bench: error: bench cost: --images 0; allowed >= 1"
    assert cli.main(["bench", "cost", "--device", "cpu", "--presets", "config/paper-cifar10.yaml"]) == 2
    assert "full-size stacks on the CPU take hours" in capsys.readouterr().err
