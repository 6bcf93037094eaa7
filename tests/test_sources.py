"""``smoothbench sources``: the parts of the standard error of the mean over seeds, per setting,
against independent references (the bootstrap's seeds part against the plain standard error of
the mean of per-seed values; the test-sample part against the binomial bound), and one row per
protocol variant, named, where a study has several."""

from __future__ import annotations

import math
import re

import numpy as np

import synthetic_study as syn
from smoothbench.report import results as study_results
from smoothbench.report.sources import table

PARAMS = {"bootstrap": 2000}


def parse(text: str) -> dict[tuple[str, str], tuple[float, float]]:
    """(setting, quantity) -> (test-sample part, seeds part) of a sources table."""
    out = {}
    for line in text.splitlines()[2:]:
        setting, quantity, test, seeds = [c.strip() for c in line.strip("|").split("|")][:4]
        out[(setting, quantity)] = (float(test), float(seeds))
    return out


def rows_of(seed: int, **kw):
    return syn.study(np.random.default_rng(seed), seeds=10, test=400, **kw)


def test_seeds_part_is_the_standard_error_of_the_mean_over_seeds_without_per_sample_correctness():
    rows, _ = rows_of(1, sd_seed=0.3)
    res = study_results.from_rows(rows, params=PARAMS, test_samples={"syn": 400})
    got = parse(table(res))
    for rate in syn.RATES:
        ce = np.array([100 * r["test_acc_selected"] for r in rows if r["method"] == "ce" and r["noise_rate"] == rate])
        reference = ce.std(ddof=0) / math.sqrt(len(ce))          # the bootstrap's SE of a mean
        test_part, seeds_part = got[(f"syn / symmetric {rate}", "CE accuracy")]
        assert test_part == 0.0
        assert math.isclose(seeds_part, reference, rel_tol=0.1), (rate, seeds_part, reference)


def test_test_sample_part_is_there_with_per_sample_correctness_and_within_the_binomial_bound():
    rows, correct = rows_of(2)
    res = study_results.from_rows(rows, correct=correct, params=PARAMS, test_samples={"syn": 400})
    got = parse(table(res))
    for rate in syn.RATES:
        p = np.mean([r["test_acc_selected"] for r in rows if r["method"] == "ce" and r["noise_rate"] == rate])
        binomial = 100 * math.sqrt(p * (1 - p) / 400)
        test_part, _ = got[(f"syn / symmetric {rate}", "CE accuracy")]
        assert 0.3 * binomial < test_part < 1.15 * binomial, (rate, test_part, binomial)


def test_a_study_of_several_variants_has_a_named_row_per_variant_each_its_own():
    rows, correct = rows_of(3)
    alone = parse(table(study_results.from_rows(rows, correct=correct, params=PARAMS, test_samples={"syn": 400})))
    # a second variant: the same cells a few points worse and noisier, so its parts differ
    rng = np.random.default_rng(4)
    other = [dict(r, variant="warmup", test_acc_selected=r["test_acc_selected"] - rng.uniform(0, 0.1))
             for r in rows]
    both_rows = rows + other
    n = len(rows)
    both_correct = dict(correct, row=np.array([str(i) for i in range(2 * n)]),
                        test_samples=np.concatenate([correct["test_samples"]] * 2),
                        has=np.concatenate([correct["has"]] * 2), bits=np.concatenate([correct["bits"]] * 2))
    both = parse(table(study_results.from_rows(both_rows, correct=both_correct, params=PARAMS,
                                               test_samples={"syn": 400})))
    names = {s for s, _ in both}
    assert all(re.search(r" \((direct|warmup)\)$", s) for s in names)
    assert len(both) == 2 * len(alone)
    for (setting, quantity), parts in alone.items():
        assert both[(f"{setting} (direct)", quantity)] == parts
    assert any(both[(f"{s} (warmup)", q)] != v for (s, q), v in alone.items())


def test_the_fixed_noise_twin_splits_the_seeds_part():
    """With a twin study (one noise draw for every seed), the seeds' part splits into the twin's
    own (initialisation and batch order) and what the first study has beyond it (the noise
    draw): the two add as variances; a setting the twin lacks shows dashes."""
    rows, _ = rows_of(5, sd_seed=0.4)
    twin_rows, _ = rows_of(6, sd_seed=0.1)
    twin_rows = [r for r in twin_rows if r["noise_rate"] == syn.RATES[0]]      # the twin has one rate
    first = study_results.from_rows(rows, params=PARAMS, test_samples={"syn": 400})
    twin = study_results.from_rows(twin_rows, params=PARAMS, test_samples={"syn": 400})
    lines = table(first, twin).splitlines()
    assert lines[0].endswith("| initialisation and batch order | noise draw |")
    seeds_alone = parse(table(twin))
    for line in lines[2:]:
        setting, quantity, _test, seeds, init, noise = [c.strip() for c in line.strip("|").split("|")]
        if setting.endswith(f" {syn.RATES[0]}"):
            assert float(init) == seeds_alone[(setting, quantity)][1]
            expected = math.sqrt(max(float(seeds) ** 2 - float(init) ** 2, 0.0))
            assert abs(float(noise) - expected) <= 0.02, (setting, quantity, noise, expected)
        else:
            assert (init, noise) == ("—", "—")
