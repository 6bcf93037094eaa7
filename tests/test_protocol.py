"""The training protocol: parsing, the schema as its one source of ranges and defaults,
the rules a schema cannot express, and the learning-rate schedules."""

from __future__ import annotations

import math

import pytest

from smoothbench import protocol, schema


def test_protocol_defaults_and_round_trip():
    p = protocol.Protocol.from_dict({})
    assert p.model == "mlp" and p.warmup.epochs == 0 and p.schedule.name == "cosine"
    again = protocol.Protocol.from_dict(p.to_dict())
    assert again == p
    p2 = protocol.Protocol.from_dict({"warmup": {"epochs": 2, "optimizer": {"lr": 0.02}},
                                   "schedule": {"name": "multistep", "milestones": [3, 5]}})
    assert p2.warmup.optimizer.lr == 0.02 and p2.schedule.milestones == (3, 5)


@pytest.mark.parametrize("bad, match", [
    ({"epochs": -1}, "protocol.epochs = -1: must be >= 0"),
    ({"optimizer": {"name": "adamw"}}, 'protocol.optimizer.name = "adamw": allowed: sgd'),
    ({"optimizer": {"lr": 0}}, "protocol.optimizer.lr = 0: must be > 0"),
    ({"schedule": {"name": "linear"}}, 'protocol.schedule.name = "linear": allowed: constant, multistep, cosine'),
    ({"val_fraction": 0.7}, "protocol.val_fraction = 0.7: must be < 0.5"),
    ({"batchsize": 3}, "protocol.batchsize: unknown key; allowed: augment, batch_size"),
    ({"warmup": {"epochs": 1, "lr": 0.1}}, "protocol.warmup.lr: unknown key; allowed: epochs, optimizer, schedule"),
    ({"epochs": 0}, "protocol.epochs = 0: a group needs at least 1 epoch in all"),
    ({"optimizer": {"momentum": 0.0}}, "protocol.optimizer.momentum = 0.0: nesterov needs momentum > 0"),
    ({"warmup": {"epochs": 2, "schedule": {"name": "multistep", "milestones": [4, 2]}}},
     "protocol.warmup.schedule.milestones = [4, 2]: milestones must be strictly increasing"),
])
def test_protocol_bad_values_name_the_key(bad, match):
    with pytest.raises(ValueError) as info:
        protocol.Protocol.from_dict(bad)
    assert str(info.value).startswith(match) and "\n" not in str(info.value)


def test_learning_rate_schedules_closed_forms():
    opt = protocol.OptimizerConfig(lr=0.1)
    const = protocol.ScheduleConfig(name="constant")
    multi = protocol.ScheduleConfig(name="multistep", milestones=(2, 4), gamma=0.1)
    cos = protocol.ScheduleConfig(name="cosine")
    assert protocol.learning_rate(opt, const, 7, 3, 10, 10) == 0.1
    assert [protocol.learning_rate(opt, multi, e, 0, 10, 6) for e in range(6)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    assert protocol.learning_rate(opt, cos, 0, 0, 10, 4) == pytest.approx(0.1)
    assert protocol.learning_rate(opt, cos, 2, 0, 10, 4) == pytest.approx(0.05)
    assert protocol.learning_rate(opt, cos, 3, 5, 10, 4) == pytest.approx(0.05 * (1 + math.cos(math.pi * 35 / 40)))


def test_dataclass_defaults_are_the_schema_defaults():
    """The schema is the one source of defaults: the dataclasses restate none of their own."""
    root = schema.load_schema()
    assert protocol.Protocol().to_dict() == schema.defaults(root["$defs"]["protocol"], root)
    assert protocol.Protocol.from_dict({}) == protocol.Protocol()


def test_grid_and_protocol_share_the_rules():
    """The study check reports a protocol rule with the key path of params.yaml."""
    from smoothbench import grid

    study = {"datasets": ["digits"], "noise": {"symmetric": [0.2]}, "methods": {"ce": [0.0]}, "seeds": [0],
             "protocol": {"default": {"epochs": 0}}}
    with pytest.raises(ValueError, match=r"^s.yaml: protocol.default.epochs = 0: a group needs at least 1 epoch"):
        grid.validate_params(study, source="s.yaml")
