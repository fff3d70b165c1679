"""The network of an ``mbv2`` structure (:mod:`raynas.spaces.mbv2_structure`), as ZenNAS'
``MasterNet`` builds it with residual links (the setting AZ-NAS and ZiCo search with, and
the one that is trained): conv-BN-ReLU stem, the IDW super blocks, the 1×1 head to 2,048
channels, global average pooling and a linear classifier. Every BN has eps 1e-3 (MasterNet
sets it); shortcut projections are a 1×1 convolution with bias and a BN. Weights keep
PyTorch's default init (the peers' proxies re-initialise as they need; raynas' proxies start
from the scorer's seeded default, like every other space). No squeeze-and-excitation: the
peers search without it (``use_se`` is a training option).
"""

from __future__ import annotations

import torch
from torch import nn

from raynas.spaces.mbv2_structure import CONV_TYPES, IDW_TYPES, Block, smart_round

BN_EPS = 1e-3


def conv_bn(c_in: int, c_out: int, k: int, stride: int, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out, eps=BN_EPS)]


class InvertedPart(nn.Module):
    """1×1 expansion, k×k depthwise (the stride), 1×1 projection, each with BN (ReLU after
    the first two), plus the input or its projection; then ReLU."""

    def __init__(self, c_in: int, hidden: int, c_out: int, k: int, stride: int, project: bool):
        super().__init__()
        self.body = nn.Sequential(*conv_bn(c_in, hidden, 1, 1), nn.ReLU(), *conv_bn(hidden, hidden, k, stride, hidden),
                                  nn.ReLU(), *conv_bn(hidden, c_out, 1, 1))
        self.shortcut = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride), nn.BatchNorm2d(c_out, eps=BN_EPS))
                         if project else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + (x if self.shortcut is None else self.shortcut(x)))


def super_block(block: Block) -> nn.Sequential:
    if block.kind in CONV_TYPES:
        k, layers, c_in, stride = CONV_TYPES[block.kind], [], block.c_in, block.stride
        for _ in range(block.layers):
            layers += [*conv_bn(c_in, block.c_out, k, stride), nn.ReLU()]
            c_in, stride = block.c_out, 1
        return nn.Sequential(*layers)
    e, k = IDW_TYPES[block.kind]
    parts, c_in, stride = [], block.c_in, block.stride
    for i in range(block.layers):
        parts.append(InvertedPart(c_in, smart_round(block.bottleneck * e), block.bottleneck, k, stride,
                                  project=i == 0 or stride > 1 or c_in != block.bottleneck))
        parts.append(InvertedPart(block.bottleneck, smart_round(block.c_out * e), block.c_out, k, 1,
                                  project=block.bottleneck != block.c_out))
        c_in, stride = block.c_out, 1
    return nn.Sequential(*parts)


class MBV2Network(nn.Module):
    """``stem`` (the first block), ``cells`` (every other block, head included: AZ-NAS'
    chain), ``forward_features`` (the head's output before pooling: Zen's feature map)."""

    def __init__(self, blocks: tuple[Block, ...], num_classes: int = 1000):
        super().__init__()
        self.stem = super_block(blocks[0])
        self.cells = nn.Sequential(*(super_block(b) for b in blocks[1:]))
        self.classifier = nn.Linear(blocks[-1].c_out, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.cells(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(self.forward_features(x), 1), 1))
