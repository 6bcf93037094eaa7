"""Every registered method's loss against a plain per-sample formula written here, one sample
at a time: values and gradients, at several parameter values, stacked with different
parameters per model, in float64 and float32; the literature's reductions to CE; the
stack's one mixed call against one call per method; and the registry's contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from smoothbench.core import draws
from smoothbench import methods as registry
from smoothbench.methods.registry import Batch
from smoothbench.methods.stackloss import StackLoss

K = 5


def _transition(k=K, rate=0.3):
    t = torch.full((k, k), rate / (k - 1), dtype=torch.float64)
    t.fill_diagonal_(1 - rate)
    t[0] = torch.tensor([0.5, 0.3, 0.1, 0.05, 0.05][:k], dtype=torch.float64) / sum([0.5, 0.3, 0.1, 0.05, 0.05][:k])
    return t


def _rce_ref(p, y):
    return -sum(max(p[j], 1e-7) * math.log(1.0 if j == y else 1e-4) for j in range(len(p)))


# per-sample references: (logits z as a 1-D float64 tensor, label y, parameter values, T) -> loss tensor
def _ref(name, z, y, v, t=None):
    logp = torch.log_softmax(z, -1)
    p = logp.exp()
    k = z.shape[0]
    if name in ("ce", "ls", "nls"):
        (r,) = v
        return -(1 - r) * logp[y] - r / k * logp.sum()
    if name in ("bce", "bls", "bnls"):
        (r,) = v
        if k == 2:
            return F.binary_cross_entropy_with_logits(z[1] - z[0], torch.tensor((1 - r) * y + r / 2, dtype=z.dtype))
        tgt = torch.tensor([(1 - r) * (j == y) + r / 2 for j in range(k)], dtype=z.dtype)
        return sum(-(tgt[j] * F.logsigmoid(z[j]) + (1 - tgt[j]) * F.logsigmoid(-z[j])) for j in range(k))
    if name == "gce":
        (q,) = v
        return (1 - p[y] ** q) / q
    if name == "sce":
        a, b = v
        rce = -sum(torch.clamp(p[j], min=1e-7) * math.log(1.0 if j == y else 1e-4) for j in range(k))
        return -a * logp[y] + b * rce
    if name == "nce_rce":
        a, b = v
        rce = -sum(torch.clamp(p[j], min=1e-7) * math.log(1.0 if j == y else 1e-4) for j in range(k))
        return a * logp[y] / logp.sum() + b * rce
    if name == "mae":
        (s,) = v
        return s * sum(torch.abs(p[j] - (1.0 if j == y else 0.0)) for j in range(k)) / 2
    if name == "focal":
        (g,) = v
        return -((1 - p[y]) ** g) * logp[y] if g else -logp[y]
    if name == "boot_soft":
        (b,) = v
        return -sum((b * (j == y) + (1 - b) * p[j]) * logp[j] for j in range(k))
    if name == "boot_hard":
        (b,) = v
        top = int(torch.argmax(p.detach()))
        return -b * logp[y] - (1 - b) * logp[top]
    if name == "forward":
        return -torch.log(sum(p[i] * t[i, y] for i in range(k)))
    if name == "backward":
        tinv = torch.linalg.inv(t)
        return sum(tinv[y, j] * -logp[j] for j in range(k))
    raise KeyError(name)


PLAIN = {  # method -> parameter sets to test (the plain per-sample formulas above)
    "ce": [(0.0,)], "ls": [(0.1,), (0.6,), (1.0,)], "nls": [(-0.2,), (-1.0,), (-6.0,)],
    "bce": [(0.0,)], "bls": [(0.2,), (0.9,)], "bnls": [(-0.2,), (-2.0,)],
    "gce": [(0.1,), (0.7,), (1.0,)], "sce": [(0.1, 1.0), (1.0, 0.0), (0.5, 2.0)],
    "nce_rce": [(1.0, 1.0), (10.0, 0.1)], "mae": [(1.0,), (2.0,)], "focal": [(0.0,), (0.5,), (2.0,)],
    "boot_soft": [(0.95,), (1.0,), (0.5,)], "boot_hard": [(0.8,), (1.0,)], "forward": [()], "backward": [()],
}


def _data(m, b, k, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = (torch.randn(m, b, k, generator=g, dtype=torch.float64) * 2.5).to(dtype)
    y = torch.randint(0, k, (m, b), generator=g)
    z[0, 0, y[0, 0]] += 40.0       # one confident sample: p_y rounds to 1 in float32
    return z, y


def _kernel_loss(name, z, y, values, t=None):
    """The registry loss of ``name`` on (M, B, K) logits with per-model ``values`` (M lists)."""
    m = registry.get(name)
    params = torch.tensor([m.args(v) for v in values], dtype=torch.float64).reshape(len(values), 1, -1)
    tt = None
    if m.transition is not None:
        tt = torch.from_numpy(m.transition(t.numpy())).expand(len(values), 1, *t.shape).to(z.dtype)
    batch = Batch(z.unsqueeze(1), y.unsqueeze(1), z.shape[-1], transition=tt)
    return m.loss(batch, params).squeeze(1)                      # (M, B)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
@pytest.mark.parametrize("name", sorted(PLAIN))
def test_loss_values_and_gradients_equal_the_per_sample_formula(name, dtype, tol):
    """Each model of the stack has its own parameters; every sample is checked alone."""
    values = PLAIN[name]
    k = 2 if name in ("bce", "bls", "bnls") and dtype == torch.float32 else K  # K = 2 is the binary-logit path
    t = _transition(k)
    z, y = _data(len(values), 9, k, dtype)
    x = z.clone().requires_grad_(True)
    ours = _kernel_loss(name, x, y, values, t)
    ours.sum().backward()
    for i, v in enumerate(values):
        for n in range(z.shape[1]):
            zi = z[i, n].double().clone().requires_grad_(True)
            ref = _ref(name, zi, int(y[i, n]), v, t)
            ref.backward()
            assert ours[i, n].item() == pytest.approx(ref.item(), rel=tol, abs=tol), (name, v, n)
            torch.testing.assert_close(x.grad[i, n].double(), zi.grad, rtol=tol * 10, atol=tol * 10)


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_losses_stay_finite_with_confident_and_extreme_logits(name):
    z = torch.tensor([[[60.0, -60.0, 0.0, 1.0, -1.0], [-80.0, 80.0, 5.0, 0.0, 0.0]]]).expand(len(PLAIN[name]), -1, -1)
    y = torch.tensor([0, 1]).expand(len(PLAIN[name]), -1)
    x = z.clone().requires_grad_(True)
    loss = _kernel_loss(name, x, y, PLAIN[name], _transition())
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(x.grad).all(), name


REDUCTIONS = {  # methods that become CE at a parameter value (the literature's reductions)
    "ls": (0.0,), "focal": (0.0,), "sce": (1.0, 0.0), "boot_soft": (1.0,), "boot_hard": (1.0,),
    "gce": (1e-7,), "peer": (0.0,), "elr": (0.0, 0.7),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_methods_reduce_to_ce_at_their_ce_parameter(name):
    z, y = _data(1, 40, K, torch.float64, seed=3)
    m = registry.get(name)
    params = torch.tensor([m.args(REDUCTIONS[name])], dtype=torch.float64).reshape(1, 1, -1)
    keys = draws.keys([5], "cpu").reshape(1, 1)
    a, b = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    state = torch.zeros(1, 1, 40, K, dtype=torch.float64)
    index = torch.arange(40).reshape(1, 1, 40)
    ours = m.loss(Batch(a.unsqueeze(1), y.unsqueeze(1), K, draw_key=keys, index=index, state=state), params)
    ce = -torch.log_softmax(b, -1).gather(-1, y.unsqueeze(-1)).squeeze(-1)
    ours.sum().backward()
    ce.sum().backward()
    torch.testing.assert_close(ours.squeeze(1), ce, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-6, atol=1e-6)


def test_correction_with_the_identity_is_ce():
    z, y = _data(2, 30, K, torch.float64, seed=4)
    eye = torch.eye(K, dtype=torch.float64)
    ce = -torch.log_softmax(z, -1).gather(-1, y.unsqueeze(-1)).squeeze(-1)
    for name in ("forward", "backward"):
        torch.testing.assert_close(_kernel_loss(name, z, y, [(), ()], eye), ce)


def test_backward_refuses_a_singular_transition_matrix():
    t = np.array([[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(ValueError, match="singular"):
        registry.get("backward").transition(t)


def test_peer_loss_is_ce_minus_alpha_ce_of_random_predictions_with_random_labels():
    """Per sample: -log p_y(x_n) + alpha * min(-log p_{y_n2}(x_n1), -log 1e-8), with n1 and n2
    drawn independently and uniformly from the batch (per model, per step)."""
    b = 64
    z, y = _data(2, b, K, torch.float64, seed=5)
    alphas = [(0.5,), (1.0,)]
    keys = draws.keys([11, 12], "cpu").reshape(2, 1)
    params = torch.tensor(alphas, dtype=torch.float64).reshape(2, 1, 1)
    ours = registry.get("peer").loss(Batch(z.unsqueeze(1), y.unsqueeze(1), K, draw_key=keys, step=9), params)
    n1 = draws.integers(keys, "peer_x", 9, b, 0, b)
    n2 = draws.integers(keys, "peer_y", 9, b, 0, b)
    logp = torch.log_softmax(z, -1)
    for i, (alpha,) in enumerate(alphas):
        for n in range(b):
            peer = min(-logp[i, int(n1[i, 0, n]), int(y[i, int(n2[i, 0, n])])].item(), -math.log(1e-8))
            assert ours[i, 0, n].item() == pytest.approx(-logp[i, n, y[i, n]].item() + alpha * -peer, rel=1e-12)
    # the peer indices: uniform over the batch, independent of each other
    many = draws.integers(draws.keys([3], "cpu"), "peer_x", 0, 200_000, 0, 8)
    freq = torch.bincount(many.reshape(-1), minlength=8).double() / many.numel()
    assert (freq - 1 / 8).abs().max() < 5 * math.sqrt(1 / 8 * 7 / 8 / many.numel())


def test_elr_keeps_running_targets_and_matches_its_formula():
    """ELR over two steps, the second revisiting samples of the first: t <- beta t + (1 - beta)
    normalise(clamp(p)); loss = -log p_y + lambda log(1 - <clamp(p), t>)."""
    lam, beta, n = 3.0, 0.7, 6
    state = torch.zeros(1, 1, n, K, dtype=torch.float64)
    params = torch.tensor([[[lam, beta]]], dtype=torch.float64)
    expected_t = torch.zeros(n, K, dtype=torch.float64)
    for step, idx in enumerate(([0, 1, 2, 3], [2, 3, 4, 5])):
        z, y = _data(1, 4, K, torch.float64, seed=10 + step)
        index = torch.tensor(idx).reshape(1, 1, 4)
        got = registry.get("elr").loss(Batch(z.unsqueeze(1), y.unsqueeze(1), K, index=index, state=state), params)
        for j, i in enumerate(idx):
            p = torch.softmax(z[0, j], -1).clamp(1e-4, 1 - 1e-4)
            expected_t[i] = beta * expected_t[i] + (1 - beta) * p / p.sum()
            ref = -torch.log_softmax(z[0, j], -1)[y[0, j]] + lam * math.log(1 - float((p * expected_t[i]).sum()))
            assert got[0, 0, j].item() == pytest.approx(ref.item(), rel=1e-10)
        torch.testing.assert_close(state[0, 0], expected_t)


def test_stack_mixing_every_method_equals_one_call_per_method():
    """The stack's mixed call (one call per loss function, on views) gives each model the loss
    and the gradient of its own method alone, per seed (labels per seed, T per seed)."""
    spec = ("ce,ls:0.2,nls:-1,flip:0.3,bce,bls:0.4,bnls:-0.2,gce:0.5,sce:0.1:1,nce_rce:1:1,mae:2,focal:0.5,"
            "boot_soft:0.9,boot_hard:0.8,forward,backward,peer:0.5,elr:3:0.7")
    cells = registry.parse_cells(spec)
    s, c, b, n = 2, len(cells), 8, 20
    g = torch.Generator().manual_seed(0)
    base = torch.randn(s, c, b, K, generator=g, dtype=torch.float64)
    y = torch.randint(0, K, (s, b), generator=g)
    index = torch.stack([torch.randperm(n, generator=g)[:b] for _ in range(s)])
    keys = draws.keys(range(100, 100 + s * c), "cpu").reshape(s, c)
    t = torch.stack([_transition(), _transition(rate=0.2)])
    stack = StackLoss(cells, s, K, torch.device("cpu"), keys, t, num_train=n)
    assert len(stack.blocks) < len(cells)      # CE, LS, NLS and flip share one GLS call; the BCE family one
    x = base.clone().requires_grad_(True)
    mixed = stack(x, y, step=4, index=index)
    mixed.sum().backward()
    for j, cell in enumerate(cells):
        alone = StackLoss([cell], s, K, torch.device("cpu"), keys[:, j:j + 1], t, num_train=n)
        xa = base[:, j:j + 1].clone().requires_grad_(True)
        out = alone(xa, y, step=4, index=index)
        out.sum().backward()
        torch.testing.assert_close(mixed[:, j:j + 1], out, rtol=1e-12, atol=1e-12, msg=cell.id)
        torch.testing.assert_close(x.grad[:, j:j + 1], xa.grad, rtol=1e-12, atol=1e-12, msg=cell.id)


def test_flip_cells_see_flipped_labels_and_others_the_given_ones():
    cells = registry.parse_cells("ce,flip:0.5")
    s, b = 1, 4000
    y = torch.zeros(s, b, dtype=torch.long)
    z = torch.zeros(s, 2, b, K, dtype=torch.float64)
    z[..., 0] = 30.0                       # certain of class 0: CE ~ 0 for label 0, ~30 for any other
    stack = StackLoss(cells, s, K, torch.device("cpu"), draws.keys([1, 2], "cpu").reshape(1, 2))
    out = stack(z, y, step=0)
    assert out[0, 0].item() < 1e-6
    assert out[0, 1].item() == pytest.approx(0.5 * 30.0, rel=0.05)   # half the labels flipped away from 0


# ----------------------------------------------------------------------------- the registry's contract


def test_cells_spec_round_trip_and_defaults():
    cells = registry.parse_cells("sce, ls:0.2, ce, forward, elr:2, gce:0.7")
    assert [c.id for c in cells] == ["ce_0", "ls_0.2", "gce_0.7", "sce_0.1_1", "forward", "elr_2_0.7"]
    assert registry.parse_cells(registry.format_cells(cells)) == cells
    with pytest.raises(ValueError, match="unknown; allowed: ce, ls"):
        registry.parse_cells("xyz:1")
    with pytest.raises(ValueError, match=r"ls r \(r\) must lie in \(0, 1\]"):
        registry.parse_cells("ls:1.5")
    with pytest.raises(ValueError, match="takes 0 parameter"):
        registry.parse_cells("forward:1")


def test_settings_forms_of_params_yaml():
    sce = registry.get("sce")
    assert sce.settings(0.3) == (0.3, 1.0)
    assert sce.settings({"beta": 0.5}) == (0.1, 0.5)
    assert sce.settings("default") == (0.1, 1.0)
    assert registry.get("forward").settings("default") == ()
    with pytest.raises(ValueError, match="unknown parameter gamma; allowed: alpha, beta"):
        sce.settings({"gamma": 1})
    with pytest.raises(ValueError, match="no parameters; write 'default'"):
        registry.get("forward").settings(1.0)


def test_every_method_has_the_contract_fields():
    for name in registry.names():
        m = registry.get(name)
        assert m.label and m.reference and m.description, name
        assert m.baseline is None or m.baseline in registry.names(), name
        m.check(m.defaults)
        assert m.parse_params_text(m.params_text(m.defaults)) == m.defaults


def test_methods_command_lists_every_method_with_its_parameters_and_reference(capsys):
    from smoothbench.cli import commands as cli

    assert cli.main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in registry.names():
        m = registry.get(name)
        assert f"\n{name} " in "\n" + out, name
        assert m.reference in out
        for p in m.params:
            assert f"{p.name} ({p.symbol}) in {p.range_text}" in out or f"{p.name} in {p.range_text}" in out
