"""Peer loss (Liu & Guo, ICML 2020) as its authors' multi-class code runs it.

Per sample: ``CE*(f(x_n), y_n) - alpha * CE*(f(x_n1), y_n2)``, where CE* is the authors'
stabilised cross-entropy ``-log(softmax + 1e-5)`` (in both terms), x_n1 a peer input and y_n2
a peer label. The peer inputs and labels are the authors' too: per step a fresh shuffle of
the WHOLE training set, its first batch's inputs and its second batch's labels (their
``peer_iter`` draws two batches of one freshly shuffled loader), and a second forward pass
of the model on the peer inputs. The engine draws that shuffle per seed and step from
``core.draws`` (every peer cell of a seed shares it, as they share the batch; no state to
save) and runs the second forward pass only when its stack has peer cells
(``Method.peer``); the loss gets the peer predictions and labels in ``Batch.peer_logits``
and ``Batch.peer_labels``.

``ramp`` 1 follows the authors' alpha schedule instead of a constant alpha: alpha is 0 (CE)
for the first 40% of the phase's epochs, then grows linearly to its value at the last
epoch (their MNIST schedule: 0 for 120 of 300 epochs, then linear to 1), and the loss is
divided by ``1 + alpha(t)`` (their learning rate ``lr / (1 + alpha(t))``; here the weight
decay is not divided).
"""

from __future__ import annotations

import math

from ..core.lazy import torch

from .registry import Batch, Literature, Method, Param, register

PEER_EPS = 1e-5          # the authors' stabilised CE: -log(softmax + 1e-5)
RAMP_START = 0.4         # ramp: the fraction of the phase's epochs trained with alpha = 0
CODE = "the authors' code (weijiaheng/Multi-class-Peer-Loss-functions)"


def stable_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``-log(softmax(logits)[y] + 1e-5)`` per sample: (..., B, K) and (..., B) -> (..., B)."""
    p_y = torch.softmax(logits, dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return -torch.log(p_y + PEER_EPS)


def ramp_fraction(epoch: int, epochs: int) -> float:
    """The share of alpha at the phase's epoch ``epoch`` (0-based) of ``epochs`` under the ramp."""
    start = math.floor(RAMP_START * epochs)
    if epoch < start:
        return 0.0
    span = epochs - 1 - start
    return 1.0 if span <= 0 else (epoch - start) / span


def peer(batch: Batch, params: torch.Tensor) -> torch.Tensor:
    dtype = batch.logits.dtype
    alpha = params[..., 0].unsqueeze(-1).to(dtype)
    ramp = params[..., 1].unsqueeze(-1) > 0.5
    alpha_t = torch.where(ramp, alpha * ramp_fraction(batch.epoch, batch.epochs), alpha)
    scale = torch.where(ramp, 1.0 / (1.0 + alpha_t), torch.ones_like(alpha_t))
    main = stable_ce(batch.logits, batch.labels)
    peer_term = stable_ce(batch.peer_logits.to(dtype), batch.peer_labels)
    return scale * (main - alpha_t * peer_term)


register(Method("peer", "peer", (Param("alpha", "α", 1.0, "weight of the peer term (0: CE*)", low=0.0,
                                       tex="\\alpha"),
                                 Param("ramp", "ramp", 0.0, "α constant (0) or the authors' schedule (1): 0 for the "
                                       "first 40% of the epochs, then linear to α, the loss divided by 1 + α(t)",
                                       choices=((0.0, "constant α"), (1.0, "ramped α")))), peer,
                "Liu & Guo, Peer Loss Functions: Learning from Noisy Labels without Knowing Noise Rates, ICML 2020",
                "peer loss: CE* minus α CE* of a random training input with another's label", family="peer",
                peer=True,
                convention="the authors' code: CE* = -log(softmax + 1e-5) in both terms, peer inputs and labels from "
                           "a fresh shuffle of the whole training set per step (a second forward pass); α constant "
                           "as in the paper's definition unless ramp is 1 (their schedule, scaled to the phase's "
                           "length)",
                literature=(Literature(("mnist",), {"alpha": 1.0},
                                       CODE + ", MNIST/runner.py f_alpha (setting 1: 0 for 120 epochs, then linear "
                                       "to 1 at epoch 300)"),
                            Literature(("cifar10",), {"alpha": 1.0},
                                       CODE + ", CIFAR-10/runner.py f_alpha (uniform noise: α is 1 at epoch 40, "
                                       "where the lr first drops; a schedule, not one α)"),
                            Literature(("cifar100",), {"alpha": 0.95},
                                       CODE + ", CIFAR-100/runner.py f_alpha (uniform noise: 0 for 100 epochs, "
                                       "then 0.95)"))))
