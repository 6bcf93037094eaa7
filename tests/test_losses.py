"""The loss core against independent references: PyTorch's own label smoothing,
explicit soft-target cross-entropy, closed forms and empirical frequencies."""

import math

import pytest
import torch
import torch.nn.functional as F

from smoothbench.losses import (
    flip_labels,
    flip_to_smooth,
    gls_bce_loss,
    gls_loss,
    gls_targets,
    off_target_mass,
    smooth_to_flip,
)


def _data(M=3, B=17, K=7, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(M, B, K, generator=g, dtype=dtype) * 3
    labels = torch.randint(0, K, (B,), generator=g)
    return logits, labels


@pytest.mark.parametrize("r", [0.0, 0.1, 0.37, 0.8, 1.0])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_pytorch_label_smoothing(r, reduction):
    logits, labels = _data()
    ours = gls_loss(logits, labels, r, reduction=reduction)
    for m in range(logits.shape[0]):
        ref = F.cross_entropy(logits[m], labels, label_smoothing=r, reduction=reduction)
        torch.testing.assert_close(ours[m], ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("r", [-0.2, -1.0, -4.0, -8.0, 0.5])
def test_negative_rates_equal_explicit_soft_target_ce_and_gradient(r):
    logits, labels = _data(M=2, B=11, K=5, seed=1)
    K = logits.shape[-1]
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    ours = gls_loss(a, labels, r)
    target = (1 - r) * F.one_hot(labels, K).double() + r / K     # written out, no library helper
    ref = -(target * torch.log_softmax(b, -1)).sum(-1).mean(-1)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    ours.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12)
    # closed-form gradient of the mean soft-target CE: (softmax - target) / B
    closed = (torch.softmax(logits, -1) - target) / logits.shape[1]
    torch.testing.assert_close(a.grad, closed, rtol=1e-10, atol=1e-12)


def test_per_model_rates_equal_one_model_at_a_time():
    logits, labels = _data(M=4, B=9, K=6, seed=2)
    rates = torch.tensor([0.0, 0.3, -0.6, -2.0], dtype=torch.float64)
    stacked = gls_loss(logits, labels, rates, reduction="none")
    for m in range(4):
        alone = gls_loss(logits[m], labels, float(rates[m]), reduction="none")
        torch.testing.assert_close(stacked[m], alone, rtol=0, atol=0)


def test_per_model_labels_and_two_model_dims():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 8, 5, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 5, (2, 3, 8), generator=g)
    rates = torch.tensor([[0.0, 0.2, -0.4], [1.0, -1.0, 0.5]], dtype=torch.float64)
    out = gls_loss(logits, labels, rates)
    assert out.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            ref = gls_loss(logits[i, j], labels[i, j], float(rates[i, j]))
            torch.testing.assert_close(out[i, j], ref)


def test_loss_equals_target_weighted_form_with_gls_targets():
    logits, labels = _data(M=1, B=6, K=4, seed=4)
    for r in (-2.0, 0.0, 0.3):
        t = gls_targets(labels, 4, r).double()
        torch.testing.assert_close(t.sum(-1), torch.ones(6, dtype=torch.float64))
        ref = -(t * torch.log_softmax(logits[0], -1)).sum(-1).mean()
        torch.testing.assert_close(gls_loss(logits[0], labels, r), ref)


def test_gls_targets_values_and_per_model_rates():
    labels = torch.tensor([[0, 2], [1, 1]])
    t = gls_targets(labels, 3, torch.tensor([0.3, -0.6]))
    assert t.shape == (2, 2, 3)
    torch.testing.assert_close(t[0, 0], torch.tensor([0.8, 0.1, 0.1]))
    torch.testing.assert_close(t[1, 1], torch.tensor([-0.2, 1.4, -0.2]))
    torch.testing.assert_close(t.sum(-1), torch.ones(2, 2))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_accumulates_in_float32(dtype):
    logits, labels = _data(M=2, B=64, K=10, seed=5, dtype=torch.float32)
    half = logits.to(dtype)
    out = gls_loss(half, labels, torch.tensor([0.2, -1.0]))
    assert out.dtype == torch.float32
    ref = gls_loss(half.float(), labels, torch.tensor([0.2, -1.0]))
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


