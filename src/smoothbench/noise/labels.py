"""Label noise: transition matrices, label corruption and realised noise statistics.

Every corruption of the stored training labels is a deterministic function of
(labels, transition matrix T or annotations, seed). T[i, j] is the probability that a
sample of clean class i gets the noisy label j; rows sum to 1.

Noise kinds and their valid rates (half-open ranges, ``K`` classes):

- ``symmetric``  rate in [0, (K-1)/K): stay with 1 - rate, go to each other class with
  rate/(K-1). At (K-1)/K the labels carry no information, so it is excluded.
- ``pairflip``   rate in [0, 0.5): every class goes to its pair with probability rate;
  ``pairs: reference`` (K = 10) are the reference code's two-way pairs 0<->2, 1<->9,
  3<->5, 4<->7, 6<->8 (the paper's "asymmetric" CIFAR-10 rows), ``pairs: cyclic`` maps
  class i to (i + 1) mod K.
- ``asymmetric`` rate in [0, 0.5): each source class of a class map goes to its target
  with probability rate (built-in maps for cifar10 and cifar100, else ``class_map``).
- ``instance``   rate in [0, 1): instance-dependent noise after Xia et al. (NeurIPS 2020).
- ``human``      no rate: a CIFAR-N label set (``aggre``, ``random1..3``, ``worst``,
  ``noisy100``).
- ``annotations`` no rate: a label set of your own, a file of real annotations (``userdata``).

Below 0.5 (and below (K-1)/K for symmetric) the clean class stays the most likely noisy
label of its samples, so the clean classifier is still the Bayes-optimal one.

Two samplers draw labels from a transition matrix: ``inverse_cdf`` (one uniform per
sample from ``Generator(PCG64(seed))``) and ``reference`` (``RandomState(seed)``, one
multinomial draw per sample in order: the reference code's sampler, so with its seed 0
it gives the labels the paper trained on).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from . import cifarn
from ..core import files as io, schema
from ..data import userfiles as userdata
from ..core.vocabulary import NAMED_KINDS, NOISE_KINDS, check_num_classes, derive_seed, fmt_rate

MATRIX_KINDS = ("symmetric", "pairflip", "asymmetric")
NUMERIC_KINDS = tuple(k for k in NOISE_KINDS if k not in NAMED_KINDS)

# The reference code's CIFAR-10 pair flips (noisify_pairflip): two-way pairs
# airplane<->bird, automobile<->truck, cat<->dog, deer<->horse, frog<->ship.
REFERENCE_PAIRS = ((0, 2), (1, 9), (3, 5), (4, 7), (6, 8))
PAIRS = ("reference", "cyclic")
SAMPLERS = ("inverse_cdf", "reference")

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

INSTANCE_STD = 0.1  # std of the per-sample flip rate around the nominal rate (Xia et al.)


# --------------------------------------------------------------------------- checks


def rate_range(kind: str, num_classes: int) -> tuple[float, float]:
    """The valid rates ``[low, high)`` of a numeric noise kind with ``num_classes`` classes."""
    k = check_num_classes(num_classes)
    if kind == "symmetric":
        return 0.0, (k - 1) / k
    if kind in ("pairflip", "asymmetric"):
        return 0.0, 0.5
    if kind == "instance":
        return 0.0, 1.0
    raise ValueError(f"kind {kind!r} has no numeric rate; numeric kinds: {', '.join(NUMERIC_KINDS)}")


def check_rate(kind: str, rate: Any, num_classes: int) -> float:
    """``rate`` as a float, or ValueError naming the allowed range for this kind and K."""
    low, high = rate_range(kind, num_classes)
    try:
        r = float(rate)
    except (TypeError, ValueError):
        raise ValueError(f"rate of {kind} noise must be a number in [{low:g}, {high:g}), got {rate!r}") from None
    if not low <= r < high:  # also rejects NaN
        raise ValueError(
            f"rate {rate!r} is out of range for {kind} noise with {num_classes} classes: "
            f"allowed [{low:g}, {high:g})"
        )
    return r


def _check_labels(labels: Any, num_classes: int, name: str = "labels") -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D integer array, got dtype {y.dtype} shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{name} must lie in [0, {num_classes}), found [{y.min()}, {y.max()}]")
    return y.astype(np.int64, copy=False)


def _check_matrix(matrix: Any) -> np.ndarray:
    t = np.asarray(matrix, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] != t.shape[1] or t.shape[0] < 2:
        raise ValueError(f"transition matrix must be square (K, K) with K >= 2, got shape {t.shape}")
    if not np.all(np.isfinite(t)) or t.min() < 0:
        raise ValueError("transition matrix entries must be finite and >= 0")
    if not np.allclose(t.sum(axis=1), 1.0, rtol=0, atol=1e-9):
        raise ValueError("transition matrix rows must sum to 1")
    return t


# --------------------------------------------------------------------------- matrices


def transition_matrix(kind: str, num_classes: int, rate: float, **kw: Any) -> np.ndarray:
    """The (K, K) float64 transition matrix of a class-conditional noise kind.

    ``symmetric`` takes no options; ``pairflip`` takes ``pairs`` (``reference``, the
    default, K = 10 only; or ``cyclic``). ``asymmetric`` takes ``class_map`` ({src: dst},
    keys/values ints or their text) or ``dataset`` (``cifar10``/``cifar100`` use the
    built-in maps; other datasets must pass ``class_map``).
    """
    if kind not in MATRIX_KINDS:
        raise ValueError(f"kind {kind!r} has no fixed transition matrix; allowed: {', '.join(MATRIX_KINDS)}")
    k = check_num_classes(num_classes)
    r = check_rate(kind, rate, k)
    allowed = {"asymmetric": {"class_map", "dataset"}, "pairflip": {"pairs"}}.get(kind, set())
    extra = set(kw) - allowed
    if extra:
        raise ValueError(f"{kind} noise takes options {sorted(allowed) or 'none'}, got {sorted(extra)}")

    t = np.eye(k)
    if kind == "symmetric":
        t = np.full((k, k), r / (k - 1))
        np.fill_diagonal(t, 1.0 - r)
    elif kind == "pairflip":
        t *= 1.0 - r
        for src, dst in _pair_map(k, kw.get("pairs", "reference")).items():
            t[src, dst] += r
    else:
        for src, dst in _class_map(k, kw.get("class_map"), kw.get("dataset")).items():
            t[src, src] = 1.0 - r
            t[src, dst] = r
    return t


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


def _class_map(k: int, class_map: dict | None, dataset: str | None) -> dict[int, int]:
    if class_map is None:
        if dataset not in BUILTIN_MAPS:
            raise ValueError(
                f"asymmetric noise on dataset {dataset!r} needs class_map ({{src: dst}}); "
                f"built-in maps exist for: {', '.join(BUILTIN_MAPS)}"
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


# --------------------------------------------------------------------------- sampling


def _inverse_cdf(probs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Row i's category for uniform u[i] in [0, 1); zero-probability categories never come up."""
    cdf = np.cumsum(probs, axis=1)
    cdf /= cdf[:, -1:]  # last entry exactly 1
    return (u[:, None] >= cdf).sum(axis=1).astype(np.int64)


