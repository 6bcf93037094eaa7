"""CIFAR ResNets (ResNet-18, ResNet-34): a 3x3 stride-1 stem, BasicBlock stages, a linear head."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn as nn
import torch.nn.functional as F

from ..layers import StackedBatchNorm2d, StackedConv2d, StackedLinear
from .base import ConvBNAct, StackedModel, per_model, scaled

BLOCKS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}


class BasicBlock(nn.Module):
    def __init__(self, M, cin, cout, stride):
        super().__init__()
        self.conv1 = StackedConv2d(M, cin, cout, 3, stride)
        self.bn1 = StackedBatchNorm2d(M, cout)
        self.conv2 = StackedConv2d(M, cout, cout, 3, 1)
        self.bn2 = StackedBatchNorm2d(M, cout)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(StackedConv2d(M, cin, cout, 1, stride, 0), StackedBatchNorm2d(M, cout))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(StackedModel):
    """CIFAR ResNet: 3x3 stride-1 stem, no max-pool, BasicBlock stages of ``blocks`` blocks at
    widths ``(64, 128, 256, 512) * width``, GAP, linear."""

    def __init__(self, num_models, input_shape, num_classes, blocks: Sequence[int], width: float):
        super().__init__(num_models, input_shape, num_classes, width=width)
        M, C = num_models, input_shape[0]
        widths = [scaled(b, width) for b in (64, 128, 256, 512)]
        self.stem = ConvBNAct(M, C, widths[0])
        layers, cin = [], widths[0]
        for i, (n, cout) in enumerate(zip(blocks, widths)):
            for j in range(n):
                layers.append(BasicBlock(M, cin, cout, 2 if (i > 0 and j == 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.head = StackedLinear(M, cin, num_classes)

    def forward(self, x):
        h = self.layers(self.stem(self._images(x))).mean(dim=(2, 3))
        return self.head(per_model(h, self.num_models))


def resnet18(num_models, input_shape, num_classes, width: float) -> ResNet:
    return ResNet(num_models, input_shape, num_classes, BLOCKS["resnet18"], width)


def resnet34(num_models, input_shape, num_classes, width: float) -> ResNet:
    return ResNet(num_models, input_shape, num_classes, BLOCKS["resnet34"], width)
