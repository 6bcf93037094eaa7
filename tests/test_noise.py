"""Tests of smoothbench.noise: matrices, corruption, instance noise, CIFAR-N, stats, the noise step, CLI entry."""

from __future__ import annotations

import fractions
import json
import math
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from smoothbench.core import vocabulary as cells
from smoothbench.data import datasets as data
from smoothbench import noise
from smoothbench.noise import instance
from smoothbench.cli.commands import main as cli_main


# --------------------------------------------------------------------------- helpers


def write_dataset(path, name, x_train, y_train, class_names, x_test=None, y_test=None):
    """A dataset file in the format of docs/formats.md, written with np.savez."""
    x_test = x_train[:5] if x_test is None else x_test
    y_test = y_train[:5] if y_test is None else y_test
    arrays = dict(x_train=x_train, y_train=y_train.astype(np.int64), x_test=x_test,
                  y_test=y_test.astype(np.int64), class_names=np.array(class_names))
    digest = data.content_hash(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                               class_names)
    np.savez(path, name=np.array(name), content_hash=np.array(digest), **arrays)
    return path


def balanced_labels(num_classes, per_class, seed=0):
    y = np.repeat(np.arange(num_classes), per_class)
    return np.random.default_rng(seed).permutation(y).astype(np.int64)


def truncnorm_mean(mu, sigma=0.1, low=0.0, high=1.0):
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    a, b = (low - mu) / sigma, (high - mu) / sigma
    return mu + sigma * (phi(a) - phi(b)) / (cdf(b) - cdf(a))


def assert_one_line(exc_info, *fragments):
    msg = str(exc_info.value)
    assert "\n" not in msg
    for f in fragments:
        assert f in msg, (f, msg)


# --------------------------------------------------------------------------- transition matrices


def test_symmetric_matrix_exact():
    t = noise.transition_matrix("symmetric", 5, 0.4)
    assert t.shape == (5, 5) and t.dtype == np.float64
    np.testing.assert_allclose(t.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.diag(t), 0.6)
    off = t[~np.eye(5, dtype=bool)]
    np.testing.assert_allclose(off, 0.4 / 4)


def test_pairflip_matrix_exact():
    t = noise.transition_matrix("pairflip", 4, 0.3, pairs="cyclic")
    expected = np.array([[0.7, 0.3, 0, 0], [0, 0.7, 0.3, 0], [0, 0, 0.7, 0.3], [0.3, 0, 0, 0.7]])
    np.testing.assert_allclose(t, expected, atol=1e-12)


def test_reference_pairflip_is_the_reference_codes_pairs():
    """The reference code's noisify_pairflip: two-way pairs 0<->2, 1<->9, 3<->5, 4<->7, 6<->8,
    every class flips (airplane<->bird, automobile<->truck, cat<->dog, deer<->horse, frog<->ship)."""
    t = noise.transition_matrix("pairflip", 10, 0.3)                    # reference pairs: the default
    expected = np.eye(10) * 0.7
    for a, b in [(0, 2), (1, 9), (3, 5), (4, 7), (6, 8)]:
        expected[a, b] = expected[b, a] = 0.3
    np.testing.assert_allclose(t, expected, atol=1e-12)
    with pytest.raises(ValueError) as exc:
        noise.transition_matrix("pairflip", 5, 0.3)
    assert_one_line(exc, "K = 10", "pairs: cyclic")


