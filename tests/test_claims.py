"""The claim rules on hand-made result tables whose verdicts are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smoothbench.report import claims, inference, results as study_results
from smoothbench import methods as registry
from smoothbench.core.vocabulary import RESULT_COLUMNS


def rows_of(spec: dict, num_classes: int = 10) -> list[dict]:
    """{noise rate: {(method, rate): [accuracy per seed]}} -> results rows (every selection equal,
    the held-out accuracy too: every choice is the one the accuracy makes)."""
    rows = []
    for noise_rate, cells in spec.items():
        for (method, rate), accs in cells.items():
            for seed, acc in enumerate(accs):
                row = {k: None for k in RESULT_COLUMNS}
                row.update(dataset="d", noise_kind="symmetric", noise_rate=noise_rate, seed=seed, variant="direct",
                           method=method, rate=rate, values=(rate,),
                           params=registry.get(method).params_text((rate,)),
                           status="ok" if acc is not None else "diverged",
                           num_classes=num_classes, test_acc_best=acc, test_acc_selected=acc, test_acc_final=acc,
                           val_acc_selected=acc, val_acc_final=acc)
                rows.append(row)
    return rows


TEST_SAMPLES = 1500   # the equivalence margin: one binomial SE of an accuracy a, 100 sqrt(a (1 - a) / 1500)


def margin(spec: dict) -> float:
    """The equivalence margin by its formula: a = the mean accuracy of the study's cells."""
    accs = [a for cells in spec.values() for v in cells.values() for a in v if a is not None]
    a = sum(accs) / len(accs)
    return 100 * math.sqrt(a * (1 - a) / TEST_SAMPLES)


def verdicts(spec: dict, selection: str = "selected", bootstrap: int = 2000, **kw) -> dict[str, claims.Verdict]:
    """The claims' verdicts on a study without per-sample correctness: the seeds are the only
    source of variance (and the choices, made again in each bootstrap replicate)."""
    results = study_results.from_rows(rows_of(spec, **kw), params={"bootstrap": bootstrap},
                                      test_samples={"d": TEST_SAMPLES})
    (verdict_list,) = claims.check(results.analysis, selection).values()
    return {v.claim: v for v in verdict_list}


def test_t_interval_closed_form():
    mean, low, high = inference.t_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)           # t(0.975, 2) * sd / sqrt(n), sd = 1
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    assert inference.t_interval([1.0]) is None


# the paper's picture: LS helps at low noise and not at high; NLS helps at high noise, its best
# r more negative there; flipping like LS at the matching rate; BCE smoothing like softmax's
PAPER = {
    "0": {("ce", 0.0): [0.80, 0.82, 0.81], ("ls", 0.4): [0.84, 0.855, 0.85], ("nls", -0.4): [0.79, 0.80, 0.80],
          ("nls", -2.0): [0.70, 0.71, 0.72], ("flip", 0.36): [0.842, 0.853, 0.848],
          ("bce", 0.0): [0.78, 0.80, 0.79], ("bls", 0.4): [0.82, 0.835, 0.83], ("bnls", -0.4): [0.77, 0.78, 0.78],
          ("bnls", -2.0): [0.68, 0.69, 0.70]},
    "0.6": {("ce", 0.0): [0.50, 0.52, 0.51], ("ls", 0.4): [0.49, 0.515, 0.50], ("nls", -0.4): [0.53, 0.55, 0.54],
            ("nls", -2.0): [0.58, 0.60, 0.59], ("flip", 0.36): [0.493, 0.512, 0.505],
            ("bce", 0.0): [0.48, 0.50, 0.49], ("bls", 0.4): [0.47, 0.495, 0.48], ("bnls", -0.4): [0.51, 0.53, 0.52],
            ("bnls", -2.0): [0.56, 0.58, 0.57]},
}


def test_claims_hold_on_the_papers_picture():
    v = verdicts(PAPER)
    assert {c: v[c].verdict for c in claims.CLAIMS} == {
        "a": claims.HOLDS, "b": claims.HOLDS, "c": claims.HOLDS, "c'": claims.HOLDS, "d": claims.HOLDS,
        "e": claims.HOLDS}
    assert v["a"].mean == pytest.approx(100 * (0.84 + 0.855 + 0.85 - 0.80 - 0.82 - 0.81) / 3)
    assert v["c'"].test.detail == "best r -0.4 at noise 0, -2 at 0.6; on the grid's edge at noise 0 and noise 0.6"
    # pooled claims: each seed's pairs (2 noise rates; x 2 for e) averaged first, n = 3 seeds
    assert v["d"].n == 3 and v["e"].n == 3
    per_seed = [((0.842 - 0.84) + (0.493 - 0.49)) / 2, ((0.853 - 0.855) + (0.512 - 0.515)) / 2,
                ((0.848 - 0.85) + (0.505 - 0.50)) / 2]
    assert v["d"].mean == pytest.approx(100 * sum(per_seed) / 3)


def test_claims_fail_on_the_opposite_picture():
    flipped = {
        "0": {("ce", 0.0): [0.84, 0.86, 0.85], ("ls", 0.4): [0.80, 0.82, 0.81], ("nls", -0.4): [0.70, 0.72, 0.71],
              ("nls", -2.0): [0.60, 0.61, 0.62], ("flip", 0.36): [0.70, 0.72, 0.71]},
        "0.6": {("ce", 0.0): [0.55, 0.56, 0.57], ("ls", 0.4): [0.58, 0.60, 0.59], ("nls", -0.4): [0.50, 0.51, 0.52],
                ("nls", -2.0): [0.40, 0.41, 0.42], ("flip", 0.36): [0.45, 0.46, 0.47]},
    }
    v = verdicts(flipped)
    assert [v[c].verdict for c in ("a", "b", "c", "d")] == [claims.FAILS] * 4
    assert v["c'"].verdict == claims.FAILS                      # best NLS r -0.4 at both noise rates: no move
    assert v["e"].verdict == claims.NOT_TESTED                  # no BCE cells


