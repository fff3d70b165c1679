"""The network NAS-Bench-101 trained (the benchmark's TF ``model_builder``, in PyTorch).

Stem conv3x3-BN-ReLU with 128 channels; 3 stacks of 3 cells; 2×2 max-pool and doubled
channels before stacks 2 and 3; global average pool; dense layer. Inside a cell the output
channels are split among the vertices that feed the output, sums are truncated to a
vertex's channel count, and the cell input reaches interior vertices (and the output)
through 1×1 conv-BN-ReLU projections.

Written here rather than taken from ``nasbench-pytorch``: that package's hash is broken
under current torch and its cells carry unused parameters (``Placeholder.a``, ``dev_param``)
that would enter parameter counts and gradient proxies.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

BN_MOMENTUM, BN_EPS = 0.003, 1e-5  # TF momentum 0.997 == PyTorch momentum 0.003


class ConvBNReLU(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=False),
        )


def vertex_channels(c_in: int, c_out: int, matrix: np.ndarray) -> list[int]:
    """Channels of each vertex, exactly as the benchmark's ``compute_vertex_channels``."""
    n = matrix.shape[0]
    channels = [0] * n
    channels[0], channels[-1] = c_in, c_out
    if n == 2:
        return channels
    in_degree = matrix[1:].sum(axis=0)
    interior, correction = divmod(c_out, int(in_degree[-1]))
    for v in range(1, n - 1):
        if matrix[v, -1]:
            channels[v] = interior + (1 if correction > 0 else 0)
            correction -= 1 if correction > 0 else 0
    for v in range(n - 3, 0, -1):
        if not matrix[v, -1]:
            for dst in range(v + 1, n - 1):
                if matrix[v, dst]:
                    channels[v] = max(channels[v], channels[dst])
    return channels


class Cell(nn.Module):
    def __init__(self, matrix: np.ndarray, ops: list[str], c_in: int, c_out: int):
        super().__init__()
        self.matrix = matrix
        n = matrix.shape[0]
        self.channels = vertex_channels(c_in, c_out, matrix)
        self.vertex_ops = nn.ModuleList([nn.Identity()])
        self.projections = nn.ModuleList([nn.Identity()])
        for v in range(1, n - 1):
            c = self.channels[v]
            op = ops[v]
            if op == "conv3x3-bn-relu":
                self.vertex_ops.append(ConvBNReLU(c, c, 3))
            elif op == "conv1x1-bn-relu":
                self.vertex_ops.append(ConvBNReLU(c, c, 1))
            else:
                self.vertex_ops.append(nn.MaxPool2d(3, stride=1, padding=1))
            self.projections.append(ConvBNReLU(c_in, c, 1) if matrix[0, v] else nn.Identity())
        self.output_projection = ConvBNReLU(c_in, c_out, 1) if matrix[0, -1] else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.matrix.shape[0]
        tensors = [x]
        concat = []
        for v in range(1, n - 1):
            c = self.channels[v]
            terms = [tensors[src][:, :c] for src in range(1, v) if self.matrix[src, v]]
            if self.matrix[0, v]:
                terms.append(self.projections[v](x))
            value = self.vertex_ops[v](sum(terms[1:], terms[0]))
            tensors.append(value)
            if self.matrix[v, -1]:
                concat.append(value)
        if not concat:
            return self.output_projection(x)
        out = concat[0] if len(concat) == 1 else torch.cat(concat, dim=1)
        if self.output_projection is not None:
            out = out + self.output_projection(x)
        return out


class NB101Network(nn.Module):
    def __init__(self, matrix: np.ndarray, ops: list[str], num_classes: int = 10,
                 stem_channels: int = 128, stacks: int = 3, cells_per_stack: int = 3):
        super().__init__()
        matrix = np.asarray(matrix, dtype=np.int64)
        self.stem = ConvBNReLU(3, stem_channels, 3)
        layers: list[nn.Module] = []
        c_in = c_out = stem_channels
        for stack in range(stacks):
            if stack > 0:
                layers.append(nn.MaxPool2d(2, stride=2))
                c_out *= 2
            for _ in range(cells_per_stack):
                layers.append(Cell(matrix, ops, c_in, c_out))
                c_in = c_out
        self.cells = nn.Sequential(*layers)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_out, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.cells(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.global_pooling(self.forward_features(x)).flatten(1))