def test_extreme_logits_stay_finite():
    logits = torch.tensor([[[1e4, -1e4, 0.0], [-3e4, 3e4, 1e3]]])
    labels = torch.tensor([1, 0])
    for r in (0.0, 0.5, -8.0):
        x = logits.clone().requires_grad_(True)
        loss = gls_loss(x, labels, r)
        loss.sum().backward()
        assert torch.isfinite(loss).all() and torch.isfinite(x.grad).all()
    # closed form for the first sample at r = 0: -log p_1 = 2e4 (log-sum-exp dominated by 1e4)
    assert gls_loss(logits[0, :1], labels[:1], 0.0).item() == pytest.approx(2e4, rel=1e-6)


def test_no_model_dimension_returns_scalar():
    logits, labels = _data(M=1, B=5, K=3)
    assert gls_loss(logits[0], labels, 0.1).shape == ()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(smooth_rate=1.5), "smooth_rate must be <= 1"),
        (dict(smooth_rate=float("nan")), "smooth_rate must be <= 1"),
        (dict(smooth_rate=torch.tensor([0.1, 0.2])), "smooth_rate has shape"),
        (dict(labels=torch.tensor([0, 1, 7])), r"labels must lie in \[0, 3\]"),
        (dict(labels=torch.tensor([0, -1, 2])), r"labels must lie in \[0, 3\]"),
        (dict(labels=torch.tensor([0, 1])), "labels have shape"),
        (dict(labels=torch.tensor([0.0, 1.0, 2.0])), "integer tensor"),
        (dict(reduction="avg"), "reduction must be"),
    ],
)
def test_bad_input_raises_valueerror_naming_the_argument(kwargs, match):
    args = dict(logits=torch.zeros(3, 3, 4), labels=torch.tensor([0, 1, 2]), smooth_rate=0.1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        gls_loss(**args)


def test_rate_conversions_match_seed_000():
    K = 10
    for eps in (0.0, 0.18, 0.5, 0.9):
        r = flip_to_smooth(eps, K)
        assert r == pytest.approx(eps * K / (K - 1))
        assert smooth_to_flip(r, K) == pytest.approx(eps)
        # the seed's soft label: 1-eps on the target, eps/(K-1) elsewhere, equals the GLS target
        t = gls_targets(torch.tensor([3]), K, r)[0].double()
        assert t[3].item() == pytest.approx(1 - eps)
        assert t[0].item() == pytest.approx(off_target_mass(eps, K))
    with pytest.raises(ValueError, match="num_classes"):
        flip_to_smooth(0.1, 1)


def _binomial_tol(p, n, z=5.0):
    return z * math.sqrt(max(p * (1 - p), 1e-12) / n)


def test_flip_frequencies_within_sampling_error():
    K, B = 5, 200_000
    labels = torch.arange(B) % K
    g = torch.Generator().manual_seed(7)
    eps = torch.tensor([0.0, 0.2, 0.7])
    out = flip_labels(labels, K, eps, generator=g)
    assert out.shape == (3, B)
    assert torch.equal(out[0], labels)
    for m, e in enumerate(eps.tolist()):
        changed = (out[m] != labels).double().mean().item()
        assert abs(changed - e) < _binomial_tol(e, B)
        # each other class equally likely: eps/(K-1); never stays when flipped
        for k in range(1, K):
            to_k = ((labels == 0) & (out[m] == k)).double().sum().item() / (B / K)
            assert abs(to_k - e / (K - 1)) < _binomial_tol(e / (K - 1), B // K)


def test_flip_expected_target_equals_gls_target():
    """Seed 000: averaging one-hot flipped labels gives the GLS target at r = eps*K/(K-1)."""
    K, n = 4, 100_000
    labels = torch.full((n,), 2)
    eps = 0.3
    out = flip_labels(labels, K, eps, generator=torch.Generator().manual_seed(8))
    freq = F.one_hot(out, K).double().mean(0)
    target = gls_targets(torch.tensor([2]), K, flip_to_smooth(eps, K))[0].double()
    assert torch.all((freq - target).abs() < torch.tensor([_binomial_tol(p, n) for p in target.tolist()]))


def test_flip_is_deterministic_for_a_generator_and_validates():
    labels = torch.randint(0, 10, (100,), generator=torch.Generator().manual_seed(0))
    a = flip_labels(labels, 10, 0.4, generator=torch.Generator().manual_seed(1))
    b = flip_labels(labels, 10, 0.4, generator=torch.Generator().manual_seed(1))
    c = flip_labels(labels, 10, 0.4, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match=r"flip_rate must lie in \[0, 1\]"):
        flip_labels(labels, 10, 1.2)
    with pytest.raises(ValueError, match="labels must lie"):
        flip_labels(torch.tensor([10]), 10, 0.1)


def test_bce_smoothing_matches_pytorch_on_smoothed_targets():
    g = torch.Generator().manual_seed(9)
    logits = torch.randn(3, 8, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (3, 8, 4), generator=g).double()
    rates = torch.tensor([0.0, 0.2, -0.5])
    out = gls_bce_loss(logits, y, rates)
    assert out.shape == (3,)
    for m, r in enumerate(rates.tolist()):
        soft = y[m] * (1 - r) + r / 2
        ref = F.binary_cross_entropy_with_logits(logits[m], soft)
        torch.testing.assert_close(out[m], ref)
    # a float rate averages over everything
    torch.testing.assert_close(
        gls_bce_loss(logits, y, 0.1), F.binary_cross_entropy_with_logits(logits, y * 0.9 + 0.05)
    )
    with pytest.raises(ValueError, match="targets must be 0 or 1"):
        gls_bce_loss(logits, y * 0.5, 0.1)
    with pytest.raises(ValueError, match="smooth_rate must be <= 1"):
        gls_bce_loss(logits, y, 1.1)


# ----------------------------------------------------------------------------- BCE cells (seed note 001)

def test_bce_cell_loss_binary_is_bce_with_logits_on_the_smoothed_targets():
    """K = 2: one binary logit z1 - z0 against y, targets (1 - r) y + r/2 (seed note 001)."""
    from smoothbench.losses import bce_cell_loss

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 50, 2, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (50,), generator=g)
    rates = torch.tensor([0.0, 0.3, -0.5], dtype=torch.float64)
    got = bce_cell_loss(logits, y, rates)
    for i, r in enumerate(rates.tolist()):
        target = (1 - r) * y.double() + r / 2
        ref = F.binary_cross_entropy_with_logits(logits[i, :, 1] - logits[i, :, 0], target)
        assert got[i].item() == pytest.approx(ref.item(), rel=1e-12)


def test_bce_cell_loss_one_vs_all_sums_the_classes():
    from smoothbench.losses import bce_cell_loss

    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 40, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (40,), generator=g)
    rates = torch.tensor([0.2, -1.0], dtype=torch.float64)
    got = bce_cell_loss(logits, y, rates)
    onehot = F.one_hot(y, 5).double()
    for i, r in enumerate(rates.tolist()):
        ref = F.binary_cross_entropy_with_logits(logits[i], (1 - r) * onehot + r / 2, reduction="sum") / 40
        assert got[i].item() == pytest.approx(ref.item(), rel=1e-12)


def test_stacked_loss_mixes_softmax_and_bce_models():
    """One call for a stack of softmax and BCE models: each model's loss is its own family's,
    gradients included (flip rows of per-model labels do not reach the BCE models)."""
    from smoothbench.losses import bce_cell_loss, stacked_loss

    g = torch.Generator().manual_seed(2)
    base = torch.randn(4, 30, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 6, (30,), generator=g)
    per_model = torch.stack([y, (y + 1) % 6, y, y])              # model 1 sees flipped labels
    rates = torch.tensor([0.0, 0.0, 0.4, -0.4], dtype=torch.float64)
    bce = torch.tensor([2, 3])
    x = base.clone().requires_grad_(True)
    loss = stacked_loss(x, per_model, rates, bce)
    loss.sum().backward()
    x0 = base.clone().requires_grad_(True)
    ref = torch.cat([gls_loss(x0[:2], per_model[:2], rates[:2]), bce_cell_loss(x0[2:], y, rates[2:])])
    ref.sum().backward()
    assert torch.allclose(loss, ref, rtol=1e-12) and torch.allclose(x.grad, x0.grad, rtol=1e-12)
