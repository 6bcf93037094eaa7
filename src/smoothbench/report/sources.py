"""Where the uncertainty comes from: ``smoothbench sources`` splits the standard error of the
mean over seeds into its sources, per setting, for CE's honest test accuracy and for NLS at its
chosen rate minus CE (the quantity of claim (c)).

- the test sample: the test set is one draw from the population, the same for every seed (the
  bootstrap's test-sample part, ``inference.variance_parts``);
- the seeds: everything a seed draws, its noisy labels, initialisation and batch order (the
  bootstrap's seeds' part);
- with a second study that is the first with ``noise_seed: N`` (every seed trains on the same
  noisy labels): its seeds' part is initialisation and batch order alone, and the noise draw's
  is what the first study's seeds' part has beyond it.

Each is a standard error of the mean over the study's seeds, in points.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from . import inference
from .results import Results, load

QUANTITIES = {
    "CE accuracy": lambda s: (lambda view: view.best(s, "ce")),
    "NLS − CE": lambda s: (lambda view: view.best(s, "nls") - view.best(s, "ce")),
}


def _load(folder: str | os.PathLike, replicates: int) -> Results:
    folder = Path(folder)
    return load(folder / "results.csv", folder / "curves.csv", params={"bootstrap": replicates})


def _parts(results: Results, key: tuple, rate: str, name: str) -> tuple[float, float] | None:
    a = results.analysis
    sets = [s for s in results.settings.get(key, []) if s.noise_rate == rate]
    if not sets or not all(m in sets[0].methods() for m in (["ce", "nls"] if "NLS" in name else ["ce"])):
        return None
    sample = a.sample("selected", QUANTITIES[name](sets[0]))
    n = int((~(sample.observed != sample.observed)).sum())
    if n < 2:
        return None
    v = [inference.replicate_variance(x) if x is not None else None for x in (sample.both, sample.seeds, sample.test)]
    return inference.variance_parts(n, v[0], v[1], v[2], a.panel.test_samples.get(key[0]))


def sources(reports: str | os.PathLike, fixed_noise: str | os.PathLike | None = None,
            replicates: int = 2000) -> str:
    """The table of sources of a study's reports folder (and of its twin with one noise draw)."""
    first = _load(reports, replicates)
    return table(first, _load(fixed_noise, replicates) if fixed_noise is not None else None)


def table(first: Results, second: Results | None = None) -> str:
    """The Markdown table of a study's sources (``second``: its twin with one noise draw). A
    setting is named ``dataset / noise kind rate``, with its protocol variant in brackets where
    the study has several (each variant is its own setting: its own cells, its own choices)."""
    head = ["setting", "quantity", "test sample", "seeds (all they draw)"]
    if second is not None:
        head += ["initialisation and batch order", "noise draw"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    several = len({key[2] for key in first.settings}) > 1
    for key, sets in first.settings.items():
        for s in sets:
            for name in QUANTITIES:
                parts = _parts(first, key, s.noise_rate, name)
                if parts is None:
                    continue
                v_s, v_t = parts
                where = f"{' / '.join(key[:2])} {s.noise_rate}" + (f" ({key[2]})" if several else "")
                cells = [where, name, f"{math.sqrt(v_t):.2f}", f"{math.sqrt(v_s):.2f}"]
                if second is not None:
                    other = _parts(second, key, s.noise_rate, name)
                    cells += ["—", "—"] if other is None else [f"{math.sqrt(other[0]):.2f}",
                                                               f"{math.sqrt(max(v_s - other[0], 0.0)):.2f}"]
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
