"""Class-conditional noise kinds: ``symmetric``, ``pairflip`` and ``asymmetric``, each a
registry entry beside its transition matrix.

The noisy label of a sample depends only on its clean class: T[i, j] is the probability
that class i gets label j (rows sum to 1), and the labels are drawn from T's rows with the
kind's ``sampler`` option (``sampling.corrupt_labels``). Below 0.5 (and below (K-1)/K for
symmetric) the clean class stays the most likely noisy label of its samples, so the clean
classifier is still the Bayes-optimal one.
"""

from __future__ import annotations

import numpy as np

from .registry import NoiseJob, NoiseKind, Option, register
from .sampling import SAMPLERS

SAMPLER = Option(
    "sampler", {"enum": list(SAMPLERS)}, default="inverse_cdf",
    meaning="how labels are drawn from the transition matrix - inverse_cdf (one uniform per sample from a seed "
            "derived from the group) or reference (numpy RandomState(noise seed), one multinomial draw per sample "
            "in order, as the reference code; with noise_seed 0 it gives the reference's very labels)")

# --------------------------------------------------------------------------- symmetric


def symmetric_matrix(k: int, rate: float) -> np.ndarray:
    """Stay with 1 - rate, go to each other class with rate/(K-1)."""
    t = np.full((k, k), rate / (k - 1))
    np.fill_diagonal(t, 1.0 - rate)
    return t


register(NoiseKind(
    name="symmetric", description="each label goes to each other class with probability rate/(K-1)",
    rates="[0, (K-1)/K) (at (K-1)/K the labels carry no information)",
    rate_range=lambda k: (0.0, (k - 1) / k), matrix=symmetric_matrix, options=(SAMPLER,)))

# --------------------------------------------------------------------------- pairflip

# The reference code's CIFAR-10 pair flips (noisify_pairflip): two-way pairs
# airplane<->bird, automobile<->truck, cat<->dog, deer<->horse, frog<->ship.
REFERENCE_PAIRS = ((0, 2), (1, 9), (3, 5), (4, 7), (6, 8))
PAIRS = ("reference", "cyclic")


def _pair_map(k: int, pairs: str) -> dict[int, int]:
    """Each class -> its pair-flip target."""
    if pairs == "cyclic":
        return {i: (i + 1) % k for i in range(k)}
    if pairs != "reference":
        raise ValueError(f"pairflip pairs {pairs!r} are unknown; allowed: {', '.join(PAIRS)}")
    if k != 10:
        raise ValueError(f"pairflip pairs 'reference' are the reference code's CIFAR-10 pairs (K = 10), "
                         f"not for K = {k}; use pairs: cyclic")
    return {a: b for x, y in REFERENCE_PAIRS for a, b in ((x, y), (y, x))}


def pairflip_matrix(k: int, rate: float, pairs: str = "reference") -> np.ndarray:
    """Every class goes to its pair with probability rate: ``reference`` pairs (K = 10) or
    ``cyclic`` (class i to (i + 1) mod K)."""
    t = np.eye(k)
    t *= 1.0 - rate
    for src, dst in _pair_map(k, pairs).items():
        t[src, dst] += rate
    return t


def _reference_pairs_need_ten(options: dict, dataset: str, k: int) -> tuple[str, str] | None:
    if options["pairs"] == "reference" and k != 10:
        return "pairs", (f"the reference pairs are for K = 10 classes; {dataset} has K = {k}: "
                         "set noise_options.pairflip.pairs: cyclic")
    return None


register(NoiseKind(
    name="pairflip", description="every class goes to its pair with probability rate",
    rates="[0, 0.5)", rate_range=lambda k: (0.0, 0.5), matrix=pairflip_matrix,
    matrix_args=lambda job: {"pairs": job.options["pairs"]}, check_options=_reference_pairs_need_ten,
    options=(Option("pairs", {"enum": list(PAIRS)}, default="reference",
                    meaning="reference - the reference code's two-way pairs 0<->2, 1<->9, 3<->5, 4<->7, 6<->8 "
                            "(K = 10 only; the paper's \"asymmetric\" CIFAR-10 rows); cyclic - class i to i+1 mod K"),
             SAMPLER)))

