"""Sample selection (cells of two models): Co-teaching and JoCoR against their per-step formulas
written here on tiny batches, values and gradients, with different parameters per cell and a
different noise rate per seed, at epochs before, during and after the forget rate's ramp."""

from __future__ import annotations

import pytest
import torch

from smoothbench import methods as registry
from smoothbench.methods.registry import Batch

K, B = 3, 7


def _kept(losses: list[float], keep: int) -> list[int]:
    """The ``keep`` samples of smallest loss (ties: the earlier sample)."""
    return sorted(sorted(range(len(losses)), key=lambda i: (losses[i], i))[:keep])


def _ce(z: torch.Tensor, y: int) -> torch.Tensor:
    return -torch.log_softmax(z, -1)[y]


def _kl(za: torch.Tensor, zb: torch.Tensor) -> torch.Tensor:
    """KL(softmax(za) || softmax(zb))."""
    pa = torch.softmax(za, -1)
    return (pa * (torch.log_softmax(za, -1) - torch.log_softmax(zb, -1))).sum()


def _setup(values, seed):
    s, n = 2, len(values)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(s, n, 2, B, K, generator=g, dtype=torch.float64) * 2
    y = torch.randint(0, K, (s, B), generator=g)
    rates = torch.tensor([[0.3] * n, [0.55] * n], dtype=torch.float64)   # the noise rate each seed's cells get
    return z, y, rates


@pytest.mark.parametrize("epoch", [0, 2, 5, 12])
def test_coteaching_each_model_averages_its_ce_over_the_other_models_small_loss_samples(epoch):
    """R = tau min(t / T_k, 1); each model keeps floor((1 - R) B) samples of smallest CE; model 1's
    loss is the mean of its CE over model 2's kept samples and model 2's over model 1's."""
    values = [(4.0,), (10.0,)]
    z, y, rates = _setup(values, seed=epoch)
    x = z.clone().requires_grad_(True)
    params = torch.tensor([values], dtype=torch.float64)                   # (1, n, P)
    batch = Batch(x, y.unsqueeze(1).unsqueeze(1).expand(2, len(values), 2, B), K, noise_rate=rates, epoch=epoch,
                  epochs=20)
    ours = registry.get("coteach").loss(batch, params).mean(-1)           # (S, n, 2)
    ours.sum().backward()
    for si in range(2):
        for c, (tk,) in enumerate(values):
            forget = rates[si, c].item() * min(epoch / tk, 1.0)
            keep = int((1 - forget) * B)
            zs = [z[si, c, m].clone().requires_grad_(True) for m in range(2)]
            ce = [[_ce(zs[m][i], int(y[si, i])) for i in range(B)] for m in range(2)]
            kept = [_kept([v.item() for v in ce[m]], keep) for m in range(2)]
            for m in range(2):
                ref = sum(ce[m][i] for i in kept[1 - m]) / keep
                grad, = torch.autograd.grad(ref, zs[m])
                assert ours[si, c, m].item() == pytest.approx(ref.item(), rel=1e-12), (si, c, m)
                torch.testing.assert_close(x.grad[si, c, m], grad, rtol=1e-10, atol=1e-12)
            if epoch == 0:
                assert keep == B                                            # nothing forgotten at the start


@pytest.mark.parametrize("epoch", [0, 3, 9])
def test_jocor_trains_both_models_on_the_small_loss_samples_of_one_joint_loss(epoch):
    """joint_i = (1 - lambda)(CE_1 + CE_2) + lambda (KL(p_1 || p_2) + KL(p_2 || p_1)); the floor((1 - R) B)
    samples of smallest joint loss are kept; their mean joint loss is the first model's loss (the
    second's is 0), and its gradient reaches both models."""
    values = [(0.9, 5.0), (0.3, 2.0)]
    z, y, rates = _setup(values, seed=10 + epoch)
    x = z.clone().requires_grad_(True)
    params = torch.tensor([values], dtype=torch.float64)
    batch = Batch(x, y.unsqueeze(1).unsqueeze(1).expand(2, len(values), 2, B), K, noise_rate=rates, epoch=epoch,
                  epochs=20)
    ours = registry.get("jocor").loss(batch, params).mean(-1)
    ours.sum().backward()
    for si in range(2):
        for c, (lam, tk) in enumerate(values):
            keep = int((1 - rates[si, c].item() * min(epoch / tk, 1.0)) * B)
            z1 = z[si, c, 0].clone().requires_grad_(True)
            z2 = z[si, c, 1].clone().requires_grad_(True)
            joint = [(1 - lam) * (_ce(z1[i], int(y[si, i])) + _ce(z2[i], int(y[si, i])))
                     + lam * (_kl(z1[i], z2[i]) + _kl(z2[i], z1[i])) for i in range(B)]
            kept = _kept([v.item() for v in joint], keep)
            ref = sum(joint[i] for i in kept) / keep
            g1, g2 = torch.autograd.grad(ref, (z1, z2))
            assert ours[si, c, 0].item() == pytest.approx(ref.item(), rel=1e-12)
            assert ours[si, c, 1].item() == 0.0
            torch.testing.assert_close(x.grad[si, c, 0], g1, rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(x.grad[si, c, 1], g2, rtol=1e-10, atol=1e-12)


def test_selection_methods_are_cells_of_two_models_marked_by_what_they_are_told():
    for name, note in (("coteach", "oracle rate"), ("coteach_est", "estimated rate"), ("jocor", "oracle rate"),
                       ("jocor_est", "estimated rate")):
        m = registry.get(name)
        assert m.models == 2 and m.noise == note and registry.noise_note(name) == note
        assert registry.label(registry.cell(m, m.defaults)).endswith(f"({m.label_params(m.defaults)}; {note})")
    assert registry.get("coteach").oracle and not registry.get("coteach_est").oracle
    assert registry.get("forward_est").estimated and not registry.get("forward").estimated