def corrupt_labels(labels: Any, matrix: Any, seed: int, sampler: str = "inverse_cdf") -> np.ndarray:
    """Noisy labels drawn from the rows of ``matrix`` for each clean label (int64).

    ``inverse_cdf``: one uniform per sample from ``Generator(PCG64(seed))``, inverted
    through the cumulative row of the sample's class. ``reference``: the reference code's
    sampler, ``RandomState(seed)`` and one ``multinomial(1, row)`` per sample in order.
    Either way a deterministic function of the inputs.
    """
    t = _check_matrix(matrix)
    y = _check_labels(labels, t.shape[0])
    if sampler == "reference":
        rng = np.random.RandomState(seed)
        return np.fromiter((int(np.argmax(rng.multinomial(1, t[c], 1)[0])) for c in y), dtype=np.int64, count=y.size)
    if sampler != "inverse_cdf":
        raise ValueError(f"sampler {sampler!r} is unknown; allowed: {', '.join(SAMPLERS)}")
    u = np.random.Generator(np.random.PCG64(seed)).random(y.size)
    return _inverse_cdf(t[y], u)


def empirical_transition(clean: Any, noisy: Any, num_classes: int) -> np.ndarray:
    """Row-normalised confusion clean -> noisy; the row of a class absent from ``clean`` is the identity row."""
    k = check_num_classes(num_classes)
    c, n = _check_labels(clean, k, "clean"), _check_labels(noisy, k, "noisy")
    if c.shape != n.shape:
        raise ValueError(f"clean and noisy labels differ in length: {c.size} vs {n.size}")
    counts = np.bincount(c * k + n, minlength=k * k).reshape(k, k).astype(np.float64)
    totals = counts.sum(axis=1)
    absent = totals == 0
    counts[absent] = np.eye(k)[absent]
    totals[absent] = 1.0
    return counts / totals[:, None]


def _truncated_normal(rng: np.random.Generator, mean: float, std: float, size: int) -> np.ndarray:
    """Normal(mean, std) draws conditioned on [0, 1], by vectorised rejection."""
    out = rng.normal(mean, std, size)
    bad = (out < 0.0) | (out > 1.0)
    while bad.any():
        out[bad] = rng.normal(mean, std, int(bad.sum()))
        bad = (out < 0.0) | (out > 1.0)
    return out


