"""What stops a step, in one line (the end of its log), not a traceback: an OS error, an interrupt.

``os_error_line``: a read-only folder, a full disk, ...: what failed on which path, and what to do.
``die_with_parent``: train's request for SIGTERM when its parent dies.

An interrupt:
Ctrl-C sends SIGINT to Snakemake's whole process group, so every running job's ``smoothbench``
gets it too; a cluster's pre-emption, ``scancel`` or a dying job shell (``train`` asks Linux for
SIGTERM when its parent dies) sends SIGTERM. ``catch()`` makes both raise ``KeyboardInterrupt``
(SIGTERM as its subclass ``Terminated``) the first time, and ignores any signal after it while
the step unwinds (the temporary files of half-written outputs are removed on the way out);
``line()`` is what ``cli.main`` prints. For ``train`` it says where training stopped: the
``engine.position.Position`` the engine records on an interrupt that leaves a phase run (the
setting, the run's checkpoint key, the epoch being trained and the phase's last epoch).
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

from ..engine import position

_CAUGHT: list[int] = []  # the signal that interrupted this process, once one did


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt."""


def _raise(signum: int, frame: Any) -> None:
    if _CAUGHT:
        return  # a second signal while the first one unwinds: the first one's line is said once
    _CAUGHT.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def catch() -> None:
    """SIGINT and SIGTERM raise (once) in the main thread."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _raise)


def line(command: str, exc: KeyboardInterrupt, checkpoints: str | None = None) -> str:
    """The one line of an interrupted ``smoothbench command`` (``checkpoints``: train's folder)."""
    sig = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
    if command != "train":
        return f"interrupted ({sig}); no half-written output is left: a rerun makes it"
    saved = checkpoints is not None and any(Path(checkpoints).glob("[!.]*.pt"))
    resume = f"a rerun resumes from the last checkpoint ({checkpoints})" if saved else \
        f"no checkpoint yet ({checkpoints}): a rerun starts afresh"
    where = position.of(exc)
    if where is None:
        return f"interrupted ({sig}) outside an epoch (reading the inputs or writing the results); {resume}"
    return (f"interrupted ({sig}) at epoch {where.epoch} of {where.last_epoch} ({where.run}) of the setting "
            f"{where.setting}; {resume}")


def report(args: Any, exc: KeyboardInterrupt) -> int:
    """Print the one line of an interrupted ``smoothbench`` step (``args``: its parsed command
    line); return its exit code (130 for SIGINT, 143 for SIGTERM, as the shells say)."""
    checkpoints = (args.checkpoint_dir or f"{args.out[0]}/.checkpoint") if args.command == "train" else None
    print(f"smoothbench {args.command}: {line(args.command, exc, checkpoints)}", file=sys.stderr)
    return 143 if isinstance(exc, Terminated) else 130


def os_error_line(exc: OSError) -> str:
    """One line for an OS error: what failed on which path, and what to do."""
    import errno

    path = exc.filename or ""
    if exc.errno is None:                   # an OSError raised with a message of ours
        return str(exc)
    if exc.errno == errno.ENOENT:
        return f"{path}: no such file or folder" if path else str(exc)
    what = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
            errno.EROFS: "read-only file system", errno.ENOSPC: "no space left on the device",
            errno.EDQUOT: "disk quota exceeded"}.get(exc.errno, exc.strerror or str(exc))
    fix = {errno.EACCES: "make it writable or choose another folder",
           errno.EPERM: "make it writable or choose another folder",
           errno.EROFS: "choose a writable folder", errno.ENOSPC: "free some space and rerun",
           errno.EDQUOT: "free some space and rerun"}.get(exc.errno, "fix it and rerun")
    return f"{path}: {what}; {fix}" if path else f"{what}; {fix}"


def die_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent dies (a killed job shell, a
    cancelled cluster job): an orphaned trainer must not go on writing its checkpoints
    while a retried one starts. A no-op elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import os

    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request
        raise SystemExit(143)
