"""The GLS core, label flipping and BCE smoothing against independent references: PyTorch's
own label smoothing, explicit soft-target cross-entropy, closed forms and empirical
frequencies. (Every registered method's loss is checked in test_methods.py.)"""

import math

import pytest
import torch
import torch.nn.functional as F

from smoothbench.core import draws
from smoothbench.core.vocabulary import flip_to_smooth, smooth_to_flip
from smoothbench.methods.bce import gls_bce_loss
from smoothbench.methods.gls import flip_labels, gls_loss, gls_targets


def off_target_mass(eps: float, k: int) -> float:
    """Seed note 000's form, written here: each wrong class gets eps/(K-1)."""
    return eps / (k - 1)


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


@pytest.mark.parametrize("r", [-0.2, -1.0, -6.0])
def test_nls_does_not_go_through_pytorch_label_smoothing(r):
    """PyTorch's label_smoothing silently computes plain CE for r < 0: NLS must not use it."""
    logits, labels = _data(M=1, B=13, K=6, seed=11)
    torch_neg = F.cross_entropy(logits[0], labels, label_smoothing=r)
    torch.testing.assert_close(torch_neg, F.cross_entropy(logits[0], labels))   # PyTorch ignores r < 0
    ours = gls_loss(logits[0], labels, r)
    target = (1 - r) * F.one_hot(labels, 6).double() + r / 6
    torch.testing.assert_close(ours, -(target * torch.log_softmax(logits[0], -1)).sum(-1).mean())
    assert abs(ours.item() - torch_neg.item()) > 1e-3


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


def _flip(labels, k, eps, key=7, step=0):
    """Flip ``labels`` (B,) for each rate of ``eps`` (one model per rate), keys key, key+1, ..."""
    eps = torch.as_tensor(eps, dtype=torch.float64).reshape(-1)
    keys = draws.keys(range(key, key + len(eps)), "cpu")
    return flip_labels(labels.expand(len(eps), -1), k, eps, keys, step)


def test_flip_frequencies_within_sampling_error():
    K, B = 5, 200_000
    labels = torch.arange(B) % K
    eps = [0.0, 0.2, 0.7]
    out = _flip(labels, K, eps)
    assert out.shape == (3, B)
    assert torch.equal(out[0], labels)
    for m, e in enumerate(eps):
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
    out = _flip(labels, K, eps, key=8)[0]
    freq = F.one_hot(out, K).double().mean(0)
    target = gls_targets(torch.tensor([2]), K, flip_to_smooth(eps, K))[0].double()
    assert torch.all((freq - target).abs() < torch.tensor([_binomial_tol(p, n) for p in target.tolist()]))


def test_flips_are_fresh_at_every_step_and_independent_across_models():
    """A model's flips are a function of its key and the step: the same key and step give the
    same labels; another step or key other ones, with the flip frequency of independent draws."""
    K, B, eps = 10, 50_000, 0.4
    labels = torch.randint(0, K, (B,), generator=torch.Generator().manual_seed(0))
    a = _flip(labels, K, eps, key=1, step=3)[0]
    assert torch.equal(a, _flip(labels, K, eps, key=1, step=3)[0])
    for other in (_flip(labels, K, eps, key=1, step=4)[0], _flip(labels, K, eps, key=2, step=3)[0]):
        both = ((a != labels) & (other != labels)).double().mean().item()   # independent: eps^2
        assert abs(both - eps * eps) < _binomial_tol(eps * eps, B)


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

def _bce_kernel(logits, y, rates):
    from smoothbench.methods.bce import bce
    from smoothbench.methods.registry import Batch

    m = logits.shape[0]
    return bce(Batch(logits, y.expand(m, -1), logits.shape[-1]), rates.reshape(m, 1)).mean(-1)


def test_bce_cell_loss_binary_is_bce_with_logits_on_the_smoothed_targets():
    """K = 2: one binary logit z1 - z0 against y, targets (1 - r) y + r/2 (seed note 001)."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 50, 2, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (50,), generator=g)
    rates = torch.tensor([0.0, 0.3, -0.5], dtype=torch.float64)
    got = _bce_kernel(logits, y, rates)
    for i, r in enumerate(rates.tolist()):
        target = (1 - r) * y.double() + r / 2
        ref = F.binary_cross_entropy_with_logits(logits[i, :, 1] - logits[i, :, 0], target)
        assert got[i].item() == pytest.approx(ref.item(), rel=1e-12)


def test_bce_cell_loss_one_vs_all_sums_the_classes():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 40, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (40,), generator=g)
    rates = torch.tensor([0.2, -1.0], dtype=torch.float64)
    got = _bce_kernel(logits, y, rates)
    onehot = F.one_hot(y, 5).double()
    for i, r in enumerate(rates.tolist()):
        ref = F.binary_cross_entropy_with_logits(logits[i], (1 - r) * onehot + r / 2, reduction="sum") / 40
        assert got[i].item() == pytest.approx(ref.item(), rel=1e-12)