@pytest.mark.parametrize("rate", [0.2, 0.3, 0.4])
def test_reference_pairflip_realises_its_nominal_rate_on_cifar10_sized_labels(rate):
    """Unlike the truck->automobile map (5 of 10 classes flip), every class flips: the realised
    rate is the nominal one, within 4 binomial standard errors for 50,000 labels."""
    n = 50_000
    y = balanced_labels(10, n // 10, seed=3)
    noisy = noise.corrupt_labels(y, noise.transition_matrix("pairflip", 10, rate), 11)
    assert abs(np.mean(noisy != y) - rate) <= 4 * np.sqrt(rate * (1 - rate) / n)
    per_class = [np.mean(noisy[y == c] != c) for c in range(10)]
    assert min(per_class) > rate - 4 * np.sqrt(rate * (1 - rate) / (n // 10))


# The labels the reference code (UCSC-REAL/negative-label-smoothing @05078f6, data/utils.py:
# noisify_pairflip / noisify_multiclass_symmetric with random_state=0, noise 0.4) gives for
# the clean labels 0, 1, ..., 9 repeated six times; recorded by running that code once.
REFERENCE_PAIRFLIP_04 = [0, 9, 0, 3, 4, 3, 6, 4, 6, 9, 2, 1, 0, 3, 4, 5, 8, 4, 6, 9, 2, 9, 2, 3, 4, 5, 6, 7, 6, 1,
                         2, 9, 2, 5, 7, 5, 6, 7, 8, 9, 0, 1, 0, 3, 4, 5, 6, 4, 8, 9, 2, 9, 2, 3, 7, 3, 6, 7, 8, 9]
REFERENCE_SYMMETRIC_04 = [0, 1, 2, 2, 8, 2, 9, 7, 8, 5, 0, 1, 2, 3, 4, 2, 1, 7, 8, 9, 0, 1, 1, 3, 4, 7, 1, 7, 8, 9,
                          6, 1, 5, 0, 4, 5, 6, 7, 8, 9, 1, 8, 2, 2, 4, 5, 6, 8, 5, 9, 0, 2, 1, 5, 4, 1, 6, 4, 0, 9]


@pytest.mark.parametrize("kind,expected", [("pairflip", REFERENCE_PAIRFLIP_04),
                                           ("symmetric", REFERENCE_SYMMETRIC_04)])
def test_reference_sampler_gives_the_reference_codes_labels(kind, expected):
    y = np.arange(60) % 10
    got = noise.corrupt_labels(y, noise.transition_matrix(kind, 10, 0.4), 0, sampler="reference")
    assert got.tolist() == expected


def test_asymmetric_cifar10_map_exact():
    t = noise.transition_matrix("asymmetric", 10, 0.4, dataset="cifar10")
    np.testing.assert_allclose(t.sum(axis=1), 1.0, atol=1e-12)
    for src, dst in [(9, 1), (2, 0), (4, 7), (3, 5), (5, 3)]:  # truck, bird, deer, cat, dog
        assert t[src, src] == pytest.approx(0.6) and t[src, dst] == pytest.approx(0.4)
        assert np.count_nonzero(t[src]) == 2
    for c in (0, 1, 6, 7, 8):
        np.testing.assert_array_equal(t[c], np.eye(10)[c])


def test_asymmetric_class_map_from_json_keys():
    t = noise.transition_matrix("asymmetric", 4, 0.25, class_map={"0": 2, 3: "1"})
    expected = np.eye(4)
    expected[0] = [0.75, 0, 0.25, 0]
    expected[3] = [0, 0.25, 0, 0.75]
    np.testing.assert_allclose(t, expected)


# The CIFAR-100 superclasses as published with the dataset, and its fine label names in
# label order (alphabetical, as in the dataset's meta file): an independent check of
# the module's CIFAR100_COARSE table.
CIFAR100_FINE = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly "
    "camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup "
    "dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower "
    "leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid "
    "otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road "
    "rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower "
    "sweet_pepper table tank telephone television tiger tractor train trout tulip turtle wardrobe whale "
    "willow_tree wolf woman worm"
).split()
CIFAR100_SUPER = [  # in coarse label order
    "beaver dolphin otter seal whale", "aquarium_fish flatfish ray shark trout",
    "orchid poppy rose sunflower tulip", "bottle bowl can cup plate",
    "apple mushroom orange pear sweet_pepper", "clock keyboard lamp telephone television",
    "bed chair couch table wardrobe", "bee beetle butterfly caterpillar cockroach",
    "bear leopard lion tiger wolf", "bridge castle house road skyscraper",
    "cloud forest mountain plain sea", "camel cattle chimpanzee elephant kangaroo",
    "fox porcupine possum raccoon skunk", "crab lobster snail spider worm", "baby boy girl man woman",
    "crocodile dinosaur lizard snake turtle", "hamster mouse rabbit shrew squirrel",
    "maple_tree oak_tree palm_tree pine_tree willow_tree", "bicycle bus motorcycle pickup_truck train",
    "lawn_mower rocket streetcar tank tractor",
]


def test_cifar100_coarse_table_matches_superclasses():
    assert len(CIFAR100_FINE) == 100 and CIFAR100_FINE == sorted(CIFAR100_FINE)
    expected = [None] * 100
    for c, members in enumerate(CIFAR100_SUPER):
        for name in members.split():
            expected[CIFAR100_FINE.index(name)] = c
    assert list(noise.CIFAR100_COARSE) == expected


def test_asymmetric_cifar100_within_superclass_cycles():
    rate = 0.3
    t = noise.transition_matrix("asymmetric", 100, rate, dataset="cifar100")
    np.testing.assert_allclose(t.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.diag(t), 1 - rate)
    coarse = np.asarray(noise.CIFAR100_COARSE)
    dst = (t - np.diag(np.diag(t))).argmax(axis=1)
    assert np.all(coarse[dst] == coarse)  # stays in the superclass
    assert sorted(dst.tolist()) == list(range(100))  # a permutation ...
    for start in range(100):  # ... made of 5-cycles
        seen, c = [], start
        for _ in range(5):
            seen.append(c)
            c = dst[c]
        assert c == start and len(set(seen)) == 5
    # apple -> mushroom -> orange -> pear -> sweet_pepper -> apple (next by label)
    names = ["apple", "mushroom", "orange", "pear", "sweet_pepper", "apple"]
    for a, b in zip(names, names[1:]):
        assert t[CIFAR100_FINE.index(a), CIFAR100_FINE.index(b)] == pytest.approx(rate)


@pytest.mark.parametrize("kind,kw", [("symmetric", {}), ("pairflip", {}), ("pairflip", {"pairs": "cyclic"}),
                                     ("asymmetric", {"dataset": "cifar10"})])
def test_rate_zero_is_identity(kind, kw):
    np.testing.assert_array_equal(noise.transition_matrix(kind, 10, 0.0, **kw), np.eye(10))


@pytest.mark.parametrize("kind,k,rate,kw,fragments", [
    ("symmetric", 10, 0.9, {}, ["rate", "[0, 0.9)"]),
    ("symmetric", 10, -0.1, {}, ["rate", "[0, 0.9)"]),
    ("symmetric", 2, 0.5, {}, ["[0, 0.5)"]),
    ("symmetric", 10, float("nan"), {}, ["[0, 0.9)"]),
    ("pairflip", 10, 0.5, {}, ["rate", "[0, 0.5)"]),
    ("asymmetric", 10, 0.5, {"dataset": "cifar10"}, ["rate", "[0, 0.5)"]),
    ("asymmetric", 10, "abc", {"dataset": "cifar10"}, ["rate", "[0, 0.5)"]),
    ("bogus", 10, 0.1, {}, ["kind", "symmetric, pairflip, asymmetric"]),
    ("instance", 10, 0.1, {}, ["kind", "symmetric, pairflip, asymmetric"]),
    ("symmetric", 1, 0.1, {}, ["num_classes", ">= 2"]),
    ("asymmetric", 10, 0.2, {"dataset": "digits"}, ["class_map", "cifar10, cifar100"]),
    ("asymmetric", 5, 0.2, {"dataset": "cifar10"}, ["num_classes=10"]),
    ("asymmetric", 4, 0.2, {"class_map": {0: 0}}, ["class_map", "[0, 4)"]),
    ("asymmetric", 4, 0.2, {"class_map": {0: 7}}, ["class_map", "[0, 4)"]),
    ("symmetric", 4, 0.2, {"class_map": {0: 1}}, ["options"]),
])
def test_bad_matrix_arguments(kind, k, rate, kw, fragments):
    with pytest.raises(ValueError) as exc:
        noise.transition_matrix(kind, k, rate, **kw)
    assert_one_line(exc, *fragments)


def test_rate_range_table():
    assert noise.rate_range("symmetric", 10) == (0.0, 0.9)
    assert noise.rate_range("pairflip", 10) == (0.0, 0.5)
    assert noise.rate_range("asymmetric", 100) == (0.0, 0.5)
    assert noise.rate_range("instance", 10) == (0.0, 1.0)
    with pytest.raises(ValueError):
        noise.rate_range("human", 10)


# --------------------------------------------------------------------------- the registry


@pytest.mark.parametrize("k", [2, 3, 5, 10, 100])
def test_rate_ranges_are_the_closed_forms(k):
    """symmetric below (K-1)/K (where the labels would carry no information), the class-pair
    kinds below 1/2 (the clean class stays the likeliest label), instance below 1."""
    closed = {"symmetric": (0.0, (k - 1) / k), "pairflip": (0.0, 0.5), "asymmetric": (0.0, 0.5), "instance": (0.0, 1.0)}
    assert {name: noise.rate_range(name, k) for name in noise.numeric_names()} == closed
    for named in ("human", "annotations"):
        with pytest.raises(ValueError) as exc:
            noise.rate_range(named, k)
        assert_one_line(exc, f"kind '{named}' has no numeric rate", "symmetric, pairflip, asymmetric, instance")
    low, high = noise.rate_range("symmetric", k)
    noise.check_rate("symmetric", low, k)
    with pytest.raises(ValueError):
        noise.check_rate("symmetric", high, k)


def _matrix_cases():
    rng = np.random.default_rng(5)
    for k in (2, 3, 7, 10):
        for frac in (0.0, 0.3, 0.99):
            yield "symmetric", k, frac * (k - 1) / k, {}
            yield "pairflip", k, frac * 0.5, {"pairs": "cyclic"}
            if k == 10:
                yield "pairflip", k, frac * 0.5, {}
                yield "asymmetric", k, frac * 0.5, {"dataset": "cifar10"}
            src = rng.choice(k, size=max(1, k // 2), replace=False)
            yield "asymmetric", k, frac * 0.5, {"class_map": {int(s): int((s + 1 + rng.integers(k - 1)) % k) for s in src}}
    yield "asymmetric", 100, 0.4, {"dataset": "cifar100"}


@pytest.mark.parametrize("kind,k,rate,kw", list(_matrix_cases()))
def test_every_transition_matrix_is_stochastic_and_keeps_1_minus_rate(kind, k, rate, kw):
    t = noise.transition_matrix(kind, k, rate, **kw)
    assert t.shape == (k, k) and t.dtype == np.float64
    assert t.min() >= 0 and np.allclose(t.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    moved = t.diagonal() < 1.0
    assert np.allclose(t.diagonal()[moved], 1.0 - rate, rtol=0, atol=1e-12)   # a class that moves keeps 1 - rate
    assert rate > 0 or np.array_equal(t, np.eye(k))


def test_noise_kind_registry_refuses_a_taken_name_and_malformed_entries():
    before = dict(noise.REGISTRY)
    cases = [
        (noise.NoiseKind("symmetric", "again", "[0, 1)", rate_range=lambda k: (0.0, 1.0),
                         matrix=lambda k, rate: np.eye(k)), "noise kind 'symmetric': the name is taken"),
        (noise.NoiseKind("Bad-Name", "x", "[0, 1)", rate_range=lambda k: (0.0, 1.0), matrix=lambda k, rate: np.eye(k)),
         "must match"),
        (noise.NoiseKind("both", "x", "[0, 1)", rate_range=lambda k: (0.0, 1.0), matrix=lambda k, rate: np.eye(k),
                         corrupt=lambda job: None), "exactly one of matrix"),
        (noise.NoiseKind("neither", "x", "[0, 1)", rate_range=lambda k: (0.0, 1.0)), "exactly one of matrix"),
        (noise.NoiseKind("named", "x", "a label set", corrupt=lambda job: None), "needs label_sets"),
        (noise.NoiseKind("twice", "x", "[0, 1)", rate_range=lambda k: (0.0, 1.0), matrix=lambda k, rate: np.eye(k),
                         options=(noise.Option("a", {}, "x"), noise.Option("a", {}, "y"))), "option names must be distinct"),
    ]
    for entry, fragment in cases:
        with pytest.raises(ValueError) as exc:
            noise.register(entry)
        assert_one_line(exc, fragment)
    assert noise.REGISTRY == before


# --------------------------------------------------------------------------- corrupt_labels


def test_corrupt_labels_deterministic():
    y = balanced_labels(10, 200)
    t = noise.transition_matrix("symmetric", 10, 0.4)
    a, b = noise.corrupt_labels(y, t, 123), noise.corrupt_labels(y, t, 123)
    assert a.dtype == np.int64 and a.shape == y.shape
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, noise.corrupt_labels(y, t, 124))
    np.testing.assert_array_equal(y, balanced_labels(10, 200))  # input untouched


@pytest.mark.parametrize("t", [
    noise.transition_matrix("symmetric", 5, 0.6),
    noise.transition_matrix("pairflip", 5, 0.45, pairs="cyclic"),
    noise.transition_matrix("pairflip", 10, 0.45),
    noise.transition_matrix("asymmetric", 5, 0.3, class_map={0: 1, 1: 0, 4: 2}),
    np.array([[0.5, 0.2, 0.3], [0.0, 0.1, 0.9], [0.25, 0.25, 0.5]]),
])
@pytest.mark.parametrize("sampler", ["inverse_cdf", "reference"])
def test_corrupt_labels_frequencies_follow_matrix(t, sampler):
    k, n = t.shape[0], 8000
    y = balanced_labels(k, n, seed=1)
    noisy = noise.corrupt_labels(y, t, 7, sampler)
    emp = noise.empirical_transition(y, noisy, k)
    tol = 5 * np.sqrt(t * (1 - t) / n)  # 5 binomial standard errors per entry
    assert np.all(np.abs(emp - t) <= tol + 1e-12), np.abs(emp - t) - tol
    assert np.all(emp[t == 0] == 0)  # impossible transitions never happen


def test_corrupt_labels_rate_zero_returns_clean():
    y = balanced_labels(7, 50)
    for kind, kw in (("symmetric", {}), ("pairflip", {"pairs": "cyclic"})):
        np.testing.assert_array_equal(noise.corrupt_labels(y, noise.transition_matrix(kind, 7, 0.0, **kw), 3), y)


@pytest.mark.parametrize("t,labels,fragment", [
    (np.full((3, 3), 0.5), [0, 1], "sum to 1"),
    (np.array([[1.5, -0.5], [0, 1]]), [0, 1], ">= 0"),
    (np.eye(3)[:2], [0, 1], "square"),
    (np.eye(3), [0, 3], "[0, 3)"),
    (np.eye(3), [0.0, 1.0], "integer"),
])
def test_corrupt_labels_bad_inputs(t, labels, fragment):
    with pytest.raises(ValueError) as exc:
        noise.corrupt_labels(np.asarray(labels), t, 0)
    assert_one_line(exc, fragment)


# --------------------------------------------------------------------------- instance noise


def _instance_fixture(n_per_class=2000, k=10, d=24, seed=0):
    rng = np.random.default_rng(seed)
    y = balanced_labels(k, n_per_class, seed)
    centres = rng.normal(size=(k, d))
    x = (centres[y] + rng.normal(size=(y.size, d))).astype(np.float32)
    return x, y


@pytest.mark.parametrize("rate", [0.05, 0.3, 0.6])
def test_instance_noise_average_rate(rate):
    x, y = _instance_fixture()
    noisy, emp = noise.instance_noise(x, y, 10, rate, seed=11)
    realised = np.mean(noisy != y)
    expected = truncnorm_mean(rate)  # mean per-sample flip rate: the whole flip mass leaves the class
    # Each sample flips with its own q_i: the fraction's std is at most 0.5/sqrt(N).
    assert abs(realised - expected) <= 5 * 0.5 / math.sqrt(y.size)
    if rate >= 0.3:  # away from the truncation the target is the nominal rate itself
        assert abs(expected - rate) < 1e-3
    np.testing.assert_allclose(emp, noise.empirical_transition(y, noisy, 10))
    np.testing.assert_allclose(emp.sum(axis=1), 1.0)


def test_instance_noise_deterministic_and_seeded():
    x, y = _instance_fixture(300)
    a, ta = noise.instance_noise(x, y, 10, 0.4, seed=5)
    b, tb = noise.instance_noise(x, y, 10, 0.4, seed=5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ta, tb)
    assert a.dtype == np.int64
    assert not np.array_equal(a, noise.instance_noise(x, y, 10, 0.4, seed=6)[0])


def test_instance_flip_probabilities_structure():
    x, y = _instance_fixture(300)
    rate = 0.4
    probs = instance._instance_flip_probabilities(x, y, 10, rate, np.random.Generator(np.random.PCG64(3)))
    q = instance._truncated_normal(np.random.Generator(np.random.PCG64(3)), rate, 0.1, y.size)  # first draws
    rows = np.arange(y.size)
    assert np.all((q >= 0) & (q <= 1))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(probs[rows, y], 1 - q)  # stay with 1 - q_i: the flip mass never goes to self
    off = probs.copy()
    off[rows, y] = 0
    np.testing.assert_allclose(off.sum(axis=1), q)
    # instance dependent: within a class, samples favour different flip targets
    top = off.argmax(axis=1)
    assert all(len(set(top[y == c].tolist())) > 1 for c in range(10))


def test_instance_noise_rate_zero_and_bad_rate():
    x, y = _instance_fixture(20)
    noisy, emp = noise.instance_noise(x, y, 10, 0.0, seed=1)
    np.testing.assert_array_equal(noisy, y)
    np.testing.assert_array_equal(emp, np.eye(10))
    with pytest.raises(ValueError) as exc:
        noise.instance_noise(x, y, 10, 1.0, seed=1)
    assert_one_line(exc, "rate", "[0, 1)")
    with pytest.raises(ValueError):
        noise.instance_noise(x[:-1], y, 10, 0.2, seed=1)


def test_instance_noise_on_images():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(1000, 3, 4, 4), dtype=np.uint8)
    y = balanced_labels(4, 250)
    noisy, _ = noise.instance_noise(x, y, 4, 0.3, seed=2)
    assert abs(np.mean(noisy != y) - 0.3) <= 5 * 0.5 / math.sqrt(1000)


# --------------------------------------------------------------------------- CIFAR-N


CIFAR10N_KEYS = {"aggre": "aggre_label", "random1": "random_label1", "random2": "random_label2",
                 "random3": "random_label3", "worst": "worse_label"}


def write_cifar10n(folder, clean):
    """A CIFAR-10_human.pt in the published layout: torch.save of a dict of int64 arrays."""
    rng = np.random.default_rng(0)
    d = {"clean_label": clean.astype(np.int64)}
    for key in ("aggre_label", "worse_label", "random_label1", "random_label2", "random_label3"):
        d[key] = rng.integers(0, 10, size=clean.size).astype(np.int64)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(d, folder / "CIFAR-10_human.pt")
    return d


def write_cifar100n(folder, clean):
    rng = np.random.default_rng(1)
    noisy = rng.integers(0, 100, size=clean.size).astype(np.int64)
    coarse = np.asarray(noise.CIFAR100_COARSE)
    d = {"clean_label": clean.astype(np.int64), "noisy_label": noisy,
         "noisy_coarse_label": coarse[noisy].tolist(), "clean_coarse_label": coarse[clean].tolist()}
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(d, folder / "CIFAR-100_human.pt")
    return d


def test_load_human_labels_cifar10n_label_sets(tmp_path):
    clean = balanced_labels(10, 6)
    d = write_cifar10n(tmp_path, clean)
    for label_set, key in CIFAR10N_KEYS.items():
        got = noise.load_human_labels(tmp_path, label_set, 10, train_labels=clean)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, d[key])
    # the file path itself works too
    np.testing.assert_array_equal(noise.load_human_labels(tmp_path / "CIFAR-10_human.pt", "worst", 10),
                                  d["worse_label"])


def test_load_human_labels_cifar100n(tmp_path):
    clean = balanced_labels(100, 2)
    d = write_cifar100n(tmp_path, clean)
    got = noise.load_human_labels(tmp_path, "noisy100", 100, train_labels=clean)
    np.testing.assert_array_equal(got, d["noisy_label"])


def test_load_human_labels_numpy1_pickle_and_refuses_other_objects(tmp_path):
    """The published files were pickled by NumPy 1 (global numpy.core.multiarray._reconstruct)."""
    clean = balanced_labels(10, 2)
    write_cifar10n(tmp_path / "new", clean)
    with zipfile.ZipFile(tmp_path / "new" / "CIFAR-10_human.pt") as z:
        entries = [(info, z.read(info.filename)) for info in z.infolist()]
    (tmp_path / "old").mkdir()
    with zipfile.ZipFile(tmp_path / "old" / "CIFAR-10_human.pt", "w", compression=zipfile.ZIP_STORED) as z:
        for info, payload in entries:
            if info.filename.endswith("data.pkl"):
                assert b"numpy._core.multiarray" in payload
                payload = payload.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            z.writestr(info, payload)
    assert "numpy.core.multiarray._reconstruct" in torch.serialization.get_unsafe_globals_in_checkpoint(
        tmp_path / "old" / "CIFAR-10_human.pt")
    np.testing.assert_array_equal(noise.load_human_labels(tmp_path / "old", "aggre", 10, train_labels=clean),
                                  noise.load_human_labels(tmp_path / "new", "aggre", 10))
    (tmp_path / "evil").mkdir()
    torch.save({"clean_label": clean, "aggre_label": clean, "x": fractions.Fraction(1, 3)},
               tmp_path / "evil" / "CIFAR-10_human.pt")
    with pytest.raises(ValueError) as exc:
        noise.load_human_labels(tmp_path / "evil", "aggre", 10)
    assert_one_line(exc, "not a readable CIFAR-N label file")


def test_load_human_labels_errors(tmp_path):
    clean = balanced_labels(10, 6)
    write_cifar10n(tmp_path / "c10", clean)
    with pytest.raises(ValueError) as exc:  # clean labels of the file differ: wrong file or order
        noise.load_human_labels(tmp_path / "c10", "aggre", 10, train_labels=clean[::-1])
    assert_one_line(exc, "clean_label", "order")
    with pytest.raises(FileNotFoundError) as exc:
        noise.load_human_labels(tmp_path / "nowhere", "aggre", 10)
    assert_one_line(exc, str(tmp_path / "nowhere" / "CIFAR-10_human.pt"), "UCSC-REAL/cifar-10-100n", "data/")
    with pytest.raises(ValueError) as exc:
        noise.load_human_labels(tmp_path / "c10", "worse", 10)
    assert_one_line(exc, "aggre, random1, random2, random3, worst, noisy100")
    with pytest.raises(ValueError) as exc:
        noise.load_human_labels(tmp_path / "c10", "noisy100", 10)
    assert_one_line(exc, "100 classes")


# --------------------------------------------------------------------------- noise_stats


def test_noise_stats_hand_example():
    clean = np.array([0, 0, 0, 1, 1, 2])
    noisy = np.array([0, 1, 1, 1, 0, 2])
    s = noise.noise_stats(clean, noisy, 4, "symmetric", 0.40, 3)
    assert s == {
        "kind": "symmetric", "rate": "0.4", "seed": 3, "num_samples": 6, "num_classes": 4,
        "realised_rate": pytest.approx(0.5),
        "per_class_rate": pytest.approx([2 / 3, 0.5, 0.0, 0.0]),
        "empirical_transition": [pytest.approx(r) for r in
                                 ([1 / 3, 2 / 3, 0, 0], [0.5, 0.5, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1])],
    }
    json.dumps(s, allow_nan=False)
    assert noise.noise_stats(clean, noisy, 4, "human", "aggre", 0)["rate"] == "aggre"


# --------------------------------------------------------------------------- make_noisy_labels / CLI


@pytest.fixture
def toy_data(tmp_path):
    rng = np.random.default_rng(0)
    y = balanced_labels(3, 200)
    x = rng.normal(size=(y.size, 5)).astype(np.float32)
    return write_dataset(tmp_path / "toy.npz", "toy", x, y, ["a", "b", "c"]), y


def read_npz(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def test_make_noisy_labels_symmetric_end_to_end(tmp_path, toy_data):
    path, y = toy_data
    out = tmp_path / "noisy" / "toy-symmetric-0.2-s0.npz"
    stats = noise.make_noisy_labels(path, "symmetric", "0.20", 0, out)
    z = read_npz(out)
    assert set(z) == {"noisy_labels", "clean_labels", "transition", "kind", "rate", "seed", "noise_seed", "dataset_hash"}
    assert z["noisy_labels"].dtype == np.int64 and z["clean_labels"].dtype == np.int64
    np.testing.assert_array_equal(z["clean_labels"], y)
    t = noise.transition_matrix("symmetric", 3, 0.2)
    np.testing.assert_array_equal(z["transition"], t)
    expected = noise.corrupt_labels(y, t, cells.derive_seed("noise", "toy", "symmetric", "0.2", 0))
    np.testing.assert_array_equal(z["noisy_labels"], expected)
    assert (str(z["kind"]), str(z["rate"]), int(z["seed"])) == ("symmetric", "0.2", 0)
    assert str(z["dataset_hash"]) == data.load_dataset(path).content_hash
    js = json.loads(out.with_suffix(".json").read_text())
    assert js == {**json.loads(json.dumps(noise.noise_stats(y, expected, 3, "symmetric", 0.2, 0))),
                  "noise_seed": 0, "options": {"sampler": "inverse_cdf"}}
    assert js == json.loads(json.dumps(stats))
    assert 0.1 < js["realised_rate"] < 0.3
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp files left
    # rebuilt: byte-identical files
    before = out.read_bytes(), out.with_suffix(".json").read_bytes()
    noise.make_noisy_labels(path, "symmetric", 0.2, 0, out)
    assert (out.read_bytes(), out.with_suffix(".json").read_bytes()) == before
    # another seed, other labels
    other = tmp_path / "s1.npz"
    noise.make_noisy_labels(path, "symmetric", 0.2, 1, other)
    assert not np.array_equal(read_npz(other)["noisy_labels"], expected)


@pytest.mark.parametrize("kind", ["symmetric", "pairflip", "instance"])
def test_make_noisy_labels_rate_zero_is_clean(tmp_path, toy_data, kind):
    path, y = toy_data
    out = tmp_path / f"{kind}.npz"
    noise.make_noisy_labels(path, kind, "0", 0, out, options={"pairs": "cyclic"} if kind == "pairflip" else None)
    z = read_npz(out)
    np.testing.assert_array_equal(z["noisy_labels"], y)
    np.testing.assert_array_equal(z["transition"], np.eye(3))
    assert str(z["rate"]) == "0"


def test_make_noisy_labels_asymmetric_map_option(tmp_path, toy_data):
    path, y = toy_data
    out = tmp_path / "asym.npz"
    noise.make_noisy_labels(path, "asymmetric", 0.4, 0, out, options={"map": {"0": 2}})
    z = read_npz(out)
    expected_t = np.eye(3)
    expected_t[0] = [0.6, 0, 0.4]
    np.testing.assert_allclose(z["transition"], expected_t)
    changed = z["noisy_labels"] != y
    assert np.all(y[changed] == 0) and np.all(z["noisy_labels"][changed] == 2)
    with pytest.raises(ValueError) as exc:  # no built-in map for "toy"
        noise.make_noisy_labels(path, "asymmetric", 0.4, 0, tmp_path / "x.npz")
    assert_one_line(exc, "class_map", "cifar10")
    with pytest.raises(ValueError) as exc:
        noise.make_noisy_labels(path, "symmetric", 0.4, 0, tmp_path / "x.npz", options={"map": {"0": 2}})
    assert_one_line(exc, "map", "symmetric")


def test_noise_seed_shares_one_draw_across_seeds(tmp_path, toy_data):
    """noise_seed fixed: every study seed gets the same labels (the reference code draws with
    random_state 0 whatever the seed); the file still records the study's seed."""
    path, y = toy_data
    a, b, c = tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "c.npz"
    noise.make_noisy_labels(path, "symmetric", 0.4, 0, a, noise_seed=0)
    noise.make_noisy_labels(path, "symmetric", 0.4, 1, b, noise_seed=0)
    noise.make_noisy_labels(path, "symmetric", 0.4, 1, c)
    za, zb, zc = read_npz(a), read_npz(b), read_npz(c)
    np.testing.assert_array_equal(za["noisy_labels"], zb["noisy_labels"])
    assert (int(za["seed"]), int(zb["seed"]), int(zb["noise_seed"]), int(zc["noise_seed"])) == (0, 1, 0, 1)
    assert not np.array_equal(zb["noisy_labels"], zc["noisy_labels"])
    stats = json.loads(b.with_suffix(".json").read_text())
    assert stats["noise_seed"] == 0 and stats["options"] == {"sampler": "inverse_cdf"}


def test_make_noisy_labels_instance_on_images(tmp_path):
    rng = np.random.default_rng(0)
    y = balanced_labels(4, 100)
    x = rng.integers(0, 256, size=(y.size, 1, 4, 4), dtype=np.uint8)
    path = write_dataset(tmp_path / "img.npz", "img", x, y, ["a", "b", "c", "d"])
    out = tmp_path / "inst.npz"
    stats = noise.make_noisy_labels(path, "instance", 0.3, 0, out)
    z = read_npz(out)
    seed = cells.derive_seed("noise", "img", "instance", "0.3", 0)
    noisy, emp = noise.instance_noise(x, y, 4, 0.3, seed)
    np.testing.assert_array_equal(z["noisy_labels"], noisy)
    np.testing.assert_array_equal(z["transition"], emp)
    assert stats["realised_rate"] == pytest.approx(np.mean(noisy != y))


def test_make_noisy_labels_human(tmp_path):
    rng = np.random.default_rng(0)
    y = balanced_labels(10, 3)
    x = rng.integers(0, 256, size=(y.size, 3, 2, 2), dtype=np.uint8)
    path = write_dataset(tmp_path / "cifar10.npz", "cifar10", x, y, [f"c{i}" for i in range(10)])
    d = write_cifar10n(tmp_path / "cifarn", y)
    out = tmp_path / "human.npz"
    stats = noise.make_noisy_labels(path, "human", "worst", 0, out, options={"human_dir": str(tmp_path / "cifarn")})
    z = read_npz(out)
    np.testing.assert_array_equal(z["noisy_labels"], d["worse_label"])
    np.testing.assert_allclose(z["transition"], noise.empirical_transition(y, d["worse_label"], 10))
    assert str(z["rate"]) == "worst" and stats["rate"] == "worst" and stats["kind"] == "human"
    with pytest.raises(FileNotFoundError) as exc:
        noise.make_noisy_labels(path, "human", "aggre", 0, out, options={"human_dir": str(tmp_path / "none")})
    assert_one_line(exc, "CIFAR-10_human.pt", "UCSC-REAL/cifar-10-100n")


def test_cli_noise_success_and_bad_rate(tmp_path, toy_data, capsys):
    path, _ = toy_data
    out = tmp_path / "cli.npz"
    assert cli_main(["noise", "--data", str(path), "--kind", "pairflip", "--rate", "0.3", "--seed", "2",
                     "--option", "pairs=cyclic", "--out", str(out)]) == 0
    assert out.exists() and out.with_suffix(".json").exists()
    capsys.readouterr()
    proc = subprocess.run(
        [sys.executable, "-m", "smoothbench.cli", "noise", "--data", str(path), "--kind", "symmetric",
         "--rate", "0.8", "--seed", "0", "--out", str(tmp_path / "bad.npz")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "rate" in lines[0] and "[0, 0.666667)" in lines[0], proc.stderr
    assert not (tmp_path / "bad.npz").exists() and not (tmp_path / "bad.json").exists()
