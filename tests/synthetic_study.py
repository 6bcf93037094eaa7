"""Synthetic studies whose truth is known, for testing the statistical procedure itself.

A study of one dataset (K = 10, ``test`` test samples, a held-out split of ``held_out``
samples per seed), one noise kind at two noise rates, ``seeds`` seeds, and the methods of
the paper's claims (CE; LS, NLS, flip, each at two rates; the BCE family). Each cell's
probability of getting test sample i right is

    P = sigmoid(base[rate] + effect[rate, method, r] + u[rate, seed] + v[cell, seed] + d[i] + e[method, r, i])

with d the test samples' difficulty (the test set: drawn once per study, shared by every
seed and cell), e a method-by-sample interaction (drawn once per study: methods differ in
WHICH samples they get right; its mean over the population is 0, so on a finite test set it
makes a difference that is not there in the population: the test set's sampling error), u a
seed effect shared by the seed's cells, and v cell noise. A seed's cells draw their
correctness with the same uniforms (common random numbers, as a group's cells share
noisy labels, initialisation and batches). Every selection sees the same epoch; the held-out
accuracy is the noisy-label accuracy of the cell's expected clean accuracy over the
population, drawn binomially on the held-out split.

The true effects are in logits of ``effect``; the truth a claim is tested against is the
population's (the expectation over d and e, and over seeds), so with ``effect`` all 0 every
sign claim's null holds, the equivalence claims are equivalent, and no best rate moves.
"""

from __future__ import annotations

import numpy as np

from smoothbench import methods as registry
from smoothbench.core.vocabulary import RESULT_COLUMNS, fmt_rate

K = 10
RATES = ("0", "0.6")
CELLS = (("ce", 0.0), ("ls", 0.2), ("ls", 0.4), ("nls", -0.2), ("nls", -1.0), ("flip", 0.18), ("flip", 0.36),
         ("bce", 0.0), ("bls", 0.2), ("bnls", -0.2))
BASE = {"0": 2.0, "0.6": 1.0}       # logits: about 88% and 73% accuracy before the sample effects


def study(rng: np.random.Generator, effect: dict | None = None, seeds: int = 10, test: int = 400,
          held_out: int = 400, sd_sample: float = 1.0, sd_interaction: float = 0.3, sd_seed: float = 0.1,
          sd_cell: float = 0.05) -> tuple[list[dict], dict]:
    """(results rows, per-test-sample correctness in read_test_correct's layout) of one
    synthetic study; ``effect``: (rate, method, r) -> logit effect (default all 0: the global null)."""
    from scipy.stats import norm

    effect = effect or {}
    # the population's sample effects, at the normal's quantiles: E over them is the population accuracy
    grid = norm.ppf((np.arange(400) + 0.5) / 400) * np.hypot(sd_sample, sd_interaction)
    d = rng.normal(0, sd_sample, test)
    e = {(m, r): rng.normal(0, sd_interaction, test) for m, r in CELLS}
    rows, bits = [], []
    for rate in RATES:
        eta = float(rate)
        for seed in range(seeds):
            u = rng.normal(0, sd_seed)
            uniforms = rng.random(test)
            for m, r in CELLS:
                z = BASE[rate] + effect.get((rate, m, r), 0.0) + u + rng.normal(0, sd_cell)
                p = 1 / (1 + np.exp(-(z + d + e[(m, r)])))
                right = uniforms < p
                acc = float(right.mean())
                population = float(np.mean(1 / (1 + np.exp(-(z + grid)))))
                noisy = (1 - eta) * population + eta / (K - 1) * (1 - population)
                val = float(rng.binomial(held_out, noisy) / held_out)
                rows.append(_row(rate, seed, m, r, acc, val))
                bits.append(np.packbits(right, bitorder="little"))
    packed = np.stack(bits)[:, None, :].repeat(3, axis=1)
    correct = {"row": np.array([str(i) for i in range(len(rows))]), "selections": np.array(["best", "selected", "final"]),
               "test_samples": np.full(len(rows), test), "has": np.ones((len(rows), 3), dtype=bool), "bits": packed}
    return rows, correct


def _row(rate: str, seed: int, method: str, r: float, acc: float, val: float) -> dict:
    row = {k: None for k in RESULT_COLUMNS}
    row.update(dataset="syn", noise_kind="symmetric", noise_rate=fmt_rate(rate), seed=seed, variant="direct",
               method=method, rate=r, values=(r,), params=registry.get(method).params_text((r,)),
               cell_id=registry.cell(method, (r,)).id, status="ok", num_classes=K, test_acc_best=acc,
               test_acc_selected=acc, test_acc_final=acc, val_acc_selected=val, val_acc_final=val,
               selected_epoch=1, best_epoch=1)
    return row


def errors(verdicts: dict, null: dict[str, str]) -> list[str]:
    """The claims whose verdict is an error under the truth ``null`` (claim -> the verdict that
    is wrong there: "any" for a sign claim whose effect is 0)."""
    from smoothbench.report import claims

    out = []
    for v in verdicts:
        wrong = null.get(v.claim)
        if wrong == "any" and v.verdict in (claims.HOLDS, claims.FAILS):
            out.append(v.claim)
        elif wrong is not None and wrong != "any" and v.verdict == wrong:
            out.append(v.claim)
    return out
