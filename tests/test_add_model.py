"""A model is one entry in one place: a toy model registered by ONE ``register`` call (here, in
the test) is in the schema's enum with its own arguments, is validated with one-line errors
naming the key, and trains through ``smoothbench train``."""

from __future__ import annotations

import json
import math

import pytest
import torch

from smoothbench.cli import commands as cli
from smoothbench.engine import models
from smoothbench.study import grid
from helpers import write_dataset, write_labels

BUILT: list[dict] = []


def toy_linear(num_models, input_shape, num_classes, scale, bias):
    """The toy model's builder: one stacked linear map of the flattened input, its logits times
    ``scale``; records how it was called."""
    from smoothbench.engine.layers import StackedLinear
    from smoothbench.engine.models.base import StackedModel

    class ToyLinear(StackedModel):
        def __init__(self):
            super().__init__(num_models, input_shape, num_classes, scale=scale, bias=bias)
            self.head = StackedLinear(num_models, math.prod(input_shape), num_classes, bias=bool(bias))

        def forward(self, x):
            return self.head(self._vectors(x)) * scale

    BUILT.append({"num_models": num_models, "input_shape": tuple(input_shape), "scale": scale, "bias": bias})
    return ToyLinear()


@pytest.fixture
def toy_model():
    """The whole of adding a model: this one register call (taken out again after the test)."""
    entry = models.register(models.Model(
        "toylinear", "a linear map of the flattened input, its logits scaled", ("vector",),
        (models.Arg("scale", "number", 1.0, "the logits' multiplier", low=0.0, low_open=True),
         models.Arg("bias", "integer", 1, "1: the map has a bias, 0: none", low=0, high=1)),
        toy_linear))
    BUILT.clear()
    yield entry
    del models.REGISTRY[entry.name]


@pytest.fixture
def restore_torch():
    """Training switches deterministic algorithms (and the CPU's kernel choice) for the process."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.mkldnn.enabled, torch.get_num_threads())
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.mkldnn.enabled = saved[2]
    torch.set_num_threads(saved[3])


STUDY = {"datasets": ["digits"], "noise": {"symmetric": [0.2]}, "methods": {"ce": [0.0]}, "seeds": [0]}


def test_a_registered_model_is_in_the_schema_with_its_own_arguments(toy_model):
    root = grid.study_schema()
    assert root["$defs"]["model"]["enum"] == [*models.names()] and "toylinear" in root["$defs"]["model"]["enum"]
    args = root["$defs"]["model_args_toylinear"]
    assert args["additionalProperties"] is False and list(args["properties"]) == ["scale", "bias"]
    assert args["properties"]["scale"] == {"description": "the logits' multiplier", "default": 1.0,
                                           "type": "number", "exclusiveMinimum": 0.0}
    assert args["properties"]["bias"]["minimum"] == 0 and args["properties"]["bias"]["maximum"] == 1


@pytest.mark.parametrize("model_args, line", [
    ({"scale": 0}, "s.yaml: protocol.default.model_args.scale = 0: must be > 0"),
    ({"bias": 2}, "s.yaml: protocol.default.model_args.bias = 2: must be <= 1"),
    ({"hidden": [8]}, "s.yaml: protocol.default.model_args.hidden: unknown key; allowed: bias, scale"),
    ({"scale": "big"}, 's.yaml: protocol.default.model_args.scale = "big": must be a number'),
])
def test_a_registered_model_s_arguments_are_validated_in_one_line(toy_model, model_args, line):
    study = {**STUDY, "protocol": {"default": {"model": "toylinear", "model_args": model_args}}}
    with pytest.raises(ValueError) as info:
        grid.validate_params(study, source="s.yaml")
    assert str(info.value) == line
    ok = grid.validate_params({**STUDY, "protocol": {"default": {"model": "toylinear", "model_args": {"scale": 2}}}})
    assert ok["protocol"]["default"]["model"] == "toylinear"


def test_a_registered_model_trains_through_smoothbench_train(toy_model, tmp_path, monkeypatch, restore_torch):
    monkeypatch.setattr(cli.stops, "die_with_parent", lambda: None)     # not on the pytest process
    data = write_dataset(tmp_path / "toy.npz")                        # 12 features, K = 4, separable
    labels = write_labels(tmp_path, data, rate=0.0)
    protocol = {"model": "toylinear", "model_args": {"scale": 0.5}, "batch_size": 32, "device": "cpu",
                "variants": {"direct": {"epochs": 5, "optimizer": {"lr": 0.1}}}}
    rc = cli.main(["train", "--data", str(data), "--labels", str(labels), "--cells", "ce:0,ls:0.2",
                   "--protocol", json.dumps(protocol), "--out", str(tmp_path / "out"), "--no-progress",
                   "--threads", "1"])
    assert rc == 0
    # built with the study's argument and the entry's default, as the seed's single model and as the stack
    assert {tuple(sorted(b.items())) for b in BUILT} == {
        (("bias", 1), ("input_shape", (12,)), ("num_models", m), ("scale", 0.5)) for m in (1, 2)}
    group = json.loads((tmp_path / "out" / "group.json").read_text())
    assert group["protocol"]["model"] == "toylinear" and group["protocol"]["model_args"] == {"scale": 0.5}
    # it learnt: 360 training samples, chance 1/4 (+- 0.023 one standard error); a linear map separates them
    for cell in group["cells"]:
        assert cell["status"] == "ok" and cell["clean_train_acc"] > 0.5, cell
