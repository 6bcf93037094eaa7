"""One GPU per training job: a claim on a physical GPU that lasts the job's life.

A training job that runs on CUDA claims one physical GPU for its whole life: an exclusive,
non-blocking flock on a lock file named after the GPU's UUID. The UUID (not the index)
names the GPU, so jobs that each see their own GPU as cuda:0 (CUDA_VISIBLE_DEVICES, as
SLURM sets it) do not collide, and jobs that see all GPUs share one set of locks. The
kernel drops a flock when its holder dies (SIGKILL and OOM kills included), so a crashed
job never leaves a GPU claimed. Lock files stay in the folder: removing one would race
with a job that is claiming it.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:
    import torch

GPU_LOCKS_ENV = "SMOOTHBENCH_GPU_LOCKS"


def gpu_lock_dir() -> Path:
    """``$SMOOTHBENCH_GPU_LOCKS``, else ``${XDG_RUNTIME_DIR:-/tmp}/smoothbench-gpus``."""
    if os.environ.get(GPU_LOCKS_ENV):
        return Path(os.environ[GPU_LOCKS_ENV])
    return Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp") / "smoothbench-gpus"


@dataclass
class GpuClaim:
    """A held claim on device ``index`` of the list it was chosen from; released on
    ``release()``, on leaving a ``with`` block, or when the process ends."""

    index: int
    uuid: str
    path: Path
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)           # closing the only descriptor drops the flock
            self.fd = -1

    def __enter__(self) -> "GpuClaim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _lock_path(lock_dir: Path, uuid: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in uuid)
    return lock_dir / f"{safe}.lock"


def _try_lock(path: Path, block: bool) -> int | None:
    """An fd holding an exclusive flock on ``path`` (created if need be), or None if another
    process holds it (``block``: wait for it instead). The fd is not inherited by children."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        writable = True
    except PermissionError:             # another user's lock file in a shared folder
        fd, writable = os.open(path, os.O_RDONLY | os.O_CLOEXEC), False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    if writable:                        # who holds it, for a curious reader; not used
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def claim_gpu(uuids: Sequence[str], lock_dir: str | Path | None = None, wait: bool = True,
              only: int | None = None, poll: float = 1.0, say: Callable[[str], None] | None = None) -> GpuClaim:
    """Claim the first free device of ``uuids`` (tried in order), or device ``only``.

    When every candidate is held: ``wait`` False raises ``RuntimeError``; else ``say`` is
    called once with a line saying so (default: print to stderr) and the claim waits,
    polling every ``poll`` seconds (``only``: blocking on that device's lock).
    """
    if not uuids:
        raise ValueError("no GPU to claim")
    if only is not None and not 0 <= only < len(uuids):
        raise ValueError(f"device cuda:{only} does not exist; {len(uuids)} visible")
    lock_dir = Path(lock_dir) if lock_dir is not None else gpu_lock_dir()
    if not lock_dir.is_dir():
        lock_dir.mkdir(parents=True, exist_ok=True)
        try:                            # shared by every user of the machine, as /tmp is
            os.chmod(lock_dir, 0o1777)
        except OSError:
            pass
    candidates = [only] if only is not None else list(range(len(uuids)))
    said = False
    while True:
        for i in candidates:
            fd = _try_lock(_lock_path(lock_dir, uuids[i]), block=said and only is not None)
            if fd is not None:
                return GpuClaim(i, uuids[i], _lock_path(lock_dir, uuids[i]), fd)
        what = f"cuda:{only} is" if only is not None else f"all {len(uuids)} visible GPUs are"
        if not wait:
            raise RuntimeError(f"{what} claimed by other jobs (locks in {lock_dir})")
        if not said:
            (say or (lambda s: print(s, file=sys.stderr, flush=True)))(
                f"waiting: {what} claimed by other jobs (locks in {lock_dir}); "
                f"training starts when one is released")
            said = True
            if only is not None:
                continue                # now block on that one lock
        time.sleep(poll)


def gpu_uuid(index: int) -> str:
    """The UUID of visible CUDA device ``index`` as nvidia-smi writes it (``GPU-…``)."""
    import torch

    props = torch.cuda.get_device_properties(index)
    uuid = str(getattr(props, "uuid", "") or "")
    if not uuid:                        # no UUID from this build: fall back to the PCI address
        uuid = f"pci-{getattr(props, 'pci_domain_id', 0)}-{getattr(props, 'pci_bus_id', index)}-" \
               f"{getattr(props, 'pci_device_id', 0)}"
    return uuid if uuid.startswith(("GPU-", "MIG-", "pci-")) else f"GPU-{uuid}"


def claim_cuda_device(device: torch.device, lock_dir: str | Path | None = None,
                      say: Callable[[str], None] | None = None) -> tuple[torch.device, GpuClaim]:
    """Claim a physical GPU for this process: ``cuda`` the first free visible one, ``cuda:N``
    that one (both wait while held); make it the current CUDA device and say which, in one
    line (``say``, default stderr). Returns the claimed ``cuda:N`` and the claim."""
    import torch

    say = say or (lambda s: print(s, file=sys.stderr, flush=True))
    uuids = [gpu_uuid(i) for i in range(torch.cuda.device_count())]
    claim = claim_gpu(uuids, lock_dir, only=device.index, say=say)
    torch.cuda.set_device(claim.index)
    name = torch.cuda.get_device_name(claim.index)
    say(f"device: cuda:{claim.index} ({name}, {claim.uuid}), claimed {claim.path}")
    return torch.device("cuda", claim.index), claim
