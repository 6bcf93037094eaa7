"""The MLP: fully connected ReLU layers, for vectors and (flattened) images."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import StackedLinear
from .base import StackedModel


class MLP(StackedModel):
    """Fully connected ReLU layers of widths ``hidden``; for image inputs, ``pool`` > 1 first
    averages each ``pool`` x ``pool`` block of pixels (MNIST at pool 2: 14 x 14 inputs)."""

    def __init__(self, num_models, input_shape, num_classes, hidden: Sequence[int], pool: int):
        super().__init__(num_models, input_shape, num_classes, hidden=list(hidden), pool=pool)
        self.pool = int(pool)       # the inputs it can pool: models.input_problem, checked before it is built
        shape = input_shape if self.pool == 1 else (input_shape[0], input_shape[1] // self.pool,
                                                     input_shape[2] // self.pool)
        dims = [math.prod(shape), *[int(h) for h in hidden]]
        self.hidden = nn.ModuleList(StackedLinear(num_models, a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.head = StackedLinear(num_models, dims[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool > 1:
            lead = x.shape[:x.dim() - 3]
            x = F.avg_pool2d(x.reshape(-1, *x.shape[-3:]), self.pool)
            x = x.reshape(*lead, *x.shape[-3:])
        h = self._vectors(x)           # (B, D) shared, or (G, B, D) per input group
        for layer in self.hidden:
            h = F.relu(layer(h))       # (M, B, H)
        return self.head(h)
