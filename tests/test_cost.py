"""GPU-hours of a study from measured epochs (``smoothbench bench cost``): the sum over the
jobs' stacks against a hand count, the epoch clock against scripted times, the engine's
passes on a real (tiny) CPU measurement, and the printed hours against the printed
measurement (what the numbers are is not asserted: no timed tests)."""

from __future__ import annotations

import re

import pytest
import tqdm
import yaml

from smoothbench.cli import commands as cli
from smoothbench.bench import cost
from smoothbench.study import grid
from smoothbench.engine import training as train
from smoothbench.engine.models import measure

CELLS = "ce:0,ls:0.4,flip:0.36"


def _study(seeds=(0, 1), **protocol) -> dict:
    return grid.validate_params({
        "datasets": ["cifar10"], "noise": {"symmetric": [0.2, 0.4]},
        "methods": {"ce": [0.0], "ls": [0.4], "flip": [0.36]}, "seeds": list(seeds),
        "protocol": {"default": {"model": "fastnet", "device": "cpu", **protocol}},
    })


WARM = {"epochs": 5, "optimizer": {"lr": 0.1, "momentum": 0.0, "nesterov": False}}


def test_cost_is_epochs_times_seconds_per_epoch_over_every_jobs_stacks():
    """Two jobs (noise rates) of two seeds; per job one shared warm-up (5 epochs of one model per
    seed) used by two variants, and three variants of 2 seeds x 3 cells (direct 10 epochs; warma 3
    and warmb 4 after the warm-up). With 2 s per epoch of the warm-up stack and 5 s of the
    variants' stack: 2 x (5 x 2 + (10 + 3 + 4) x 5) s."""
    study = _study(variants={"direct": {"epochs": 10}, "warma": {"epochs": 3, "warmup": WARM},
                             "warmb": {"epochs": 4, "warmup": {**WARM, "branch": "best"}}})
    phases = cost.study_phases(study)
    assert sorted((p.warmup, p.num_models, p.epochs) for p in phases) == \
        sorted([(True, 2, 5), (False, 6, 10), (False, 6, 3), (False, 6, 4)] * 2)
    hours = cost.study_cost(study, lambda p: 2.0 if p.warmup else 5.0)
    assert hours == pytest.approx(2 * (5 * 2 + (10 + 3 + 4) * 5) / 3600)
    # the same count in model-epochs as `smoothbench validate` makes: 4 groups x (5 + 3 x 17)
    assert sum(p.num_models * p.epochs for p in phases) == grid.model_epochs(study) == 4 * (5 + 3 * 17)


def test_a_stack_is_measured_once_for_its_methods_and_seeds_not_its_rates():
    part = cost._compute_part(grid.protocol_for(_study(), "cifar10"))
    key = cost.Phase("cifar10", part, 2, CELLS, 1).key
    assert cost.Phase("cifar10", part, 2, "ce:0,ls:0.2,flip:0.18", 7).key == key      # rates, epochs: same compute
    assert cost.Phase("cifar10", part, 2, "ce:0,ls:0.2,ls:0.4", 1).key != key         # no flip cell
    assert cost.Phase("cifar10", part, 3, CELLS, 1).key != key                        # another stack
    assert cost.Phase("cifar10", part, 2, CELLS, 1, warmup=True).key != key
    assert cost.Phase("cifar100", part, 2, CELLS, 1).key != key
    other = cost._compute_part(grid.protocol_for(_study(val_fraction=0.2), "cifar10"))
    assert cost.Phase("cifar10", other, 2, CELLS, 1).key != key


def _engine_advancing(pattern):
    def engine(data, labels, cells, proto, outs, ckpt, device, progress, budget):
        assert proto["variants"]["measure"]["epochs"] == 3 and not progress
        with tqdm.tqdm(total=6, disable=True) as bar:
            for n in pattern:
                bar.update(n)
    return engine


