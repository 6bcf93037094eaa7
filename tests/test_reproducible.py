"""CPU training is bit-reproducible where the hardware allows: a model's bits do not depend on
what else shares its stack, nor on the x86-64 CPU it trains on.

(a) A seed stacked with other seeds equals the seed alone, bit for bit, layer by layer: the
logits and every parameter's gradient of every registered model, under the engine's CPU
settings (``device.set_determinism``) with one thread, as the workflow trains.
(b) One ``smoothbench train`` process gives the same ``group.json`` bytes whatever instruction
sets the CPU offers MKL and oneDNN: a second run is told that the CPU has no AVX2
(``MKL_ENABLE_INSTRUCTIONS=SSE4_2``, ``ONEDNN_MAX_CPU_ISA=SSE41``), as MKL sees an AMD CPU
(its AVX2 path is Intel's only) or an older one.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import torch
from helpers import train_command, write_cifar_shaped, write_dataset, write_labels

from smoothbench.engine import device, models

# tiny configurations: (input shape, model_args)
TINY = {
    "mlp": ((1, 8, 8), {"hidden": [16, 12]}),
    "cnn": ((3, 8, 8), {"width": 0.25}),
    "resnet18": ((3, 8, 8), {"width": 0.125}),
    "resnet34": ((3, 8, 8), {"width": 0.0625}),
    "fastnet": ((3, 8, 8), {"width": 0.125}),
}
K, CELLS, BATCH = 10, 3, 16


@pytest.fixture
def engine_cpu():
    """The engine's CPU settings and one thread (the workflow's), put back after the test."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.mkldnn.enabled, torch.get_num_threads())
    device.set_determinism(torch.device("cpu"))
    torch.set_num_threads(1)
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.mkldnn.enabled = saved[2]
    torch.set_num_threads(saved[3])


def _stack(name: str, seeds: list[int]) -> torch.nn.Module:
    """A stack of len(seeds) x CELLS models, seed-major, each seed's cells its own model, as the
    engine lays out a setting (``phase.PhaseRun``)."""
    shape, args = TINY[name]
    singles = [models.build_model(name, 1, shape, K, seed=s, **args).state_dict() for s in seeds]
    stack = models.build_model(name, len(seeds) * CELLS, shape, K, seed=0, **args)
    stack.load_state_dict({k: torch.cat([st[k].expand(CELLS, *st[k].shape[1:]) for st in singles])
                           for k in singles[0]})
    return stack


def _step(stack: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits of a training-mode forward pass and every parameter's gradient of a per-model loss."""
    stack.zero_grad(set_to_none=True)
    out = stack(x)                                           # (M, B, K)
    out.logsumexp(-1).sum().backward()                       # each model's gradient from its own logits
    return out.detach(), {k: p.grad for k, p in stack.named_parameters()}


@pytest.mark.parametrize("name", sorted(TINY))
def test_a_seed_stacked_with_others_computes_what_it_computes_alone(name, engine_cpu):
    assert set(TINY) == set(models.names())
    shape = TINY[name][0]
    g = torch.Generator().manual_seed(0)
    batches = torch.randn(3, BATCH, *shape, generator=g)        # each seed its own batch
    together, together_grads = _step(_stack(name, [7, 8, 9]), batches)
    alone, alone_grads = _step(_stack(name, [9]), batches[2:])
    assert torch.equal(together[-CELLS:], alone), "logits"
    for key, grad in alone_grads.items():
        assert torch.equal(together_grads[key][-CELLS:], grad), key
    # evaluation: one batch shared by the whole stack
    shared = torch.randn(BATCH, *shape, generator=g)
    with torch.no_grad():
        stack3, stack1 = _stack(name, [7, 8, 9]).eval(), _stack(name, [9]).eval()
        assert torch.equal(stack3(shared)[-CELLS:], stack1(shared)), "eval logits"


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cpu")
    vectors, images = write_dataset(tmp / "vec.npz"), write_cifar_shaped(tmp / "img.npz", n_train=160, n_test=64,
                                                                         side=16)
    return {"mlp": (vectors, write_labels(tmp, vectors, rate=0.3)),
            "fastnet": (images, write_labels(tmp, images, rate=0.4))}


PROTOCOLS = {
    "mlp": {"model": "mlp", "model_args": {"hidden": [64, 32]}, "batch_size": 32, "device": "cpu",
            "variants": {"direct": {"epochs": 3}}},
    "fastnet": {"model": "fastnet", "model_args": {"width": 0.125}, "batch_size": 32, "device": "cpu",
                "augment": {"crop_padding": 2, "hflip": True}, "variants": {"direct": {"epochs": 2}}},
}


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_training_gives_the_same_bytes_whatever_instruction_sets_the_cpu_offers(name, setting, tmp_path):
    data, labels = setting[name]
    out = {}
    for cpu, extra in (("this", {}), ("no-avx2", {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41"})):
        cmd = train_command(data, labels, "ce:0,ls:0.4,nls:-0.5", json.dumps(PROTOCOLS[name]), "--threads", "1",
                            "--out", str(tmp_path / cpu))
        run = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **extra})
        assert run.returncode == 0, run.stderr
        out[cpu] = (tmp_path / cpu / "group.json").read_bytes()
    assert json.loads(out["this"])["cells"][0]["status"] == "ok"
    assert out["this"] == out["no-avx2"]
