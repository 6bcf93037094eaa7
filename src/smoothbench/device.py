"""The training device: resolving it, determinism settings, a group's data as tensors on
it, on-device augmentation and batched evaluation.

Whole datasets live on the device (no per-sample Python): ``prepare_data`` splits off
the held-out part of the noisy training labels, normalises the inputs and moves every
split to the device once; ``augment`` crops and flips a batch there; ``evaluate`` gives
per-model accuracy, NLL and ECE of a stacked model without atomic scatter-adds (so it is
deterministic on CUDA too).
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
    """Training/held-out/test tensors on the training device, inputs normalised."""

    x_train: torch.Tensor
    y_train_noisy: torch.Tensor
    y_train_clean: torch.Tensor
    x_val: torch.Tensor
    y_val_noisy: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    is_image: bool
    black: torch.Tensor  # per channel (or feature): what a zero pixel/input becomes after normalisation


def prepare_data(ds, noisy: np.ndarray, val_fraction: float, holdout_seed: int, device: torch.device,
                 normalize: dict | None = None) -> DeviceData:
    """Split off the held-out part of the NOISY training labels and move everything to ``device``.

    ``normalize`` None: mean and std of the training split (per channel for images, per
    feature for vectors); else fixed ``{"mean": [...], "std": [...]}`` per channel (or
    feature), on inputs scaled to [0, 1] (the reference code's CIFAR constants).
    """
    n = len(ds.y_train)
    perm = np.random.Generator(np.random.PCG64(holdout_seed)).permutation(n)
    n_val = int(round(val_fraction * n))
    val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    from .data import as_float

    x = as_float(ds.x_train)
    xt = as_float(ds.x_test)
    axes = (0, 2, 3) if x.ndim == 4 else (0,)
    if normalize is None:
        mean = x[train_idx].mean(axis=axes, keepdims=True, dtype=np.float64)
        std = np.maximum(x[train_idx].std(axis=axes, keepdims=True, dtype=np.float64), 1e-3)
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
        x_train=norm(x[train_idx]), y_train_noisy=lab(noisy[train_idx]), y_train_clean=lab(ds.y_train[train_idx]),
        x_val=norm(x[val_idx]), y_val_noisy=lab(noisy[val_idx]), x_test=norm(xt), y_test=lab(ds.y_test),
        num_classes=int(ds.num_classes), is_image=x.ndim == 4, black=black,
    )


def augment(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator, black: torch.Tensor | None = None) -> torch.Tensor:
    """Batched random crop and horizontal flip, on the batch's device.

    The crop pads with zeros of the normalised input (``pad_fill: mean``, the mean colour)
    or with ``black`` per channel (``pad_fill: black``: zero pixels before normalisation).
    """
    if x.dim() != 4 or (cfg.crop_padding == 0 and not cfg.hflip):
        return x
    b, c, h, w = x.shape
    if cfg.crop_padding:
        p = cfg.crop_padding
        if cfg.pad_fill == "black":
            if black is None:
                raise ValueError("augment.pad_fill black needs the normalised value of a black pixel")
            xp = black.to(x.dtype).view(1, c, 1, 1).expand(b, c, h + 2 * p, w + 2 * p).clone()
            xp[:, :, p:p + h, p:p + w] = x
        else:
            xp = torch.nn.functional.pad(x, (p, p, p, p))
        off = torch.randint(0, 2 * p + 1, (2, b), generator=gen, device=x.device)
        rows = (off[0][:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (off[1][:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        bidx = torch.arange(b, device=x.device)[:, None, None, None]
        cidx = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = xp[bidx, cidx, rows, cols]
    if cfg.hflip:
        flip = torch.rand(b, generator=gen, device=x.device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x


# ----------------------------------------------------------------------------- evaluation

@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, ece_bins: int, batch: int,
             autocast: Callable) -> dict[str, torch.Tensor]:
    """Per-model accuracy, NLL and ECE on (x, y) in eval mode; tensors of shape (M,)."""
    if len(x) == 0:
        nan = torch.full((model.num_models,), float("nan"), device=x.device)
        return {"acc": nan, "nll": nan, "ece": nan}
    model.eval()
    logps = []
    for i in range(0, len(x), batch):
        with autocast():
            out = model(x[i:i + batch])
        logps.append(torch.log_softmax(out.float(), dim=-1))
    model.train()
    logp = torch.cat(logps, dim=1)                                   # (M, N, K)
    m, n, _ = logp.shape
    conf, pred = logp.max(dim=-1)
    conf = conf.exp()
    correct = (pred == y).float()
    nll = -logp.gather(-1, y.expand(m, n).unsqueeze(-1)).squeeze(-1).mean(-1)
    bins = (conf * ece_bins).ceil().long().clamp_(1, ece_bins) - 1
    # per-bin sums through a one-hot matmul rather than scatter_add (atomic, so not deterministic on CUDA)
    onehot = torch.nn.functional.one_hot(bins, ece_bins).float()              # (M, N, bins)
    gap_sum = torch.einsum("mnb,mn->mb", onehot, conf - correct)
    ece = gap_sum.abs().sum(-1) / n
    return {"acc": correct.mean(-1), "nll": nll, "ece": ece}