# --------------------------------------------------------------------------- asymmetric

# CIFAR-10: truck -> automobile, bird -> airplane, deer -> horse, cat <-> dog.
CIFAR10_MAP = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}

# CIFAR-100 coarse (superclass) label of each fine label. Index: fine label in the order
# of the dataset's meta file (fine_label_names, alphabetical: apple, aquarium_fish, ...);
# value: coarse label in the order of coarse_label_names (aquatic_mammals, fish, ...).
# Checked against the clean fine/coarse label pairs of the published CIFAR-100N file.
CIFAR100_COARSE = (
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3,
    3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15,
    0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10,
    16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19,
    2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19,
    18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
)


def _cifar100_map() -> dict[int, int]:
    """Each fine class -> the next fine class (by label) of its superclass, cyclically."""
    coarse = np.asarray(CIFAR100_COARSE)
    out = {}
    for c in range(20):
        fines = np.flatnonzero(coarse == c).tolist()
        out.update(zip(fines, fines[1:] + fines[:1]))
    return out


BUILTIN_MAPS = {"cifar10": (10, CIFAR10_MAP), "cifar100": (100, _cifar100_map())}


def _class_map(k: int, class_map: dict | None, dataset: str | None) -> dict[int, int]:
    if class_map is None:
        if dataset not in BUILTIN_MAPS:
            raise ValueError(
                f"asymmetric noise on {dataset} needs a class_map {{source class: target class}}: give it as "
                f"noise_options.asymmetric.map.{dataset} in params.yaml (--option map=... of the noise step); "
                f"built-in maps exist for {', '.join(BUILTIN_MAPS)}"
            )
        need, class_map = BUILTIN_MAPS[dataset]
        if k != need:
            raise ValueError(f"the built-in {dataset} class map needs num_classes={need}, got {k}")
    if not isinstance(class_map, dict) or not class_map:
        raise ValueError(f"class_map must be a non-empty mapping {{src: dst}}, got {class_map!r}")
    out = {}
    for src, dst in class_map.items():
        try:
            s, d = int(src), int(dst)
        except (TypeError, ValueError):
            raise ValueError(f"class_map entry {src!r}: {dst!r} is not a pair of class indices") from None
        if not (0 <= s < k and 0 <= d < k) or s == d:
            raise ValueError(f"class_map entry {s}: {d} must map a class in [0, {k}) to another one")
        out[s] = d
    return out


def asymmetric_matrix(k: int, rate: float, class_map: dict | None = None, dataset: str | None = None) -> np.ndarray:
    """Each source class of a class map goes to its target with probability rate: ``class_map``
    ({src: dst}, keys/values ints or their text), or the built-in map of ``dataset`` (cifar10,
    cifar100)."""
    t = np.eye(k)
    for src, dst in _class_map(k, class_map, dataset).items():
        t[src, src] = 1.0 - rate
        t[src, dst] = rate
    return t


def _asymmetric_args(job: NoiseJob) -> dict:
    if job.dataset in BUILTIN_MAPS and job.options.get("map") is not None:
        raise ValueError(f"dataset {job.dataset} has a built-in asymmetric map; drop the map option")
    return {"dataset": job.dataset, "class_map": job.options.get("map")}


register(NoiseKind(
    name="asymmetric", description="each source class of a class map goes to its target with probability rate",
    rates="[0, 0.5)", rate_range=lambda k: (0.0, 0.5), matrix=asymmetric_matrix, matrix_args=_asymmetric_args,
    options=(Option("map", {"type": "object", "propertyNames": {"$ref": "#/$defs/dataset_name"},
                            "additionalProperties": {"type": "object", "propertyNames": {"pattern": "^[0-9]+$"},
                                                     "additionalProperties": {"type": "integer", "minimum": 0}}},
                    meaning="per dataset, a class map {source class: target class} for datasets without a built-in "
                            f"map ({' and '.join(BUILTIN_MAPS)} have one)",
                    metavar="'{\"0\": 1}'", per_dataset=True),
             SAMPLER)))