def _instance_flip_probabilities(
    x: np.ndarray, labels: np.ndarray, num_classes: int, rate: float, rng: np.random.Generator
) -> np.ndarray:
    """(N, K) noisy-label distribution of each sample (Xia et al. 2020, instance-dependent).

    Per sample a flip rate q ~ Normal(rate, 0.1) truncated to [0, 1]; per class c a
    projection W_c ~ Normal(0, 1) of shape (D, K). Sample i of class c keeps its label
    with 1 - q_i and flips with q_i, spread over the other classes by the softmax of
    its standardised, flattened features times W_c with its own class excluded.
    Draw order: q (N), then W_0 ... W_{K-1}.
    """
    n, d = x.shape
    q = _truncated_normal(rng, rate, INSTANCE_STD, n)
    mean = x.mean(axis=0, dtype=np.float64)
    sq = np.zeros(d)
    for start in range(0, n, 4096):  # chunked: no full float64 copy of the data
        sq += ((x[start:start + 4096] - mean) ** 2).sum(axis=0)
    std = np.sqrt(sq / n)
    std[std == 0] = 1.0
    probs = np.zeros((n, num_classes))
    for c in range(num_classes):
        w = rng.standard_normal((d, num_classes))  # drawn for every class: same draws whatever the labels
        idx = np.flatnonzero(labels == c)
        if idx.size == 0:
            continue
        logits = ((x[idx] - mean) / std) @ w
        logits[:, c] = -np.inf
        logits -= logits.max(axis=1, keepdims=True)
        soft = np.exp(logits)
        soft /= soft.sum(axis=1, keepdims=True)
        probs[idx] = q[idx, None] * soft
        probs[idx, c] = 1.0 - q[idx]
    return probs


