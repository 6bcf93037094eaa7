"""Where a setting's training stood when it was interrupted: the engine's record for the one-line stop.

An interrupt (Ctrl-C's ``KeyboardInterrupt``, or SIGTERM raised as its subclass by
``cli.stops``) that leaves a phase run carries a ``Position``: the setting, the run's
checkpoint key, the epoch being trained and the phase's last epoch, both counted over the
cell's whole training (a warm-up's epochs first). ``cli.stops`` reads it with ``of`` and
says where training stopped; an interrupt outside a phase run (reading the inputs, writing
the results) carries none. Plain data, no torch: the command line reads it without
importing the engine's modules.
"""

from __future__ import annotations

from dataclasses import dataclass

_ATTRIBUTE = "smoothbench_position"


@dataclass(frozen=True)
class Position:
    setting: str      # DATASET-KIND-RATE
    run: str          # the phase run's checkpoint key: warmup-<hash>, a variant's name, with -sN/-cN per pass
    epoch: int        # the epoch being trained (the last one, once they are all trained)
    last_epoch: int   # the phase's last epoch

    def mark(self, interrupt: KeyboardInterrupt) -> None:
        """Record this position on an interrupt leaving the run, unless a run inside it did."""
        if of(interrupt) is None:
            setattr(interrupt, _ATTRIBUTE, self)


def of(interrupt: BaseException) -> Position | None:
    """The position an interrupt was raised at, if it left a phase run."""
    return getattr(interrupt, _ATTRIBUTE, None)
