"""The DARTS-space network NAS-Bench-301 trained and NAS-Bench-Suite-Zero scored: as NASLib
builds it (``naslib/search_spaces/nasbench301/graph.py`` and its primitives), without the
auxiliary head. A 3×3 stem of 96 channels, eight cells (normal, normal, reduction, normal,
normal, reduction, normal, normal) of 32, 64 and 128 channels per stage, global average
pooling and a linear classifier over the last cell's four concatenated nodes.

Each cell takes the outputs of the two cells before it, each preprocessed by ReLU-1×1
conv-BN to the cell's width (a factorized reduction instead where the cell two back is at
twice the resolution); each of its four nodes sums two ops of earlier nodes or inputs; its
output concatenates the four. A reduction cell applies stride 2 on the ops that read its
inputs. Departure from the DARTS paper's evaluation network, kept as NASLib has it (so that
parameter counts are NAS-Bench-Suite-Zero's): BN without affine parameters after max and
average pooling and inside the ops (the paper's search-time setting).
"""

from __future__ import annotations

import torch
from torch import nn

# The compact form's op order (NASLib's conversions.py): an op is an index into this.
OPS = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
       "dil_conv_5x5")
STAGE_CHANNELS = (32, 64, 128)
STEM_MULTIPLIER = 3
CELL_KINDS = ("normal", "normal", "reduce", "normal", "normal", "reduce", "normal", "normal")
NODES = 4


def relu_conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))


class FactorizedReduce(nn.Module):
    """Half the resolution, two strided 1×1 convolutions offset by one pixel, concatenated."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        self.relu = nn.ReLU()
        self.even = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.odd = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.even(x), self.odd(x[:, :, 1:, 1:])], dim=1))


def separable(c: int, kernel: int, stride: int, dilation: int = 1) -> list[nn.Module]:
    """ReLU, depthwise k×k (strided, dilated), pointwise 1×1, BN (no affine)."""
    padding = dilation * (kernel - 1) // 2
    return [nn.ReLU(), nn.Conv2d(c, c, kernel, stride, padding, dilation=dilation, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c, affine=False)]


def make_op(name: str, c: int, stride: int) -> nn.Module:
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        pool = (nn.MaxPool2d(3, stride, padding=1) if name == "max_pool_3x3"
                else nn.AvgPool2d(3, stride, padding=1, count_include_pad=False))
        return nn.Sequential(pool, nn.BatchNorm2d(c, affine=False))
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine=False)
    if name.startswith("sep_conv"):
        kernel = int(name[-1])
        return nn.Sequential(*separable(c, kernel, stride), *separable(c, kernel, 1))
    if name.startswith("dil_conv"):
        return nn.Sequential(*separable(c, int(name[-1]), stride, dilation=2))
    raise ValueError(f"unknown DARTS op {name!r}")


class Cell(nn.Module):
    """One cell: ``genes`` are its eight (input, op index) pairs, two per node; input 0 is
    the cell two back, 1 the previous cell, 2.. the cell's own earlier nodes."""

    def __init__(self, genes: tuple[tuple[int, int], ...], c_prev_prev: int, c_prev: int, c: int, reduction: bool,
                 after_reduction: bool):
        super().__init__()
        self.pre0 = FactorizedReduce(c_prev_prev, c) if after_reduction else relu_conv_bn(c_prev_prev, c)
        self.pre1 = relu_conv_bn(c_prev, c)
        self.inputs = tuple(i for i, _ in genes)
        self.ops = nn.ModuleList(make_op(OPS[op], c, 2 if reduction and i < 2 else 1) for i, op in genes)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for node in range(NODES):
            a, b = 2 * node, 2 * node + 1
            states.append(self.ops[a](states[self.inputs[a]]) + self.ops[b](states[self.inputs[b]]))
        return torch.cat(states[2:], dim=1)


class DartsNetwork(nn.Module):
    """The network of a (normal, reduction) cell pair, each eight (input, op) pairs."""

    def __init__(self, normal: tuple[tuple[int, int], ...], reduce: tuple[tuple[int, int], ...],
                 num_classes: int = 10):
        super().__init__()
        stem = STAGE_CHANNELS[0] * STEM_MULTIPLIER
        self.stem = nn.Sequential(nn.Conv2d(3, stem, 3, padding=1, bias=False), nn.BatchNorm2d(stem))
        cells, c_prev_prev, c_prev, stage, after_reduction = [], stem, stem, 0, False
        for kind in CELL_KINDS:
            reduction = kind == "reduce"
            stage += reduction
            c = STAGE_CHANNELS[stage]
            cells.append(Cell(reduce if reduction else normal, c_prev_prev, c_prev, c, reduction, after_reduction))
            c_prev_prev, c_prev, after_reduction = c_prev, NODES * c, reduction
        self.cells = nn.ModuleList(cells)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last cell's output, before global pooling (Zen-score's f)."""
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return s1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.forward_features(x)).flatten(1))
