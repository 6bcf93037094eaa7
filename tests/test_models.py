"""Stacked model zoo: a stack of M models must behave exactly like M separate models."""

import copy

import pytest
import torch
import torch.nn.functional as F

from smoothbench.engine.models import build_model, names
from smoothbench.engine.models.measure import count_flops_per_sample, params_per_model
from smoothbench.engine.layers import assign_model, replicate_state, select_state

K = 5
# tiny versions of every model, so the tests run in seconds on a CPU
TINY = {
    "mlp": ((1, 8, 8), {"hidden": [16, 12]}),
    "cnn": ((1, 8, 8), {"width": 0.25}),
    "resnet18": ((3, 16, 16), {"width": 0.125}),
    "resnet34": ((3, 16, 16), {"width": 0.0625}),
    "fastnet": ((3, 8, 8), {"width": 0.125}),
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models gain nothing from intra-op threads, and lose a lot on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_registry_covers_all_models():
    assert set(TINY) == set(names())


def tiny(name, num_models, seed=0):
    shape, args = TINY[name]
    return build_model(name, num_models, shape, K, seed, **args)


def batch(name, n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *TINY[name][0], generator=g), torch.randint(0, K, (n,), generator=g)


def perturbed_stack(name, M=3, dtype=torch.float32):
    """A stack whose slices 1.. differ from slice 0 in every parameter and BN buffer."""
    model = tiny(name, M).to(dtype)
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for k, t in model.state_dict().items():
            noise = torch.randn(t[1:].shape, generator=g)
            if k.endswith("running_var"):
                t[1:] *= torch.exp(0.3 * noise)
            else:
                t[1:] += 0.3 * noise * (t.std() if t.numel() > 1 and t.std() > 0 else 1.0)
    return model


def singles_of(stack, name, dtype=torch.float32):
    out = []
    for m in range(stack.num_models):
        single = tiny(name, 1, seed=999).to(dtype)  # deliberately other init: assign must overwrite all
        assign_model(single, 0, select_state(stack.state_dict(), m))
        out.append(single)
    return out


def assert_state_close(a, b, **tol):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=lambda s, k=k: f"{k}: {s}", **tol)


TOL = dict(rtol=1e-4, atol=1e-5)
# float64: the stack must agree with separate models to rounding; float32: to ~1e-5
# (grouped and plain convolutions use different kernels, and deep nets with
# batch-statistics BN on tiny batches amplify float32 rounding a little)
DTYPE_TOL = {torch.float64: dict(rtol=1e-9, atol=1e-10), torch.float32: TOL}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", names())
def test_stack_equals_separate_models_train_mode(name, dtype):
    tol = DTYPE_TOL[dtype]
    stack = perturbed_stack(name, dtype=dtype)
    singles = singles_of(stack, name, dtype)
    x, y = batch(name)
    x = x.to(dtype)
    stack.train()
    state_before = copy.deepcopy(stack.state_dict())
    logits = stack(x)
    assert logits.shape == (3, x.shape[0], K)
    # the slices really differ, so the comparison below is not vacuous
    assert not torch.allclose(logits[0], logits[1], atol=1e-3)
    loss = sum(F.cross_entropy(logits[m], y) for m in range(3))
    loss.backward()
    grads = {k: p.grad for k, p in stack.named_parameters()}
    state_after = stack.state_dict()
    for m, single in enumerate(singles):
        single.train()
        out = single(x)
        torch.testing.assert_close(out[0], logits[m].detach(), **tol)
        F.cross_entropy(out[0], y).backward()
        for k, p in single.named_parameters():
            scale = p.grad.abs().max().item()  # gradients: tolerance relative to their scale
            torch.testing.assert_close(p.grad[0], grads[k][m], rtol=tol["rtol"], atol=10 * tol["rtol"] * scale,
                                       msg=lambda s, k=k: f"grad {k}[{m}]: {s}")
        # running statistics were updated per model, as in the separate model
        assert_state_close(single.state_dict(), select_state(state_after, m), **tol)
    # ... and they did move, in every slot (the stack's BN buffers really get updated)
    stats = [k for k in state_after if k.endswith(("running_mean", "running_var"))]
    assert bool(stats) == (name != "mlp")
    for k in stats:
        assert (state_after[k] != state_before[k]).any(dim=1).all(), k


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", names())
def test_stack_equals_separate_models_eval_mode(name, dtype):
    stack = perturbed_stack(name, dtype=dtype).eval()
    singles = singles_of(stack, name, dtype)
    x, _ = batch(name)
    x = x.to(dtype)
    before = copy.deepcopy(stack.state_dict())
    with torch.no_grad():
        logits = stack(x)
        for m, single in enumerate(singles):
            torch.testing.assert_close(single.eval()(x)[0], logits[m], **DTYPE_TOL[dtype])
    assert_state_close(stack.state_dict(), before, rtol=0, atol=0)  # eval leaves running stats alone


@pytest.mark.parametrize("name", names())
def test_replicas_identical_and_equal_to_single_model(name):
    stack, single = tiny(name, 3, seed=7), tiny(name, 1, seed=7)
    s3, s1 = stack.state_dict(), single.state_dict()
    assert s3.keys() == s1.keys()
    for k, t in s3.items():
        assert t.shape == (3, *s1[k].shape[1:]), k
        for m in range(3):
            assert torch.equal(t[m], s1[k][0]), (k, m)
    other = tiny(name, 1, seed=8).state_dict()
    weights = [k for k in s1 if k.endswith("weight") and s1[k].dim() > 2]
    assert weights and all(not torch.equal(s1[k], other[k]) for k in weights)


