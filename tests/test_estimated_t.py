"""Loss correction with an estimated T: Patrini et al.'s anchor-point estimator against a bound
from the sample size, its outlier filter against NumPy's percentile, the noise rate an estimate
implies against its closed form, and the study's refusal of a variant without a warm-up."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from smoothbench.methods.correction import anchor_transition, noise_rate_of


def _symmetric(k: int, rate: float) -> torch.Tensor:
    t = torch.full((k, k), rate / (k - 1), dtype=torch.float64)
    t.fill_diagonal_(1 - rate)
    return t


def _row_rates(rates: list[float]) -> torch.Tensor:
    """T whose row i flips with rate ``rates[i]``, uniformly to the other classes (not symmetric)."""
    k = len(rates)
    return torch.stack([_symmetric(k, r)[i] for i, r in enumerate(rates)])


def test_anchor_points_recover_t_from_the_true_noisy_posterior_within_the_sample_size_bound():
    """Clean posteriors eta(x) = (1 - u) e_c + u v (u uniform, v a random distribution), noisy
    labels corrupted with a known T, and a model whose softmax is the true noisy posterior
    eta(x)^T T. Column i of T has diagonal d_i and off-diagonal entries in [lo_i, hi_i] (d_i > hi_i),
    so the anchor of class i has 1 - eta_i <= c_i min u over the class's n samples, c_i = (d_i - lo_i)
    / (d_i - hi_i), and |T_hat_i - T_i|_1 <= 2 (1 - eta_i(anchor)); with probability >= 1 - K exp(-n t),
    mean |T_hat - T| <= 2 max_i c_i t / K, t for a failure rate of 1e-9."""
    k, n = 4, 2000
    t_true = _row_rates([0.2, 0.3, 0.4, 0.5])
    g = torch.Generator().manual_seed(7)
    clean = torch.arange(k).repeat_interleave(n)
    u = torch.rand(k * n, 1, generator=g, dtype=torch.float64)
    v = -torch.log(torch.rand(k * n, k, generator=g, dtype=torch.float64))     # Dirichlet(1): normalised exponentials
    v = v / v.sum(-1, keepdim=True)
    eta = (1 - u) * torch.nn.functional.one_hot(clean, k).double() + u * v
    noisy_posterior = eta @ t_true
    noisy = torch.multinomial(t_true[clean], 1, generator=g).squeeze(-1)       # the corrupted labels
    realised = torch.stack([torch.bincount(noisy[clean == i], minlength=k) for i in range(k)]).double() / n
    t_hat = anchor_transition(noisy_posterior, 100.0)
    off = t_true.masked_fill(torch.eye(k, dtype=torch.bool), float("nan"))
    d, lo, hi = t_true.diagonal(), off.nan_to_num(2.0).min(0).values, off.nan_to_num(-1.0).max(0).values
    c = ((d - lo) / (d - hi)).max().item()
    bound = 2 * c * math.log(k / 1e-9) / n / k
    mae = (t_hat - t_true).abs().mean().item()
    assert mae <= bound, (mae, bound)
    torch.testing.assert_close(t_hat.sum(-1), torch.ones(k, dtype=torch.float64))
    # the labels' realised T differs from the true T by sampling error of order 1/sqrt(n), which
    # the estimator (given the posterior, not the labels) does not see
    assert (realised - t_true).abs().max().item() < 6 * math.sqrt(0.25 / n)


def test_the_outlier_filter_takes_the_highest_value_below_numpys_higher_percentile():
    """quantile q < 100: per column, values at or above NumPy's percentile(q, method='higher') are
    left out and the anchor is the highest of the rest (the authors' filter_outlier)."""
    g = np.random.default_rng(3)
    probs = g.dirichlet(np.ones(5), size=300)           # (n - 1) q / 100 not an integer: 'higher' rounds up
    for q in (97.0, 90.0, 50.0):
        t_hat = anchor_transition(torch.from_numpy(probs), q).numpy()
        for i in range(5):
            col = probs[:, i].copy()
            col[col >= np.percentile(col, q, method="higher")] = 0.0
            row = probs[int(np.argmax(col))]
            np.testing.assert_allclose(t_hat[i], row / row.sum(), rtol=0, atol=1e-15)
    # q = 100: the highest value itself
    t_hat = anchor_transition(torch.from_numpy(probs), 100.0).numpy()
    for i in range(5):
        row = probs[int(np.argmax(probs[:, i]))]
        np.testing.assert_allclose(t_hat[i], row / row.sum(), rtol=0, atol=1e-15)


def test_the_noise_rate_of_an_estimate_is_the_clean_prior_weighted_off_diagonal_mass():
    """Clean prior pi, noisy prior T^T pi: the rate is sum_i pi_i (1 - T_ii), per seed."""
    t = torch.stack([_symmetric(3, 0.3), torch.tensor([[0.8, 0.2, 0.0], [0.1, 0.6, 0.3], [0.0, 0.25, 0.75]],
                                                      dtype=torch.float64)])
    pi = torch.tensor([[1 / 3, 1 / 3, 1 / 3], [0.5, 0.3, 0.2]], dtype=torch.float64)
    noisy_prior = (pi.unsqueeze(-1) * t).sum(-2)
    got = noise_rate_of(t, noisy_prior)
    expected = torch.tensor([0.3, 0.5 * 0.2 + 0.3 * 0.4 + 0.2 * 0.25], dtype=torch.float64)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_backward_est_gives_nan_for_a_singular_estimate_and_the_inverse_otherwise():
    from smoothbench import methods as registry

    good = _symmetric(3, 0.3)
    bad = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    inv = torch.from_numpy(registry.get("backward_est").transition(torch.stack([good, bad]).numpy()))
    torch.testing.assert_close(inv[0] @ good, torch.eye(3, dtype=torch.float64))
    assert torch.isnan(inv[1]).all()


def test_the_study_refuses_an_estimated_t_method_without_a_warm_up_to_estimate_from():
    from smoothbench.study import grid

    study = {"datasets": ["digits"], "noise": {"symmetric": [0.2]}, "methods": {"ce": [0.0], "forward_est": ["default"]},
             "seeds": [0], "protocol": {"default": {"variants": {"direct": {"epochs": 1}}}}}
    with pytest.raises(ValueError, match=r"^params: methods\.forward_est\[0\] = \"default\": forward_est estimates T "
                                         r"from a CE warm-up model, and no protocol variant of digits has a warm-up"):
        grid.validate_params(study)
    study["protocol"]["default"]["variants"]["warm"] = {"epochs": 1, "warmup": {"epochs": 1}}
    (g,) = grid.expand_groups(grid.validate_params(study))            # direct estimates from warm's warm-up
    assert [c.id for c in g.cells] == ["ce_0", "forward_est_97"]     # digits is tabular: CIFAR-10's quantile


def test_the_report_gives_the_estimates_error_per_setting_and_quantile_over_seeds():
    """One row per (setting, variant, quantile): the estimate a seed's cells share counted once per
    seed, mean and sample std of its error over seeds, the implied and the realised noise rates."""
    import statistics

    from smoothbench.report import build as report, noise_estimates
    from smoothbench.report.seedstats import settings_of

    def row(method, values, seed, mae, hat):
        return {"dataset": "toy", "noise_kind": "symmetric", "noise_rate": "0.4", "variant": "warmup", "seed": seed,
                "method": method, "values": values, "status": "ok", "transition_mae": mae, "noise_rate_hat": hat,
                "realised_noise_rate": 0.39 + seed / 100, "num_classes": 3, "test_acc_final": 0.5,
                "test_acc_best": 0.5, "test_acc_selected": 0.5, "val_acc_selected": 0.5, "val_acc_final": 0.5}

    maes, hats = [0.02, 0.05, 0.03], [0.35, 0.41, 0.38]
    rows = [row("ce", (0.0,), s, None, None) for s in range(3)]
    rows += [row(m, v, s, maes[s], hats[s]) for s in range(3)
             for m, v in (("forward_est", (97.0,)), ("coteach_est", (10.0, 97.0)))]
    rows += [row("backward_est", (50.0,), s, 0.1 * (s + 1), 0.5) for s in range(2)]
    got = noise_estimates.rows(settings_of(rows))
    assert [(r["quantile"], r["n_seeds"]) for r in got] == [(50.0, 2), (97.0, 3)]
    q97 = got[1]
    assert q97["transition_mae_mean"] == pytest.approx(statistics.fmean(maes), abs=1e-6)
    assert q97["transition_mae_std"] == pytest.approx(statistics.stdev(maes), abs=1e-6)
    assert q97["noise_rate_hat_mean"] == pytest.approx(statistics.fmean(hats), abs=1e-6)
    assert q97["realised_noise_rate_mean"] == pytest.approx(0.40, abs=1e-6)
    def files(methods):
        return report.report_files({("toy", "symmetric", "warmup"): methods}, [])

    assert "tables/noise_estimates.csv" in files({"ce", "coteach_est"})
    assert "tables/noise_estimates.csv" not in files({"ce", "forward", "coteach"})
    assert noise_estimates.md(settings_of(rows[:3])) == []
