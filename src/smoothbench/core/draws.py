"""Every random draw of a training step: counter-based, keyed, on the device, sync-free.

A draw is a pure function of (key, counter, position): a 64-bit integer hash (the
splitmix64 finaliser) of the three, computed with int64 tensor arithmetic. So

- a model's (or a seed's) draws depend only on its own key, never on which other
  models share its stack or where it sits in it (a cell trained alone equals the same
  cell trained in a group);
- there is no generator state to save: the counter is the global step, which the
  checkpoint already holds, so a resumed run draws exactly what an uninterrupted run would;
- nothing leaves the device and nothing waits for it (no host-device synchronisation),
  and CPU and CUDA give the same bits (integer arithmetic is exact).

``uniform`` gives float32 in [0, 1) with 24 random bits; ``integers`` gives values in
[low, high); ``permutation`` a permutation per key (argsort of hashes, stable).
"""

from __future__ import annotations

from .lazy import torch

_MASK = (1 << 64) - 1


def _signed(x: int) -> int:
    """An unsigned 64-bit constant as the int64 torch stores it."""
    x &= _MASK
    return x - (1 << 64) if x >= 1 << 63 else x


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_M1 = _signed(0xBF58476D1CE4E5B9)
_M2 = _signed(0x94D049BB133111EB)
# stream constants: draws for different purposes never share hash inputs
STREAMS = {"flip": 1, "flip_class": 2, "peer": 3, "crop_row": 5, "crop_col": 6, "hflip": 7,
           "batch": 8}


def _shr(x: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic)."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def mix(x: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser, bijective on 64 bits (int64 tensors wrap on overflow)."""
    x = x ^ _shr(x, 30)
    x = x * _M1
    x = x ^ _shr(x, 27)
    x = x * _M2
    return x ^ _shr(x, 31)


def keys(values, device) -> torch.Tensor:
    """Per-model (or per-seed) keys as an int64 tensor; ``values`` are seeds in [0, 2**63)."""
    return torch.as_tensor([_signed(int(v)) for v in values], dtype=torch.int64, device=device)


def hashes(key: torch.Tensor, stream: str, counter: int, n: int) -> torch.Tensor:
    """int64 hashes of shape ``key.shape + (n,)``: one per (key, position) at this counter."""
    base = mix(key * _GOLDEN + _signed(STREAMS[stream] * 0x632BE59BD9B4E019 + int(counter) * _GOLDEN))
    pos = torch.arange(n, dtype=torch.int64, device=key.device) * _GOLDEN
    return mix(base.unsqueeze(-1) ^ pos)


def uniform(key: torch.Tensor, stream: str, counter: int, n: int) -> torch.Tensor:
    """float32 uniforms in [0, 1) of shape ``key.shape + (n,)`` (24 random bits each)."""
    return _shr(hashes(key, stream, counter, n), 40).to(torch.float32) * (1.0 / (1 << 24))


def integers(key: torch.Tensor, stream: str, counter: int, n: int, low: int, high) -> torch.Tensor:
    """int64 in [low, high) of shape ``key.shape + (n,)``; ``high`` an int or a tensor
    broadcastable to that shape. Bias below 2**-24 * (high - low)."""
    u = _shr(hashes(key, stream, counter, n), 40)
    span = high - low          # a Python int stays a scalar argument: nothing is copied to the device
    return low + (u * span) // (1 << 24)


def permutation(key: torch.Tensor, stream: str, counter: int, n: int) -> torch.Tensor:
    """A permutation of range(n) per key, shape ``key.shape + (n,)`` (argsort of hashes)."""
    return torch.sort(hashes(key, stream, counter, n), dim=-1, stable=True).indices