def test_the_epoch_clock_sums_the_median_epoch_of_each_pass(monkeypatch, tmp_path):
    """A stand-in engine trains its stack in two passes, advancing its progress bar by 0 as a
    pass starts and by 1 after each epoch, at scripted times."""
    marks = iter([0.0, 10.0, 13.0, 17.0,          # pass 1: start, ends of epochs 1-3 (epochs 2, 3: 3 s, 4 s)
                  20.0, 21.0, 23.0, 24.0])        # pass 2: epochs 2, 3: 2 s, 1 s
    monkeypatch.setattr(cost.time, "perf_counter", lambda: next(marks))
    monkeypatch.setattr(train, "train_setting", _engine_advancing([0, 1, 1, 1, 0, 1, 1, 1]))
    monkeypatch.setattr(cost, "_synthetic", lambda *a: [tmp_path / "s0.npz", tmp_path / "s1.npz"])
    phase = [p for p in cost.study_phases(_study()) if not p.warmup][0]
    assert cost.measure_epoch(phase, 32, "cpu", tmp_path) == (3.5 + 1.5, 2)
    assert tqdm.tqdm is not cost._EpochClock and not hasattr(tqdm.tqdm, "marks")   # put back

    monkeypatch.setattr(train, "train_setting", _engine_advancing([0] + [1] * 6))  # twice per epoch
    monkeypatch.setattr(cost.time, "perf_counter", lambda: 0.0)
    with pytest.raises(RuntimeError, match=r"is not one start and one advance per epoch"):
        cost.measure_epoch(phase, 32, "cpu", tmp_path)


def test_the_engine_measured_in_one_pass_and_in_the_passes_of_a_small_memory_budget(monkeypatch, tmp_path):
    """The contract the measurement reads, on the real (tiny) engine: one start and one advance
    per epoch of each pass; with room for one model only, 2 seeds x 3 cells train in 6 passes."""
    phase = [p for p in cost.study_phases(_study()) if not p.warmup][0]
    seconds, passes = cost.measure_epoch(phase, 16, "cpu", tmp_path / "one", tiny=True, epochs=2)
    assert seconds > 0 and passes == 1
    per_model = measure.memory_per_model("fastnet", (3, 32, 32), 10, 128, 4, width=cost.TINY_WIDTH)
    monkeypatch.setenv(train.MEMORY_BUDGET_ENV, str(1.5 * per_model / 2**20))
    assert cost.measure_epoch(phase, 16, "cpu", tmp_path / "six", tiny=True, epochs=2)[1] == 6


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
    assert measured[:7] == ["cifar10", "fastnet", "auto", "variant", "2 x 2", "1", "0.1"]
    full = float(measured[8])
    # printed to 3 and 1 decimals: the scaled figure agrees to the rounding of both
    assert full == pytest.approx(float(measured[7]) * 50_000 / 16, abs=0.0005 * 50_000 / 16 + 0.05)
    # 2 jobs (noise rates) of one 2-seed x 2-cell stack, 30 epochs each; 4 groups, 8 cells
    assert row[:5] == ["small", "2", "4", "8", "240"]
    assert float(row[5]) == pytest.approx(2 * 30 * full / 3600, rel=0.01, abs=0.06)


def test_cli_cost_errors_are_one_line(tmp_path, capsys):
    preset = tmp_path / "digits.yaml"
    preset.write_text(yaml.safe_dump({"datasets": ["digits"], "noise": {"symmetric": [0.2]},
                                      "methods": {"ce": [0.0]}, "seeds": [0]}))
    assert cli.main(["bench", "cost", "--device", "cpu", "--quick", "--presets", str(preset)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"smoothbench bench: error: bench cost: {preset}: dataset digits holds vectors, and the cost is measured "
        f"on synthetic images; allowed: mnist5k, mnist, fashion_mnist, cifar10, cifar100")
    assert cli.main(["bench", "cost", "--device", "cpu", "--quick", "--images", "0", "--presets", str(preset)]) == 2
    assert capsys.readouterr().err.strip() == "smoothbench bench: error: bench cost: --images 0; allowed >= 1"
    assert cli.main(["bench", "cost", "--device", "cpu", "--presets", "config/paper-cifar10.yaml"]) == 2
    assert "full-size stacks on the CPU take hours" in capsys.readouterr().err
