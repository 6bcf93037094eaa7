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
        g, detach = v
        if not g:
            return -logp[y]
        weight = (1 - p[y]) ** g
        return -(weight.detach() if detach else weight) * logp[y]    # detach 1: a constant weight
    if name == "boot_soft":
        (b,) = v
        return -sum((b * (j == y) + (1 - b) * p[j]) * logp[j] for j in range(k))
    if name == "boot_hard":
        (b,) = v
        top = int(torch.argmax(p.detach()))
        return -b * logp[y] - (1 - b) * logp[top]
    if name in ("forward", "forward_est"):
        return -torch.log(sum(p[i] * t[i, y] for i in range(k)))
    if name in ("backward", "backward_est"):
        tinv = torch.linalg.inv(t)
        return sum(tinv[y, j] * -logp[j] for j in range(k))
    raise KeyError(name)


PLAIN = {  # method -> parameter sets to test (the plain per-sample formulas above)
    "ce": [(0.0,)], "ls": [(0.1,), (0.6,), (1.0,)], "nls": [(-0.2,), (-1.0,), (-6.0,)],
    "bce": [(0.0,)], "bls": [(0.2,), (0.9,)], "bnls": [(-0.2,), (-2.0,)],
    "gce": [(0.1,), (0.7,), (1.0,)], "sce": [(0.1, 1.0), (1.0, 0.0), (0.5, 2.0)],
    "nce_rce": [(1.0, 1.0), (10.0, 0.1)], "mae": [(1.0,), (2.0,)],
    "focal": [(0.0, 0.0), (0.5, 0.0), (2.0, 0.0), (0.5, 1.0), (2.0, 1.0)],
    "boot_soft": [(0.95,), (1.0,), (0.5,)], "boot_hard": [(0.8,), (1.0,)], "forward": [()], "backward": [()],
    # the loss functions of forward and backward with the T given (an estimated one in training)
    "forward_est": [(97.0,), (100.0,)], "backward_est": [(97.0,), (50.0,)],
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
    "ls": (0.0,), "focal": (0.0, 0.0), "sce": (1.0, 0.0), "boot_soft": (1.0,), "boot_hard": (1.0,),
    "gce": (1e-7,), "elr": (0.0, 0.7),
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


def _stable_ce(z, y):
    """The peer-loss authors' stabilised CE of one sample, written here: -log(softmax(z)[y] + 1e-5)."""
    return -torch.log(torch.softmax(z, -1)[y] + 1e-5)


def test_peer_main_term_is_the_authors_stabilised_ce():
    """Logits [0, 0, -15], label 2: the authors' -log(softmax + 1e-5) gives 11.498, the exact
    CE 15.693; with alpha 0 the peer loss is the authors' term."""
    z = torch.tensor([[[[0.0, 0.0, -15.0]]]], dtype=torch.float64)
    y = torch.tensor([[[2]]])
    params = torch.tensor([[[0.0, 0.0]]], dtype=torch.float64)
    batch = Batch(z, y, 3, peer_logits=z.clone(), peer_labels=y.clone(), epoch=0, epochs=1)
    got = registry.get("peer").loss(batch, params).item()
    assert got == pytest.approx(11.498, abs=5e-4)
    assert -torch.log_softmax(z, -1)[0, 0, 0, 2].item() == pytest.approx(15.693, abs=5e-4)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
def test_peer_loss_values_and_gradients_equal_the_authors_formula_per_sample(dtype, tol):
    """Per sample, per model (different alpha and schedule per model): scale * (CE*(z_n, y_n) -
    alpha_t CE*(z'_n, y'_n)), CE* the stabilised CE, z' the peer predictions and y' the peer labels;
    alpha_t = alpha (constant) or, ramped, alpha * max(0, (e - 4) / 5) at epoch e of 10 with the loss
    divided by 1 + alpha_t. Gradients with respect to both the predictions and the peer predictions."""
    values = [(0.5, 0.0), (2.0, 0.0), (2.0, 1.0), (0.95, 1.0)]
    m, b = len(values), 7
    z, y = _data(m, b, K, dtype, seed=5)
    zp, yp = _data(m, b, K, dtype, seed=6)
    params = torch.tensor(values, dtype=torch.float64).reshape(m, 1, 2)
    for epoch, share in ((2, 0.0), (4, 0.0), (7, 3 / 5), (9, 1.0)):
        x = z.clone().requires_grad_(True)
        xp = zp.clone().requires_grad_(True)
        batch = Batch(x.unsqueeze(1), y.unsqueeze(1), K, peer_logits=xp.unsqueeze(1), peer_labels=yp.unsqueeze(1),
                      epoch=epoch, epochs=10)
        ours = registry.get("peer").loss(batch, params).squeeze(1)
        ours.sum().backward()
        for i, (alpha, ramp) in enumerate(values):
            alpha_t = alpha * share if ramp else alpha
            scale = 1 / (1 + alpha_t) if ramp else 1.0
            for n in range(b):
                zi = z[i, n].double().clone().requires_grad_(True)
                zpi = zp[i, n].double().clone().requires_grad_(True)
                ref = scale * (_stable_ce(zi, int(y[i, n])) - alpha_t * _stable_ce(zpi, int(yp[i, n])))
                ref.backward()
                assert ours[i, n].item() == pytest.approx(ref.item(), rel=tol, abs=tol), (values[i], epoch, n)
                torch.testing.assert_close(x.grad[i, n].double(), zi.grad, rtol=tol * 10, atol=tol * 10)
                torch.testing.assert_close(xp.grad[i, n].double(), zpi.grad, rtol=tol * 10, atol=tol * 10)


def test_focal_differentiates_through_its_weight_unless_detached():
    """Logits [2, 0, 0], label 0, gamma 0.5: both conventions give the loss 0.11056; the gradient on
    the label's logit is -0.1418 through the weight (Lin et al.) and -0.0983 with it detached (the
    active-passive losses code)."""
    z = torch.tensor([[2.0, 0.0, 0.0]], dtype=torch.float64).expand(2, 1, 3).clone().requires_grad_(True)
    y = torch.zeros(2, 1, dtype=torch.long)
    params = torch.tensor([[0.5, 0.0], [0.5, 1.0]], dtype=torch.float64).reshape(2, 1, 2)
    loss = registry.get("focal").loss(Batch(z.unsqueeze(1), y.unsqueeze(1), 3), params).squeeze(1)
    loss.sum().backward()
    assert loss[0, 0].item() == pytest.approx(0.11056, abs=5e-6)
    assert loss[1, 0].item() == pytest.approx(0.11056, abs=5e-6)
    assert z.grad[0, 0, 0].item() == pytest.approx(-0.1418, abs=5e-5)
    assert z.grad[1, 0, 0].item() == pytest.approx(-0.0983, abs=5e-5)


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
    and the gradient of its own method alone, per seed (labels per seed, T and noise rates per
    seed, true and estimated), cells of two models and peer predictions included."""
    spec = ("ce,ls:0.2,nls:-1,flip:0.3,bce,bls:0.4,bnls:-0.2,gce:0.5,sce:0.1:1,nce_rce:1:1,mae:2,focal:0.5,"
            "focal:0.5:1,boot_soft:0.9,boot_hard:0.8,forward,backward,forward_est:97,backward_est:50,peer:0.5,"
            "peer:2:1,elr:3:0.7,coteach:10,coteach_est:2:97,jocor:0.9:10,jocor_est:0.5:3:50")
    cells = registry.parse_cells(spec)
    s, b, n = 2, 8, 20
    g = torch.Generator().manual_seed(0)
    stack_t = torch.stack([_transition(), _transition(rate=0.2)])
    estimates = {97.0: (torch.stack([_transition(rate=0.1), _transition(rate=0.4)]), torch.tensor([0.1, 0.4])),
                 50.0: (torch.stack([_transition(rate=0.25), _transition(rate=0.05)]), torch.tensor([0.3, 0.05]))}
    rates = torch.tensor([0.3, 0.2], dtype=torch.float64)
    keys = draws.keys(range(100, 100 + s * len(cells)), "cpu").reshape(s, len(cells))

    def make(cs, ks):
        return StackLoss(cs, s, K, torch.device("cpu"), ks, stack_t, num_train=n, noise_rates=rates,
                         estimates=estimates)

    stack = make(cells, keys)
    slots = stack.slots
    assert slots == len(cells) + 4            # four cells of two models
    base = torch.randn(s, slots, b, K, generator=g, dtype=torch.float64)
    peer_base = torch.randn(s, slots, b, K, generator=g, dtype=torch.float64)
    y = torch.randint(0, K, (s, b), generator=g)
    y_peer = torch.randint(0, K, (s, b), generator=g)
    index = torch.stack([torch.randperm(n, generator=g)[:b] for _ in range(s)])
    assert len(stack.blocks) < len(cells)      # CE, LS, NLS and flip share one GLS call; the BCE family one
    x, xp = base.clone().requires_grad_(True), peer_base.clone().requires_grad_(True)
    mixed = stack(x, y, step=4, index=index, epoch=3, epochs=8, peer=(xp, y_peer))
    mixed.sum().backward()
    for j, cell in enumerate(cells):
        alone = make([cell], keys[:, j:j + 1])
        lo, hi = stack.slot(j), stack.slot(j) + registry.get(cell.method).models
        xa = base[:, lo:hi].clone().requires_grad_(True)
        xpa = peer_base[:, lo:hi].clone().requires_grad_(True)
        out = alone(xa, y, step=4, index=index, epoch=3, epochs=8, peer=(xpa, y_peer))
        out.sum().backward()
        torch.testing.assert_close(mixed[:, lo:hi], out, rtol=1e-12, atol=1e-12, msg=cell.id)
        torch.testing.assert_close(x.grad[:, lo:hi], xa.grad, rtol=1e-12, atol=1e-12, msg=cell.id)
        peer_grad = xpa.grad if xpa.grad is not None else torch.zeros_like(xpa)     # no peer term: none
        torch.testing.assert_close(xp.grad[:, lo:hi], peer_grad, rtol=1e-12, atol=1e-12, msg=cell.id)


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
        if m.baseline is not None and m.group not in ("gls", "flip", "bce"):     # every baseline says how it is run
            assert m.convention and f"convention: {m.convention}" in out, name
        for lit in m.literature:
            assert f"default on {', '.join(lit.families)}: " in out and lit.source in out, name
    assert "\n            default on mnist: alpha 0.01, beta 1 — " in out          # SCE on MNIST
