"""The statistical procedure itself, on synthetic studies whose truth is known
(``synthetic_study``): under the global null (every method as good as CE in the population, no
best rate moving, flipping and BCE smoothing exactly like their twins) the honest family's
family-wise error rate is at most 5%; with a planted effect the procedure finds it (its power
is printed: docs/analysis.md reports it); and the seeds-only procedure, which takes the test
set for the population, does NOT control the error when the test set's sampling error is
there: the test-sample part of the variance is what makes the difference.

The slow test runs 400 studies per scenario; its fast twin 30, with a looser bound."""

from __future__ import annotations

import math

import numpy as np
import pytest

import synthetic_study as syn
from smoothbench.report import claims, results as study_results

# the verdict that is an error where the truth is the global null
NULL = {"a": "any", "b": "any", "c": "any", "c'": claims.HOLDS, "d": claims.FAILS, "e": claims.FAILS}
KEY = ("syn", "symmetric", "direct")
# a planted effect (logits): LS helps at low noise (more at r = 0.2), NLS at high noise (more at
# r = -1), its best rate moving from -0.2 to -1; flipping like LS, BCE smoothing like softmax's
EFFECT = {("0", "ls", 0.2): 0.15, ("0", "ls", 0.4): 0.12, ("0", "flip", 0.18): 0.15, ("0", "flip", 0.36): 0.12,
          ("0", "nls", -0.2): -0.05, ("0", "nls", -1.0): -0.3, ("0.6", "nls", -0.2): 0.1, ("0.6", "nls", -1.0): 0.25,
          ("0", "bls", 0.2): 0.15, ("0", "bnls", -0.2): -0.05, ("0.6", "bnls", -0.2): 0.1}
TRUE = {"a": claims.HOLDS, "b": claims.HOLDS, "c": claims.HOLDS, "c'": claims.HOLDS, "d": claims.HOLDS,
        "e": claims.HOLDS}


def run(studies: int, seed: int, seeds_only: bool = False, effect: dict | None = None, **kw) -> dict:
    """The verdicts of ``studies`` synthetic studies: per claim, the count of each verdict; the
    number of studies with a family-wise error (under the null); raw rejections at 5% (sign claims)."""
    rng = np.random.default_rng(seed)
    out = {"family_errors": 0, "verdicts": {}, "raw": {}}
    for _ in range(studies):
        rows, correct = syn.study(rng, effect=effect, **kw)
        res = study_results.from_rows(rows, correct=None if seeds_only else correct, params={"bootstrap": 200},
                                      test_samples={"syn": kw.get("test", 400)})
        verdicts = claims.check(res.analysis, "selected")[KEY]
        out["family_errors"] += bool(syn.errors(verdicts, NULL))
        for v in verdicts:
            out["verdicts"].setdefault(v.claim, {}).setdefault(v.verdict, 0)
            out["verdicts"][v.claim][v.verdict] += 1
            if v.claim in ("a", "b", "c"):
                out["raw"][v.claim] = out["raw"].get(v.claim, 0) + (v.test.p < 0.05)
    return out


def bound(studies: int, p: float = 0.05, z: float = 2.33) -> float:
    """The most family-wise errors a rate of ``p`` gives in ``studies`` studies, one-sided 99%."""
    return studies * p + z * math.sqrt(studies * p * (1 - p))


@pytest.mark.slow
@pytest.mark.parametrize("interaction", [0.3, 0.6])
def test_family_wise_error_under_the_global_null_is_at_most_5_percent(interaction):
    studies = 400
    ours = run(studies, seed=100 + int(10 * interaction), sd_interaction=interaction)
    print(f"\nglobal null, method-by-sample sd {interaction}: family-wise error {ours['family_errors'] / studies:.3f}, "
          f"raw rejections at 5% {({k: v / studies for k, v in ours['raw'].items()})}")
    assert ours["family_errors"] <= bound(studies)
    assert all(v <= bound(studies) for v in ours["raw"].values())       # each test alone is valid too


@pytest.mark.slow
def test_the_seeds_only_procedure_does_not_control_the_error_when_the_test_set_varies():
    """Taking the test set for the population (intervals over seeds alone) rejects true nulls far
    more than 5% of the time when methods differ in which test samples they get right."""
    studies = 400
    seeds_only = run(studies, seed=106, seeds_only=True, sd_interaction=0.6)
    raw = sum(seeds_only["raw"].values())
    print(f"\nseeds only: family-wise error {seeds_only['family_errors'] / studies:.3f}, raw {seeds_only['raw']}")
    assert raw > bound(3 * studies)


@pytest.mark.slow
def test_power_with_a_planted_effect():
    studies = 200
    found = run(studies, seed=11, effect=EFFECT)
    power = {c: found["verdicts"][c].get(TRUE[c], 0) / studies for c in TRUE}
    power["d"] += found["verdicts"]["d"].get(claims.EQUIVALENT_BUT_DIFFERENT, 0) / studies
    wrong = {c: sum(n for v, n in found["verdicts"][c].items() if v not in (TRUE[c], claims.INCONCLUSIVE,
                                                                           claims.EQUIVALENT_BUT_DIFFERENT))
             for c in TRUE}
    print(f"\npower with the planted effect ({studies} studies): " + ", ".join(f"({c}) {p:.2f}" for c, p in power.items())
          + f"; the opposite verdict: {wrong}")
    assert all(n <= bound(studies) for n in wrong.values()), wrong      # the opposite verdict: at most 5% of studies
    assert power["a"] > 0.4 and power["c"] > 0.4 and power["d"] > 0.9


def test_family_wise_error_fast_twin():
    """30 studies under the global null with a strong test-set effect: at most as many family-wise
    errors as a 5% rate gives (one-sided 99%); the seeds-only procedure, on the same studies, rejects
    more true nulls than ours."""
    studies = 30
    ours = run(studies, seed=7, sd_interaction=0.6, test=200)
    seeds_only = run(studies, seed=7, seeds_only=True, sd_interaction=0.6, test=200)
    assert ours["family_errors"] <= bound(studies)
    assert sum(seeds_only["raw"].values()) > sum(ours["raw"].values())


def test_the_optimism_gap_pairs_its_two_arms_in_every_bootstrap_pass():
    """A method with one setting, where every selection sees the same epoch (the synthetic
    study), has the same cells under best-on-test and honest: its gap is 0 for every seed in
    every replicate of every pass (seeds and test samples, seeds alone, test samples alone)
    only if both arms draw the same seeds and the same test samples."""
    from smoothbench.report import leaderboard

    rows, correct = syn.study(np.random.default_rng(3), seeds=5, test=200)
    res = study_results.from_rows(rows, correct=correct, params={"bootstrap": 200}, test_samples={"syn": 200})
    a = res.analysis
    sets = a.settings[KEY][0:1]
    for seeds, test in ((True, True), (True, False), (False, True)):
        honest = a.view("selected", replicates=True, seeds=seeds, test=test)
        gap = leaderboard._gap(a, honest, sets, "ce")
        assert gap.shape[0] == 200 and np.all(gap == 0), (seeds, test)
