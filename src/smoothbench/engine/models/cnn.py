"""The small CNN: three conv stages with BatchNorm and ReLU, global average pooling, a linear head."""

from __future__ import annotations

import torch.nn as nn

from ..layers import StackedLinear
from .base import ConvBNAct, StackedModel, maybe_pool, per_model, scaled


class SmallCNN(StackedModel):
    """conv-BN-ReLU x2, pool, conv-BN-ReLU x2, pool, conv-BN-ReLU, global avg pool, linear.

    Widths ``(32, 64, 128) * width``; pools are skipped where the map is 1 pixel.
    """

    def __init__(self, num_models, input_shape, num_classes, width: float):
        super().__init__(num_models, input_shape, num_classes, width=width)
        M, (C, H, W) = num_models, input_shape
        w1, w2, w3 = (scaled(b, width) for b in (32, 64, 128))
        size = min(H, W)
        pool1, size = maybe_pool(size)
        pool2, size = maybe_pool(size)
        self.features = nn.Sequential(
            ConvBNAct(M, C, w1), ConvBNAct(M, w1, w1), pool1,
            ConvBNAct(M, w1, w2), ConvBNAct(M, w2, w2), pool2,
            ConvBNAct(M, w2, w3),
        )
        self.head = StackedLinear(num_models, w3, num_classes)

    def forward(self, x):
        h = self.features(self._images(x)).mean(dim=(2, 3))
        return self.head(per_model(h, self.num_models))
