"""A group's checkpoint folder: one trainer at a time, two generations per checkpoint,
and unreadable files moved aside instead of failing every rerun.

- ``lock()`` holds an exclusive ``flock`` on ``<folder>/.lock`` while a trainer writes
  the folder. A second trainer of the same group (a retried cluster job while the first
  one is still dying, two Snakemake runs) waits for it, saying so in one line: never two
  writers.
- ``save(key, state)`` writes ``<key>.pt`` atomically and keeps the previous one as
  ``<key>.prev.pt``.
- ``load(key, fingerprint)`` returns the newest readable checkpoint written for the same
  inputs and settings. A file that cannot be read (truncated, corrupted) is renamed to
  ``<name>.corrupt`` (kept for inspection, never deleted) with a one-line warning, and
  the previous generation is tried; one written for other inputs is ignored.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from pathlib import Path
from typing import Iterator

import torch

from ..core.files import atomic_path


class CheckpointDir:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def file(self, key: str, previous: bool = False) -> Path:
        return self.path / f"{key}{'.prev' if previous else ''}.pt"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive use of the folder by this process (blocks while another trainer holds it)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "another process"
                print(f"smoothbench train: {self.path} is in use by {holder}; waiting for it to finish",
                      file=sys.stderr, flush=True)
                fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()}\n")
            f.flush()
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def save(self, key: str, state: dict) -> None:
        """Write ``<key>.pt`` atomically; the one it replaces becomes ``<key>.prev.pt``."""
        path = self.file(key)
        with atomic_path(path) as tmp:
            # through a Python file object, so that a full disk surfaces as the OSError
            # (ENOSPC) that atomic_path names by the checkpoint's path; torch then raises an
            # opaque "enforce fail ... unexpected pos" RuntimeError on top of it
            try:
                with open(tmp, "wb") as f:
                    torch.save(state, f)
            except RuntimeError as exc:
                if isinstance(exc.__context__, OSError):
                    raise exc.__context__ from None
                raise
            if path.exists():
                os.replace(path, self.file(key, previous=True))

    def load(self, key: str, fingerprint: str) -> dict | None:
        """The newest readable checkpoint of ``key`` written for ``fingerprint``, else None."""
        for previous in (False, True):
            path = self.file(key, previous)
            if not path.exists():
                continue
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                if not isinstance(state, dict):
                    raise ValueError("not a checkpoint")
            except Exception as exc:  # truncated or corrupted: keep it aside, try the older one
                aside = path.with_name(path.name + ".corrupt")
                os.replace(path, aside)
                print(f"smoothbench train: {path} is unreadable ({type(exc).__name__}); moved to {aside.name}, "
                      "resuming from the previous checkpoint or from the start", file=sys.stderr)
                continue
            if state.get("fingerprint") != fingerprint:
                print(f"smoothbench train: {path} belongs to other inputs or settings; starting afresh",
                      file=sys.stderr)
                return None
            return state
        return None

    def remove(self) -> None:
        """Delete the checkpoints (the group is complete); the lock file and corrupt files stay
        until the folder is otherwise empty."""
        for path in self.path.glob("*.pt"):
            path.unlink()
        leftover = [p for p in self.path.iterdir() if p.name != ".lock"] if self.path.is_dir() else []
        if self.path.is_dir() and not leftover:
            (self.path / ".lock").unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.path.rmdir()
