"""How well the noise was estimated: per setting, the error of T estimated by anchor points.

The methods marked "estimated T" or "estimated rate" (forward and backward correction,
Co-teaching and JoCoR with an estimated forget rate) estimate T once per seed from the CE
warm-up model's softmax (``methods.correction.anchor_transition``); every cell of a seed that
uses the same anchor quantile shares that estimate. A row is one (dataset, noise kind, noise
rate, variant, quantile): over seeds, the mean absolute error of the estimate against the
seed's true T (for instance-dependent, human and annotation noise the realised class-
conditional T of its labels) and the noise rate it implies beside the realised one.
"""

from __future__ import annotations

import statistics

from .. import methods as registry
from .collect import csv_text
from .seedstats import Setting

COLUMNS = ["dataset", "noise_kind", "noise_rate", "variant", "quantile", "n_seeds", "transition_mae_mean",
           "transition_mae_std", "noise_rate_hat_mean", "realised_noise_rate_mean"]
ESTIMATED = frozenset(m for m in registry.names() if registry.get(m).estimated)


def rows(settings: dict[tuple[str, str, str], list[Setting]]) -> list[dict]:
    out = []
    for (ds, kind, variant), sets in settings.items():
        for s in sets:
            per_quantile: dict[float, dict[int, dict]] = {}
            for (method, values), cells in s.cells.items():
                m = registry.get(method)
                if not m.estimated:
                    continue
                q = float(values[[p.name for p in m.params].index("quantile")])
                for c in cells:
                    if c["transition_mae"] is not None:
                        per_quantile.setdefault(q, {})[c["seed"]] = c
            for q, by_seed in sorted(per_quantile.items()):
                cells = [by_seed[k] for k in sorted(by_seed)]
                mae = [c["transition_mae"] for c in cells]
                out.append({
                    "dataset": ds, "noise_kind": kind, "noise_rate": s.noise_rate, "variant": variant, "quantile": q,
                    "n_seeds": len(cells), "transition_mae_mean": round(statistics.fmean(mae), 6),
                    "transition_mae_std": round(statistics.stdev(mae), 6) if len(mae) > 1 else None,
                    "noise_rate_hat_mean": round(statistics.fmean(c["noise_rate_hat"] for c in cells), 6),
                    "realised_noise_rate_mean": round(statistics.fmean(c["realised_noise_rate"] for c in cells), 6),
                })
    return out


def csv(settings: dict[tuple[str, str, str], list[Setting]]) -> str:
    return csv_text(COLUMNS, ([r[c] for c in COLUMNS] for r in rows(settings)))


def md(settings: dict[tuple[str, str, str], list[Setting]]) -> list[str]:
    """The Markdown section (none when no cell estimated the noise)."""
    table = rows(settings)
    if not table:
        return []
    lines = ["## Estimated T", "",
             "T estimated by anchor points from the CE warm-up model (the \"estimated T\" and \"estimated rate\" "
             "methods): the mean absolute error of its K x K entries against the true T (instance, human and "
             "annotation noise: the labels' realised T), mean ± std over seeds, and the noise rate it implies beside "
             "the realised one.", "",
             "| dataset | noise | variant | quantile | n | MAE of T̂ | estimated rate | realised rate |",
             "|---|---|---|---|---|---|---|---|"]
    for r in table:
        std = "" if r["transition_mae_std"] is None else f" ± {r['transition_mae_std']:.4f}"
        lines.append(f"| {r['dataset']} | {r['noise_kind']} {r['noise_rate']} | {r['variant']} | {r['quantile']:g} | "
                     f"{r['n_seeds']} | {r['transition_mae_mean']:.4f}{std} | {r['noise_rate_hat_mean']:.3f} | "
                     f"{r['realised_noise_rate_mean']:.3f} |")
    return lines + [""]