def instance_noise(
    features: Any, labels: Any, num_classes: int, rate: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Instance-dependent noisy labels and their empirical transition matrix.

    See ``_instance_flip_probabilities`` for the construction; the expected realised rate
    is the mean of the truncated normal (``rate`` itself unless rate is within ~0.2 of 0
    or 1). Rate 0 returns the clean labels. Deterministic for a seed.
    """
    k = check_num_classes(num_classes)
    y = _check_labels(labels, k)
    r = check_rate("instance", rate, k)
    x = np.asarray(features)
    if x.shape[0] != y.size:
        raise ValueError(f"features have {x.shape[0]} rows but labels have {y.size}")
    if r == 0.0:
        return y.copy(), np.eye(k)
    rng = np.random.Generator(np.random.PCG64(seed))
    probs = _instance_flip_probabilities(x.reshape(y.size, -1), y, k, r, rng)
    noisy = _inverse_cdf(probs, rng.random(y.size))
    return noisy, empirical_transition(y, noisy, k)


# --------------------------------------------------------------------------- human labels


def load_human_labels(path: str | os.PathLike, label_set: str, num_classes: int,
                      train_labels: Any = None) -> np.ndarray:
    """One CIFAR-N label set (int64) from its published ``.pt`` file.

    ``path`` is the folder holding ``CIFAR-10_human.pt`` / ``CIFAR-100_human.pt`` (or the
    file itself). With ``train_labels`` the file's ``clean_label`` must equal them
    (same images in the same order), else ValueError. The file is read with
    ``weights_only=True``, allowing only the NumPy array types it holds.
    """
    file, key, k, obj = cifarn.read_label_file(path, label_set, num_classes)
    noisy = _check_labels(np.asarray(obj[key]), k, f"{file}:{key}")
    clean = _check_labels(np.asarray(obj["clean_label"]), k, f"{file}:clean_label")
    if noisy.shape != clean.shape:
        raise ValueError(f"{file}: {key} and clean_label differ in length")
    if train_labels is not None and not np.array_equal(clean, np.asarray(train_labels)):
        raise ValueError(f"{file}: clean_label does not equal the dataset's training labels (wrong file or image order)")
    return noisy


# --------------------------------------------------------------------------- statistics and CLI entry


def noise_stats(clean: Any, noisy: Any, num_classes: int, kind: str, rate: float | str, seed: int) -> dict:
    """JSON-ready realised statistics of a corruption (the ``.json`` beside the labels).

    ``per_class_rate`` is 1 - the diagonal of ``empirical_transition``: 0 for absent classes.
    """
    t = empirical_transition(clean, noisy, num_classes)
    c, n = np.asarray(clean), np.asarray(noisy)
    return {
        "kind": kind,
        "rate": fmt_rate(rate),
        "seed": int(seed),
        "num_samples": int(c.size),
        "num_classes": int(num_classes),
        "realised_rate": float(np.mean(c != n)) if c.size else 0.0,
        "per_class_rate": [float(1.0 - v) for v in np.diag(t)],
        "empirical_transition": t.tolist(),
    }


def option_defaults(kind: str) -> dict:
    """The options a noise kind takes, with their defaults (from the params schema's noise_options)."""
    root = schema.load_schema()
    node = root["properties"]["noise_options"]["properties"].get(kind)
    if node is None:
        return {}
    return {key: schema.resolve(sub, root).get("default") for key, sub in node.get("properties", {}).items()}


def make_noisy_labels(data_path: str | os.PathLike, kind: str, rate: float | str, seed: int,
                      out: str | os.PathLike, options: dict | None = None, noise_seed: int | None = None) -> dict:
    """``smoothbench noise``: corrupt a dataset file's training labels; write ``out`` (.npz) and its .json stats.

    ``seed`` is the study's seed (recorded: it names the group). The draw's seed comes
    from ``noise_seed`` (default: ``seed``): ``derive_seed("noise", dataset, kind,
    fmt_rate(rate), noise_seed)`` for the ``inverse_cdf`` sampler and instance noise,
    ``noise_seed`` itself for the ``reference`` sampler (the reference code's
    ``random_state``). Options (defaults from the params schema): ``pairs`` (pairflip),
    ``sampler`` (matrix kinds), ``map`` ({"src": dst}, asymmetric on datasets without a
    built-in map), ``human_dir`` (folder of the CIFAR-N files, default ``cache/cifarn``),
    ``files`` ({label set: {dataset, path}}, annotations). For ``human`` and ``annotations``
    the rate is the label set and the seeds are only recorded. Returns the stats.
    """
    from ..data import datasets as data

    if kind not in NOISE_KINDS:
        raise ValueError(f"noise kind {kind!r} is unknown; allowed: {', '.join(NOISE_KINDS)}")
    defaults = option_defaults(kind)
    extra = set(options or {}) - set(defaults)
    if extra:
        allowed = ", ".join(sorted(defaults)) or "none"
        raise ValueError(f"option(s) {', '.join(sorted(extra))} not valid for {kind} noise; allowed: {allowed}")
    options = {**defaults, **(options or {})}
    noise_seed = seed if noise_seed is None else int(noise_seed)
    out = Path(out)
    if out.suffix != ".npz":
        raise ValueError(f"--out {out} must end with .npz")

    ds = data.load_dataset(data_path)
    k, y = int(ds.num_classes), np.asarray(ds.y_train, dtype=np.int64)
    if kind == "human":
        rate_text = str(rate)
        noisy = load_human_labels(options.get("human_dir") or "cache/cifarn", rate_text, k, train_labels=y)
        t = empirical_transition(y, noisy, k)
    elif kind == "annotations":
        rate_text, entry = str(rate), (options.get("files") or {}).get(str(rate))
        if not entry or entry.get("dataset") != ds.name:
            raise ValueError(f"annotations {rate_text}: no label file for dataset {ds.name} in option files "
                             f"(given: {', '.join(sorted(options.get('files') or {})) or 'none'})")
        noisy = userdata.load_annotations(entry["path"], y.size, k, ds.name)
        t = empirical_transition(y, noisy, k)
    else:
        r = check_rate(kind, rate, k)
        rate_text = fmt_rate(r)
        draw_seed = derive_seed("noise", ds.name, kind, rate_text, noise_seed)
        if kind == "instance":
            noisy, t = instance_noise(ds.x_train, y, k, r, draw_seed)
        else:
            kw: dict = {}
            if kind == "asymmetric":
                if ds.name in BUILTIN_MAPS and options.get("map") is not None:
                    raise ValueError(f"dataset {ds.name} has a built-in asymmetric map; drop the map option")
                kw = {"dataset": ds.name, "class_map": options.get("map")}
            if kind == "pairflip":
                kw = {"pairs": options["pairs"]}
            t = transition_matrix(kind, k, r, **kw)
            sampler = options["sampler"]
            noisy = corrupt_labels(y, t, noise_seed if sampler == "reference" else draw_seed, sampler)

    stats = noise_stats(y, noisy, k, kind, rate_text, seed)
    stats["noise_seed"] = noise_seed
    stats["options"] = {key: value for key, value in sorted(options.items()) if value is not None}
    io.write_json(out.with_suffix(".json"), stats)
    arrays = {"noisy_labels": noisy.astype(np.int64), "clean_labels": y, "transition": t.astype(np.float64),
              "kind": np.array(kind), "rate": np.array(rate_text), "seed": np.array(seed, dtype=np.int64),
              "noise_seed": np.array(noise_seed, dtype=np.int64), "dataset_hash": np.array(str(ds.content_hash))}
    io.write_npz(out, arrays)
    print(f"noise: {ds.name} {kind} {rate_text} seed {seed}: realised rate {stats['realised_rate']:.4f} "
          f"on {stats['num_samples']} labels -> {out}", file=sys.stderr)
    return stats