def test_noisy_seeds_are_inconclusive_and_one_seed_is_not_tested():
    noisy = {"0": {("ce", 0.0): [0.80, 0.90, 0.70], ("ls", 0.4): [0.85, 0.84, 0.76]},
             "0.6": {("ce", 0.0): [0.5, 0.6, 0.4], ("ls", 0.4): [0.55, 0.52, 0.47]}}
    v = verdicts(noisy)
    assert v["a"].verdict == claims.INCONCLUSIVE and v["a"].low < 0 < v["a"].high
    assert v["c"].verdict == v["d"].verdict == claims.NOT_TESTED
    one = verdicts({"0": {("ce", 0.0): [0.8], ("ls", 0.4): [0.9]}})
    assert one["a"].verdict == claims.NOT_TESTED and one["b"].verdict == claims.NOT_TESTED


def test_equivalence_is_two_one_sided_tests_against_the_margin():
    """The margin (about 1 point here) is one binomial SE of an accuracy at the test set's size;
    TOST on the primary SE; a difference inside the margin whose interval excludes 0 is
    "equivalent but different"."""
    base = {"0": {("ls", 0.4): [0.80, 0.81, 0.82, 0.83]}}
    close = {"0": {**base["0"], ("flip", 0.36): [0.803, 0.806, 0.823, 0.827]}}       # within 0.5 points
    offset = {"0": {**base["0"], ("flip", 0.36): [0.803, 0.814, 0.823, 0.834]}}      # +0.35 every seed, nearly
    far = {"0": {**base["0"], ("flip", 0.36): [0.83, 0.84, 0.85, 0.86]}}             # 3 points apart
    wide = {"0": {**base["0"], ("flip", 0.36): [0.79, 0.83, 0.80, 0.85]}}            # spans the margin
    v = verdicts(close)["d"]
    assert v.verdict == claims.HOLDS and v.test.margin == pytest.approx(margin(close))
    assert 0.9 < v.test.margin < 1.1
    assert verdicts(offset)["d"].verdict == claims.EQUIVALENT_BUT_DIFFERENT
    assert verdicts(far)["d"].verdict == claims.FAILS
    assert verdicts(wide)["d"].verdict == claims.INCONCLUSIVE


def test_flip_is_compared_at_the_matching_rate_only():
    """eps = 0.36 matches LS r = 0.4 for K = 10 but not for K = 2 (r = 0.72)."""
    spec = {"0": {("ls", 0.4): [0.8, 0.8], ("flip", 0.36): [0.8, 0.8]}}
    assert verdicts(spec)["d"].n == 2
    assert verdicts(spec, num_classes=2)["d"].verdict == claims.NOT_TESTED


def test_diverged_seeds_are_left_out_of_the_pairs():
    spec = {"0": {("ce", 0.0): [0.80, 0.81, 0.82], ("ls", 0.4): [0.85, None, 0.86]}}
    v = verdicts(spec)
    assert v["a"].n == 2 and v["a"].mean == pytest.approx(100 * ((0.85 - 0.80) + (0.86 - 0.82)) / 2)


def _synthetic(rng, seeds: int, effect: float, seed_sd: float, noise_sd: float) -> dict:
    """flip(eps) vs LS at the matching rate at 3 noise rates, seeds sharing a random effect: a
    seed's difference is effect + u_seed + e (u shared by its noise rates), in accuracy units."""
    spec = {}
    u = rng.normal(0, seed_sd, seeds)
    for rate in ("0", "0.3", "0.6"):
        base = 0.8 - float(rate) / 2
        ls = base + rng.normal(0, 0.01, seeds)
        flip = ls + (effect + u + rng.normal(0, noise_sd, seeds)) / 100
        spec[rate] = {("ce", 0.0): list(base + rng.normal(0, 0.01, seeds)), ("ls", 0.4): list(ls),
                      ("flip", 0.36): list(flip)}
    return spec


@pytest.mark.parametrize("effect", [0.0, 0.8])
def test_pooled_intervals_cover_a_planted_effect_with_the_seed_as_the_unit(effect):
    """A known effect (and a known null) planted in synthetic results whose seeds carry a shared
    random effect: claim (d)'s 95% interval covers it in 95% of the studies (binomial tolerance
    from the number of studies); the naive interval over all pooled rows, which takes the three
    noise rates of a seed for independent samples, does not."""
    rng = np.random.default_rng(7 if effect else 8)
    studies, covered, naive = 400, 0, 0
    for _ in range(studies):
        spec = _synthetic(rng, seeds=5, effect=effect, seed_sd=1.0, noise_sd=0.3)
        results = study_results.from_rows(rows_of(spec))
        ((_, sets),) = results.settings.items()
        per_seed = claims.CLAIMS["d"].quantity(sets, results.analysis.view("selected")).values[0]
        assert per_seed.shape == (5,)                                          # one value per seed
        _, low, high = inference.t_interval(per_seed.tolist())                 # the t interval over seeds
        covered += low <= effect <= high
        rows = [100 * (spec[r][("flip", 0.36)][s] - spec[r][("ls", 0.4)][s]) for r in spec for s in range(5)]
        _, lo, hi = inference.t_interval(rows)
        naive += lo <= effect <= hi
    tol = 3.5 * math.sqrt(0.95 * 0.05 / studies)
    assert abs(covered / studies - 0.95) < tol, covered / studies
    assert naive / studies < 0.95 - tol, naive / studies       # pooling dependent rows: too narrow
