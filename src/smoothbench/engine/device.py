"""The training device: resolving it, determinism settings, a setting's data as tensors
on it, on-device augmentation and batched evaluation.

Whole datasets live on the device (no per-sample Python): ``prepare_data`` normalises the
inputs, moves them and every seed's noisy labels to the device once, with each seed's
held-out split of its noisy labels; ``augment`` crops and flips the seeds' batches there;
``evaluate`` gives per-model accuracy, NLL and ECE of a stacked model without atomic
scatter-adds (so it is deterministic on CUDA too).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .protocol import AugmentConfig


# ----------------------------------------------------------------------------- device

def resolve_device(requested: str) -> torch.device:
    if requested in ("auto", None):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(requested)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {requested!r} was asked for but CUDA is not available; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {requested!r}: allowed auto, cpu, cuda, cuda:N")
    return dev


def set_determinism(device: torch.device) -> None:
    """Deterministic kernels where they exist (CUDA: cuBLAS workspace, no cuDNN autotuning)."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    torch.use_deterministic_algorithms(True, warn_only=True)


# ----------------------------------------------------------------------------- data on device

@dataclass
class DeviceData:
    """A setting's tensors on the training device, for its S seeds (inputs normalised).

    Every seed has its own noisy labels and its own held-out split of them: ``train_idx``
    (S, N_tr) and ``val_idx`` (S, N_val) index the training set ``x_train`` (N, ...).
    """

    x_train: torch.Tensor        # (N, ...) every training sample
    y_clean: torch.Tensor        # (N,)
    y_noisy: torch.Tensor        # (S, N)
    train_idx: torch.Tensor      # (S, N_tr)
    val_idx: torch.Tensor        # (S, N_val)
    x_test: torch.Tensor
    y_test: torch.Tensor
    transition: torch.Tensor     # (S, K, K) float64: each seed's noise, its true transition matrix
    num_classes: int
    is_image: bool
    black: torch.Tensor          # per channel (or feature): what a zero pixel/input becomes after normalisation

    @property
    def num_seeds(self) -> int:
        return int(self.y_noisy.shape[0])

    def seeds(self, rows: list[int]) -> "DeviceData":
        """The same data for a subset of its seeds (positions ``rows``)."""
        r = torch.as_tensor(rows, dtype=torch.long, device=self.y_noisy.device)
        return DeviceData(self.x_train, self.y_clean, self.y_noisy[r], self.train_idx[r], self.val_idx[r],
                          self.x_test, self.y_test, self.transition[r.cpu()], self.num_classes, self.is_image,
                          self.black)


