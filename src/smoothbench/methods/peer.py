"""Peer loss (Liu & Guo, ICML 2020): CE on the sample minus alpha times CE on a peer sample.

The peer sample pairs the prediction for one randomly drawn sample of the batch (x_n1) with
the label of another, independently drawn one (y_n2): ``-log p_y(x_n) + alpha * log
p_{y_n2}(x_n1)``. Both indices are drawn per model and step from the same batch stream
(``smoothbench.draws``: seeded, no generator state, sync-free). As in the authors' code, the
peer term's probability is clamped (>= 1e-8) so that it stays bounded.
"""

from __future__ import annotations

import math

from ..core.lazy import torch

from ..core import draws
from .registry import Batch, Method, Param, register

PEER_P_MIN = 1e-8


def peer(batch: Batch, params: torch.Tensor) -> torch.Tensor:
    alpha = params[..., 0].unsqueeze(-1).to(batch.logits.dtype)
    b, k = batch.logits.shape[-2:]
    n1 = draws.integers(batch.draw_key, "peer_x", batch.step, b, 0, b)           # (..., B)
    n2 = draws.integers(batch.draw_key, "peer_y", batch.step, b, 0, b)
    logp_x = batch.logp.gather(-2, n1.unsqueeze(-1).expand(*n1.shape, k))        # predictions of x_n1
    y_peer = batch.labels.gather(-1, n2)                                          # labels of y_n2
    peer_nll = (-logp_x.gather(-1, y_peer.unsqueeze(-1)).squeeze(-1)).clamp(max=-math.log(PEER_P_MIN))
    return batch.nll - alpha * peer_nll


register(Method("peer", "peer", (Param("alpha", "α", 1.0, "weight of the peer term (0: CE)", low=0.0,
                                       tex="\\alpha"),), peer,
                "Liu & Guo, Peer Loss Functions: Learning from Noisy Labels without Knowing Noise Rates, ICML 2020",
                "peer loss: CE minus α CE of a random prediction with a random label", family="peer"))
