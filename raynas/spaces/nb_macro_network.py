"""The network NAS-Bench-Macro trained (xiusu/NAS-Bench-Macro, ``train/model.py``): a 3×3 stem
of 32 channels, eight searchable layers in three stages of 2, 3 and 3 (the first layer of
each stage halves the resolution and doubles the channels), a 1×1 convolution to 1,280
channels, global average pooling and a linear classifier. Each searchable layer is one of
``identity`` (a 1×1 convolution + BN where the shape changes), or a MobileNetV2 inverted
residual with expansion 3 and a 3×3 depthwise kernel, or expansion 6 and 5×5.
"""

from __future__ import annotations

import torch
from torch import nn

STAGES = (2, 3, 3)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
# (expansion, depthwise kernel) of each choice; None: the identity layer.
CHOICES: tuple[tuple[int, int] | None, ...] = (None, (3, 3), (6, 5))


class IdentityLayer(nn.Module):
    """The ``id`` choice: nothing, or a strided 1×1 convolution and BN when the layer
    changes resolution or width (as the benchmark's networks have it)."""

    def __init__(self, inp: int, oup: int, stride: int):
        super().__init__()
        self.project = (nn.Sequential(nn.Conv2d(inp, oup, 1, stride=stride, bias=False), nn.BatchNorm2d(oup))
                        if stride != 1 or inp != oup else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.project is None else self.project(x)


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1×1 expansion, k×k depthwise, 1×1 projection (each with BN;
    ReLU after the first two), with the input added when the shape is kept."""

    def __init__(self, inp: int, oup: int, stride: int, expansion: int, kernel: int):
        super().__init__()
        hidden = inp * expansion
        self.body = nn.Sequential(
            nn.Conv2d(inp, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, kernel, stride, padding=kernel // 2, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, oup, 1, bias=False), nn.BatchNorm2d(oup),
        )
        self.residual = stride == 1 and inp == oup

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out + x if self.residual else out


class MacroNetwork(nn.Module):
    """One NAS-Bench-Macro network; ``choices``: eight digits in {0, 1, 2}."""

    def __init__(self, choices: tuple[int, ...], num_classes: int = 10):
        super().__init__()
        if len(choices) != sum(STAGES):
            raise ValueError(f"a NAS-Bench-Macro network has {sum(STAGES)} layers, got {len(choices)}")
        self.stem = nn.Sequential(nn.Conv2d(3, STEM_CHANNELS, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(STEM_CHANNELS), nn.ReLU(inplace=True))
        layers, channels, position = [], STEM_CHANNELS, 0
        for depth in STAGES:
            for i in range(depth):
                inp, oup, stride = (channels, 2 * channels, 2) if i == 0 else (channels, channels, 1)
                choice = CHOICES[choices[position]]
                layers.append(IdentityLayer(inp, oup, stride) if choice is None
                              else InvertedResidual(inp, oup, stride, *choice))
                channels, position = oup, position + 1
        self.cells = nn.Sequential(*layers)  # "cells": the chain AZ-NAS reads block by block
        self.head = nn.Sequential(nn.Conv2d(channels, HEAD_CHANNELS, 1, bias=False), nn.BatchNorm2d(HEAD_CHANNELS),
                                  nn.ReLU(inplace=True))
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map before global pooling (Zen-score's f): after the 1×1 head conv."""
        return self.head(self.cells(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.forward_features(x)))