def holdout_split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) sample indices, sorted: a fraction of the training set drawn from ``seed``."""
    perm = np.random.Generator(np.random.PCG64(seed)).permutation(n)
    n_val = int(round(val_fraction * n))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def prepare_data(ds, noisy: list[np.ndarray], transitions: list[np.ndarray], val_fraction: float,
                 holdout_seeds: list[int], device: torch.device, normalize: dict | None = None) -> DeviceData:
    """Move a dataset and the noisy labels of each seed to ``device``, with each seed's
    held-out split of its NOISY labels (``holdout_seeds``, one per seed).

    ``normalize`` None: mean and std of the training inputs (all of them: no label enters),
    per channel for images, per feature for vectors; else fixed ``{"mean": [...], "std":
    [...]}`` per channel (or feature), on inputs scaled to [0, 1] (the reference code's CIFAR
    constants).
    """
    from ..data.datasets import as_float

    n = len(ds.y_train)
    splits = [holdout_split(n, val_fraction, s) for s in holdout_seeds]
    x = as_float(ds.x_train)
    xt = as_float(ds.x_test)
    axes = (0, 2, 3) if x.ndim == 4 else (0,)
    if normalize is None:
        mean = x.mean(axis=axes, keepdims=True, dtype=np.float64)
        std = np.maximum(x.std(axis=axes, keepdims=True, dtype=np.float64), 1e-3)
    else:
        channels = x.shape[1]
        if len(normalize["mean"]) != channels:
            raise ValueError(f"protocol.normalize has {len(normalize['mean'])} means; {ds.name} inputs have "
                             f"{channels} {'channels' if x.ndim == 4 else 'features'}")
        shape = (1, channels, 1, 1) if x.ndim == 4 else (1, channels)
        mean = np.asarray(normalize["mean"], dtype=np.float64).reshape(shape)
        std = np.asarray(normalize["std"], dtype=np.float64).reshape(shape)
    norm = lambda a: torch.from_numpy(((a - mean) / std).astype(np.float32)).to(device)  # noqa: E731
    lab = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64)).to(device)  # noqa: E731
    black = torch.from_numpy(((0.0 - mean) / std).astype(np.float32).reshape(-1)).to(device)
    return DeviceData(
        x_train=norm(x), y_clean=lab(ds.y_train), y_noisy=lab(np.stack(noisy)),
        train_idx=lab(np.stack([t for t, _ in splits])), val_idx=lab(np.stack([v for _, v in splits])),
        x_test=norm(xt), y_test=lab(ds.y_test),
        transition=torch.from_numpy(np.stack(transitions).astype(np.float64)),
        num_classes=int(ds.num_classes), is_image=x.ndim == 4, black=black,
    )


def augment(x: torch.Tensor, cfg: AugmentConfig, keys: torch.Tensor, counter: int,
            black: torch.Tensor | None = None) -> torch.Tensor:
    """Batched random crop and horizontal flip of ``x`` (S, B, C, H, W), on its device.

    Each of the S batches draws from its own key (``keys`` (S,), ``smoothbench.draws`` at
    ``counter``): the same draws whatever else is in the stack, no generator state. The crop
    pads with zeros of the normalised input (``pad_fill: mean``, the mean colour) or with
    ``black`` per channel (``pad_fill: black``: zero pixels before normalisation).
    """
    from ..core import draws

    if x.dim() != 5 or (cfg.crop_padding == 0 and not cfg.hflip):
        return x
    s, b, c, h, w = x.shape
    x = x.reshape(s * b, c, h, w)
    if cfg.crop_padding:
        p = cfg.crop_padding
        if cfg.pad_fill == "black":
            if black is None:
                raise ValueError("augment.pad_fill black needs the normalised value of a black pixel")
            xp = black.to(x.dtype).view(1, c, 1, 1).expand(s * b, c, h + 2 * p, w + 2 * p).clone()
            xp[:, :, p:p + h, p:p + w] = x
        else:
            xp = torch.nn.functional.pad(x, (p, p, p, p))
        off_r = draws.integers(keys, "crop_row", counter, b, 0, 2 * p + 1).reshape(-1)
        off_c = draws.integers(keys, "crop_col", counter, b, 0, 2 * p + 1).reshape(-1)
        rows = (off_r[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (off_c[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        bidx = torch.arange(s * b, device=x.device)[:, None, None, None]
        cidx = torch.arange(c, device=x.device)[None, :, None, None]
        x = xp[bidx, cidx, rows, cols]
    if cfg.hflip:
        flip = (draws.uniform(keys, "hflip", counter, b) < 0.5).reshape(-1)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x.reshape(s, b, c, h, w)


# ----------------------------------------------------------------------------- evaluation

@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, labels: list[torch.Tensor], sigmoid: torch.Tensor,
             ece_bins: int, batch: int, autocast: Callable,
             index: torch.Tensor | None = None) -> list[dict[str, torch.Tensor]]:
    """Per-model accuracy, NLL and ECE of a stacked model, in eval mode, against each label
    set of ``labels``; tensors of shape (M,).

    ``x``: (N, ...) shared by every model, or (G, N, ...) one set per input group (each shared
    by M/G consecutive models), or with ``index`` (G, N) the samples ``x[index[g]]`` of each
    group; a label set is (N,) or (G, N) likewise. ``sigmoid`` (M,) bool:
    models trained on sigmoid outputs (the BCE family): for K > 2 their probability of class
    j is sigmoid(z_j) (one-vs-all), not the softmax; for K = 2 the two agree. Computed in
    chunks of ``batch`` samples from sums (no atomic scatter-adds: deterministic on CUDA).
    """
    m = model.num_models
    grouped = index is not None or x.dim() == len(model.input_shape) + 2
    n = (index if index is not None else x).shape[1] if grouped else x.shape[0]
    if n == 0:
        nan = torch.full((m,), float("nan"), device=x.device)
        return [{"acc": nan, "nll": nan, "ece": nan} for _ in labels]
    g = (index if index is not None else x).shape[0] if grouped else 1
    per_model = [(y if y.dim() == 2 else y.unsqueeze(0)).unsqueeze(1).expand(g, m // g, n).reshape(m, n)
                 for y in labels]
    one_vs_all = model.num_classes > 2 and bool(sigmoid.any())
    hits = [torch.zeros(m, device=x.device) for _ in labels]
    nll = [torch.zeros(m, dtype=torch.float64, device=x.device) for _ in labels]
    gaps = [torch.zeros(m, ece_bins, dtype=torch.float64, device=x.device) for _ in labels]
    sig = sigmoid.to(x.device).view(m, 1, 1)
    model.eval()
    for i in range(0, n, batch):
        with autocast():
            chunk = x[index[:, i:i + batch]] if index is not None else x[:, i:i + batch] if grouped else x[i:i + batch]
            out = model(chunk)
        z = out.float()                                                  # (M, b, K)
        logp = torch.log_softmax(z, -1)
        if one_vs_all:
            logp = torch.where(sig, torch.nn.functional.logsigmoid(z), logp)
        conf, pred = logp.max(dim=-1)
        conf = conf.exp()
        bins = (conf * ece_bins).ceil().long().clamp_(1, ece_bins) - 1
        onehot = torch.nn.functional.one_hot(bins, ece_bins).double()  # (M, b, bins)
        for j, y in enumerate(per_model):
            yb = y[:, i:i + batch]
            correct = (pred == yb).float()
            hits[j] += correct.sum(-1)
            nll[j] -= logp.gather(-1, yb.unsqueeze(-1)).squeeze(-1).double().sum(-1)
            gaps[j] += torch.einsum("mnb,mn->mb", onehot, (conf - correct).double())
    model.train()
    return [{"acc": hits[j] / n, "nll": (nll[j] / n).float(), "ece": (gaps[j].abs().sum(-1) / n).float()}
            for j in range(len(labels))]


# ----------------------------------------------------------------------------- one GPU per job
#
# A training job that runs on CUDA claims one physical GPU for its whole life: an exclusive,
# non-blocking flock on a lock file named after the GPU's UUID. The UUID (not the index)
# names the GPU, so jobs that each see their own GPU as cuda:0 (CUDA_VISIBLE_DEVICES, as
# SLURM sets it) do not collide, and jobs that see all GPUs share one set of locks. The
# kernel drops a flock when its holder dies (SIGKILL and OOM kills included), so a crashed
# job never leaves a GPU claimed. Lock files stay in the folder: removing one would race
# with a job that is claiming it.

import fcntl  # noqa: E402  (imports of this section, kept here so that it stands alone)
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Sequence  # noqa: E402

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
    say = say or (lambda s: print(s, file=sys.stderr, flush=True))
    uuids = [gpu_uuid(i) for i in range(torch.cuda.device_count())]
    claim = claim_gpu(uuids, lock_dir, only=device.index, say=say)
    torch.cuda.set_device(claim.index)
    name = torch.cuda.get_device_name(claim.index)
    say(f"device: cuda:{claim.index} ({name}, {claim.uuid}), claimed {claim.path}")
    return torch.device("cuda", claim.index), claim
