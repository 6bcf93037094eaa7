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
    """Deterministic kernels where they exist (CUDA: cuBLAS workspace, no cuDNN autotuning).

    On the CPU, the same bits for a model whatever else shares its stack, and on every x86-64
    CPU: oneDNN (mkldnn) is switched off, so convolutions run as ATen's im2col and MKL's GEMM.
    oneDNN picks its convolution kernels by the shape and the CPU: the first convolution of a
    stack of S seeds is one convolution of S groups (1 for a seed alone), and its weight gradient
    sums over the batch in another order for each; its kernels also differ by instruction set.
    MKL gives the same bits on every CPU under ``MKL_CBWR=COMPATIBLE`` (what the ``smoothbench``
    command sets; ``cli.commands.REPRODUCIBLE_CPU``) for a fixed number of threads; with one
    thread (the workflow's) a model's products do not depend on the stack's shape either.
    """
    if device.type == "cpu":
        torch.backends.mkldnn.enabled = False
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

    Each of the S batches draws from its own key (``keys`` (S,), ``core.draws`` at
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
def predict_proba(model: torch.nn.Module, x: torch.Tensor, index: torch.Tensor, batch: int,
                  autocast: Callable) -> torch.Tensor:
    """The softmax of a stacked model of G input groups on the samples ``x[index[g]]`` of each
    group (``index`` (G, N)), in eval mode: (M, N, K) float32, in chunks of ``batch`` samples."""
    model.eval()
    out = []
    for i in range(0, index.shape[1], batch):
        with autocast():
            z = model(x[index[:, i:i + batch]])
        out.append(torch.softmax(z.float(), dim=-1))
    model.train()
    return torch.cat(out, dim=1)


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, labels: list[torch.Tensor], sigmoid: torch.Tensor,
             ece_bins: int, batch: int, autocast: Callable,
             index: torch.Tensor | None = None, per_sample: bool = False) -> list[dict[str, torch.Tensor]]:
    """Per-model accuracy, NLL and ECE of a stacked model, in eval mode, against each label
    set of ``labels``; tensors of shape (M,). With ``per_sample`` each label set's dict also
    holds ``correct``: (M, N) bool, whether each model's prediction of each sample is right.

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
        empty = {"correct": torch.zeros(m, 0, dtype=torch.bool, device=x.device)} if per_sample else {}
        return [{"acc": nan, "nll": nan, "ece": nan, **empty} for _ in labels]
    g = (index if index is not None else x).shape[0] if grouped else 1
    per_model = [(y if y.dim() == 2 else y.unsqueeze(0)).unsqueeze(1).expand(g, m // g, n).reshape(m, n)
                 for y in labels]
    one_vs_all = model.num_classes > 2 and bool(sigmoid.any())
    hits = [torch.zeros(m, device=x.device) for _ in labels]
    right: list[list[torch.Tensor]] = [[] for _ in labels]
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
            if per_sample:
                right[j].append(pred == yb)
            hits[j] += correct.sum(-1)
            nll[j] -= logp.gather(-1, yb.unsqueeze(-1)).squeeze(-1).double().sum(-1)
            gaps[j] += torch.einsum("mnb,mn->mb", onehot, (conf - correct).double())
    model.train()
    out = [{"acc": hits[j] / n, "nll": (nll[j] / n).float(), "ece": (gaps[j].abs().sum(-1) / n).float()}
           for j in range(len(labels))]
    if per_sample:
        for j, d in enumerate(out):
            d["correct"] = torch.cat(right[j], dim=1)
    return out
