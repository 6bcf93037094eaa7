"""The training protocol: parsing, the schema as its one source of ranges and defaults,
the rules a schema cannot express, and the learning-rate schedules."""

from __future__ import annotations

import math

import pytest

from smoothbench.engine import protocol
from smoothbench.core import schema


def test_protocol_defaults_and_round_trip():
    p = protocol.Protocol.from_dict({})
    (direct,) = p.variants
    assert p.model == "mlp" and direct.name == "direct" and not direct.has_warmup
    assert direct.schedule.name == "cosine" and direct.epochs == 30
    again = protocol.Protocol.from_dict(p.to_dict())
    assert again == p
    p2 = protocol.Protocol.from_dict({"variants": {
        "direct": {"schedule": {"name": "multistep", "milestones": [3, 5]}},
        "warm": {"warmup": {"epochs": 2, "optimizer": {"lr": 0.02}, "branch": "best"}, "epochs": 4}}})
    d, w = p2.variants
    assert d.schedule.milestones == (3, 5) and w.warmup.optimizer.lr == 0.02 and w.warmup.branch == "best"
    assert (w.has_warmup, w.total_epochs, w.warmup.key == d.warmup.key) == (True, 6, False)
    assert protocol.Protocol.from_dict(p2.to_dict()) == p2


@pytest.mark.parametrize("bad, match", [
    ({"variants": {"direct": {"epochs": -1}}}, "protocol.variants.direct.epochs = -1: must be >= 1"),
    ({"variants": {"direct": {"epochs": 0}}}, "protocol.variants.direct.epochs = 0: must be >= 1"),
    ({"variants": {"d": {"optimizer": {"name": "adamw"}}}}, 'protocol.variants.d.optimizer.name = "adamw": allowed: sgd'),
    ({"variants": {"d": {"optimizer": {"lr": 0}}}}, "protocol.variants.d.optimizer.lr = 0: must be > 0"),
    ({"variants": {"d": {"schedule": {"name": "linear"}}}},
     'protocol.variants.d.schedule.name = "linear": allowed: constant, multistep, cosine'),
    ({"variants": {}}, "protocol.variants = {}"),
    ({"val_fraction": 0.7}, "protocol.val_fraction = 0.7: must be < 0.5"),
    ({"batchsize": 3}, "protocol.batchsize: unknown key; allowed: augment, batch_size"),
    ({"epochs": 3}, "protocol.epochs: unknown key; allowed:"),
    ({"variants": {"w": {"warmup": {"epochs": 1, "lr": 0.1}}}},
     "protocol.variants.w.warmup.lr: unknown key; allowed: branch, epochs, optimizer, schedule"),
    ({"variants": {"d": {"optimizer": {"momentum": 0.0}}}},
     "protocol.variants.d.optimizer.momentum = 0.0: nesterov needs momentum > 0"),
    ({"variants": {"w": {"warmup": {"epochs": 2, "schedule": {"name": "multistep", "milestones": [4, 2]}}}}},
     "protocol.variants.w.warmup.schedule.milestones = [4, 2]: milestones must be strictly increasing"),
    ({"val_fraction": 0, "variants": {"w": {"warmup": {"epochs": 2, "branch": "selected"}}}},
     'protocol.variants.w.warmup.branch = "selected": branching at the best held-out epoch needs a held-out split'),
    ({"augment": {"pad_fill": "white"}}, 'protocol.augment.pad_fill = "white": allowed: mean, black'),
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
    assert protocol.Protocol().to_dict() == protocol.complete(schema.defaults(root["$defs"]["protocol"], root))
    assert protocol.Protocol.from_dict({}) == protocol.Protocol()


def test_grid_and_protocol_share_the_rules():
    """The study check reports a protocol rule with the key path of params.yaml."""
    from smoothbench.study import grid

    study = {"datasets": ["digits"], "noise": {"symmetric": [0.2]}, "methods": {"ce": [0.0]}, "seeds": [0],
             "protocol": {"default": {"variants": {"w": {"schedule": {"name": "multistep"}}}}}}
    with pytest.raises(ValueError, match=r"^s.yaml: protocol.default.variants.w.schedule.milestones = \[\]: multistep"):
        grid.validate_params(study, source="s.yaml")


def test_the_dataclasses_take_their_defaults_from_the_schema():
    """One place holds each default: with other defaults in the schema (changed before the engine's
    protocol module is imported, in a fresh interpreter), the dataclasses follow them."""
    import subprocess
    import sys

    code = ("from smoothbench.core import schema\n"
            "defs = schema.load_schema()['$defs']\n"
            "defs['protocol']['properties']['batch_size']['default'] = 77\n"
            "defs['protocol']['properties']['augment']['properties']['pad_fill']['default'] = 'black'\n"
            "defs['optimizer']['properties']['lr']['default'] = 0.3\n"
            "defs['schedule']['properties']['milestones']['default'] = [4, 9]\n"
            "defs['variant']['properties']['epochs']['default'] = 11\n"
            "defs['variant']['properties']['warmup']['properties']['branch']['default'] = 'best'\n"
            "from smoothbench.engine import protocol as p\n"
            "v = p.VariantConfig()\n"
            "print(p.Protocol().batch_size, p.AugmentConfig().pad_fill, p.OptimizerConfig().lr, v.optimizer.lr,\n"
            "      p.ScheduleConfig().milestones, v.epochs, p.WarmupConfig().branch, p.Protocol().variants[0].epochs)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["77", "black", "0.3", "0.3", "(4,", "9)", "11", "best", "11"]
