"""The network NAS-Bench-201 trained: xautodl's TinyNetwork (C=16, N=5) with infer cells.

Written here rather than imported from xautodl (whose numpy pin breaks a fresh install).
Matches the benchmark: ReLU-Conv-BN ops with affine BN and bias-free convs, ResNet basic
blocks for reduction, ``avg_pool_3x3`` with ``count_include_pad=False``. Two deliberate
differences that change no number: ``forward`` returns the logits only (not a tuple), and
``none`` edges are skipped instead of multiplied by zero (a node whose inputs are all
``none`` is an explicit zero tensor).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from raynas.spaces.nb201_cell import EDGES


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=True, track_running_stats=True),
        )


@functools.lru_cache(maxsize=64)
def _window_counts(height: int, width: int, dtype: torch.dtype) -> torch.Tensor:
    """How many of each position's 3×3 neighbours lie inside a height × width map (CPU)."""
    def along(n: int) -> torch.Tensor:
        i = torch.arange(n)
        return (torch.clamp(i + 1, max=n - 1) - torch.clamp(i - 1, min=0) + 1).to(dtype)

    return along(height)[:, None] * along(width)[None, :]


def avg_pool_3x3(x: torch.Tensor) -> torch.Tensor:
    """NB201's ``avg_pool_3x3``: the mean over each 3×3 window, stride 1, the zero padding
    not counted (``count_include_pad=False``). On a CPU, as two 3-tap sums over a padded copy
    divided by each position's count: the same mean to float32 rounding (~1e-7 relative),
    forward and backward 2-4× faster than torch's CPU kernel, which took 40 % of an NB201
    cell's AZ-NAS time (docs/history.md, "A faster 3×3 average pool on the CPU"). On a GPU
    torch's kernel (one launch each way, where the sums would be six)."""
    if x.device.type != "cpu":
        return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    padded = F.pad(x, (1, 1, 1, 1))
    rows = padded[..., :-2] + padded[..., 1:-1] + padded[..., 2:]
    total = rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :]
    return total / _window_counts(x.shape[-2], x.shape[-1], x.dtype)


class AvgPool3x3(nn.AvgPool2d):
    """``nn.AvgPool2d(3, 1, 1, count_include_pad=False)`` computed by :func:`avg_pool_3x3`."""

    def __init__(self) -> None:
        super().__init__(3, stride=1, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return avg_pool_3x3(x)


def make_op(op: str, channels: int) -> nn.Module | None:
    """One edge op at stride 1; ``None`` for the ``none`` op."""
    if op == "none":
        return None
    if op == "skip_connect":
        return nn.Identity()
    if op == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, 0)
    if op == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, 1)
    if op == "avg_pool_3x3":
        return AvgPool3x3()
    raise ValueError(f"unknown NB201 op {op!r}")


class InferCell(nn.Module):
    """Node j = sum over incoming edges of op(node i); the output is node 3."""

    def __init__(self, ops: tuple[str, ...], channels: int):
        super().__init__()
        # ``none`` edges hold a placeholder so that edge k is always ``edge_ops[k]``.
        self.edge_ops = nn.ModuleList(
            nn.Identity() if op == "none" else make_op(op, channels) for op in ops
        )
        self.active = tuple(op != "none" for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for target in (1, 2, 3):
            terms = [
                self.edge_ops[k](nodes[source])
                for k, (t, source) in enumerate(EDGES)
                if t == target and self.active[k]
            ]
            nodes.append(sum(terms[1:], terms[0]) if terms else torch.zeros_like(x))
        return nodes[3]


class ResNetBasicBlock(nn.Module):
    """Reduction block: two ReLU-Conv-BN (first with stride 2) + avg-pool/1x1-conv shortcut."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class TinyNetwork(nn.Module):
    """Stem, 3 stages of N cells with reductions between, BN-ReLU-GAP-Linear head."""

    def __init__(self, ops: tuple[str, ...], num_classes: int, channels: int = 16, cells_per_stage: int = 5):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, channels, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )
        layers: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResNetBasicBlock(c, 2 * c))
                c *= 2
            layers.extend(InferCell(ops, c) for _ in range(cells_per_stage))
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map before global pooling (Zen-score's f)."""
        return self.lastact(self.cells(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.global_pooling(self.forward_features(x)).flatten(1))
