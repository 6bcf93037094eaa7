"""FastNet: a small fast CIFAR net in the spirit of airbench."""

from __future__ import annotations

import torch.nn as nn

from ..layers import StackedBatchNorm2d, StackedConv2d, StackedLinear
from .base import ConvBNAct, StackedModel, maybe_pool, per_model, scaled


class FastNet(StackedModel):
    """A small fast CIFAR net in the spirit of airbench.

    stem conv-BN-GELU (32 ch), then three blocks
    ``conv -> maxpool -> BN -> GELU -> conv -> BN -> GELU`` of widths
    ``(64, 256, 256) * width``, global max pool, bias-free linear whose output is
    multiplied by ``logit_scale`` (airbench's is 1/9). No residuals.
    """

    def __init__(self, num_models, input_shape, num_classes, width: float, logit_scale: float, bn_momentum: float):
        super().__init__(num_models, input_shape, num_classes, width=width,
                         logit_scale=logit_scale, bn_momentum=bn_momentum)
        M, (C, H, W) = num_models, input_shape
        stem = scaled(32, width)
        widths = [scaled(b, width) for b in (64, 256, 256)]
        self.logit_scale = float(logit_scale)
        mods: list[nn.Module] = [ConvBNAct(M, C, stem, act=nn.GELU, momentum=bn_momentum)]
        size, cin = min(H, W), stem
        for cout in widths:
            pool, size = maybe_pool(size)
            mods += [StackedConv2d(M, cin, cout, 3), pool, StackedBatchNorm2d(M, cout, bn_momentum), nn.GELU(),
                     ConvBNAct(M, cout, cout, act=nn.GELU, momentum=bn_momentum)]
            cin = cout
        self.features = nn.Sequential(*mods)
        self.head = StackedLinear(M, cin, num_classes, bias=False)

    def forward(self, x):
        h = self.features(self._images(x)).amax(dim=(2, 3))
        return self.head(per_model(h, self.num_models)) * self.logit_scale