@pytest.mark.parametrize("name", names())
def test_every_tensor_has_model_dim_first(name):
    for M in (1, 4):
        model = tiny(name, M)
        for k, t in model.state_dict().items():
            assert t.dim() >= 2 and t.shape[0] == M, (k, tuple(t.shape))
            assert t.is_floating_point(), k  # no num_batches_tracked


def test_state_round_trips():
    stack = perturbed_stack("cnn")
    sd = stack.state_dict()
    one = select_state(sd, 2)
    assert all(v.shape[0] == 1 for v in one.values())
    rep = replicate_state(one, 4)
    for k, v in rep.items():
        assert v.shape[0] == 4 and all(torch.equal(v[i], sd[k][2]) for i in range(4))
    # assign slot 2 into slot 0 and back again
    assign_model(stack, 0, one)
    assert_state_close(select_state(stack.state_dict(), 0), one, rtol=0, atol=0)
    assert_state_close(select_state(stack.state_dict(), -1), one, rtol=0, atol=0)
    # replicated state loads into an M-stack whose models then all agree
    four = tiny("cnn", 4, seed=3)
    four.load_state_dict(rep)
    x, _ = batch("cnn")
    with torch.no_grad():
        out = four.eval()(x)
    for i in range(1, 4):
        torch.testing.assert_close(out[i], out[0], rtol=0, atol=0)
    # select_state clones: editing it does not touch the model
    k0 = next(iter(one))
    one[k0].add_(1.0)
    assert not torch.equal(one[k0][0], stack.state_dict()[k0][2])
    with pytest.raises(ValueError):
        replicate_state(sd, 2)  # already has 3 models
    with pytest.raises(KeyError):
        assign_model(stack, 0, {})


@pytest.mark.parametrize("name", names())
def test_channels_last_input_gives_same_logits(name):
    stack = perturbed_stack(name)
    x, _ = batch(name)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    assert stack.to(memory_format=torch.channels_last) is stack  # accepted, not an error
    for train in (False, True):
        a, b = copy.deepcopy(stack).train(train), copy.deepcopy(stack).train(train)
        with torch.no_grad():
            torch.testing.assert_close(a(x_cl), b(x), **TOL)


@pytest.mark.parametrize("name", ["cnn", "fastnet"])
def test_autocast_bf16(name):
    stack = perturbed_stack(name).train()
    x, y = batch(name)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = stack(x)
    assert out.shape == (3, x.shape[0], K) and torch.isfinite(out).all()
    sum(F.cross_entropy(out[m].float(), y) for m in range(3)).backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in stack.parameters())
    assert all(b.dtype == torch.float32 for b in stack.buffers())


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 2, 2), (1, 8, 8), (1, 28, 28)])
def test_cnn_handles_small_images(shape):
    model = build_model("cnn", 2, shape, 10, 0, width=0.25)
    assert model(torch.randn(3, *shape)).shape == (2, 3, 10)


def test_mlp_on_vectors():
    model = build_model("mlp", 2, (40,), 10, 0, hidden=[8])
    assert model(torch.randn(3, 40)).shape == (2, 3, 10)


def test_bad_arguments_fail_with_one_line():
    with pytest.raises(ValueError, match="allowed: mlp, cnn, resnet18, resnet34, fastnet"):
        build_model("vgg", 1, (3, 32, 32), 10, 0)
    for name in ("cnn", "resnet18", "fastnet"):
        with pytest.raises(ValueError, match="image input_shape") as e:
            build_model(name, 1, (40,), 10, 0)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="model_args"):
        build_model("mlp", 1, (40,), 10, 0, width=2)
    with pytest.raises(ValueError, match="num_models"):
        build_model("mlp", 0, (40,), 10, 0)


@pytest.mark.parametrize("name,expected", [("resnet18", 11_173_962), ("resnet34", 21_282_122)])
def test_cifar_resnet_parameter_counts(name, expected):
    model = build_model(name, 2, (3, 32, 32), 10, 0)
    total = sum(p.numel() for p in model.parameters())
    assert total == 2 * expected
    assert params_per_model(model) == expected


def test_flops_per_sample():
    mlp = build_model("mlp", 3, (1, 8, 8), 10, 0, hidden=[16, 12])
    assert count_flops_per_sample(mlp, (1, 8, 8)) == 64 * 16 + 16 * 12 + 12 * 10
    r18 = build_model("resnet18", 1, (3, 32, 32), 10, 0)
    macs = count_flops_per_sample(r18, (3, 32, 32))
    assert 0.55e9 < macs < 0.56e9  # the well-known ~0.56 GMACs of CIFAR ResNet-18
    # per model: independent of M; and it changes no state
    cnn1, cnn4 = tiny("cnn", 1), tiny("cnn", 4).train()
    before = copy.deepcopy(cnn4.state_dict())
    assert count_flops_per_sample(cnn1, (1, 8, 8)) == count_flops_per_sample(cnn4, (1, 8, 8)) > 0
    assert cnn4.training
    assert_state_close(cnn4.state_dict(), before, rtol=0, atol=0)
