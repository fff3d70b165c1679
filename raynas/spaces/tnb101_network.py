"""The networks TransNAS-Bench-101 trained for its micro space (yawen-d/TransNASBench, as
NASLib ships it under ``transbench101/tnb101/``): one encoder, ``64-41414-<cell>``, and a
decoder per task.

The encoder: a stem (3×3 stride-2 convolution to 32 channels, BN, then ReLU-conv-BN to 64
channels at stride 2) and five layers of two cells each, macro code ``41414`` (``4``: the
first cell halves the resolution and doubles the channels; ``1``: both keep them), so a
256×256 image ends as 512×8×8. A cell has four nodes; node j sums one op applied to every
earlier node, and the cell's output is node 3 — there is no residual around the cell. Ops:
``0`` zero, ``1`` identity (a factorized reduction where the shape changes), ``2`` ReLU-1×1
conv-BN, ``3`` ReLU-3×3 conv-BN. Only the edges out of node 0 carry the cell's stride and
channel change. Convolutions start from Kaiming-normal (fan-out), BN from 1 and 0, as the
benchmark's encoder initialises them; the decoders keep PyTorch's default.

Decoders, each as the benchmark builds it (its decoders size their upsampling from the
encoder's nominal 7×7 output for a 224-pixel input, so they upsample 32× whatever the input):

* ``class_scene`` (63), ``class_object`` (100), ``room_layout`` (9 regression outputs):
  global average pooling and one linear layer;
* ``jigsaw`` (1,000 permutations): the encoder runs on each of nine 64×64 tiles, the nine
  feature maps are concatenated along channels (tile order), pooled, and one linear layer.
  raynas feeds it one 192×192 image and cuts the 3×3 tiles inside the network (row-major);
  for its Gaussian probes that is the same as nine independent tiles;
* ``segmentsemantic`` (17 classes per pixel): a conv/deconv decoder (conv to 1,024, one
  conv to 512, four stride-2 deconvs, a stride-2 deconv at 32 channels, a 3×3 conv to 17);
* ``normal`` and ``autoencoder`` (3-channel images): Pix2Pix's 14-layer generative decoder,
  ending in tanh. The benchmark also builds a discriminator for these two, which scores
  nothing at initialisation and is not part of the network here (nor of its parameters:
  NAS-Bench-Suite-Zero's ``params`` leave it out too).
"""

from __future__ import annotations

import math

import torch
from torch import nn

BASE_CHANNELS = 64
MACRO_CODE = "41414"
CELLS_PER_LAYER = 2
NOMINAL_ENCODER_WIDTH = 7  # what the benchmark's decoders assume (a 224-pixel input / 32)
TILES = 3  # jigsaw: a 3×3 grid of tiles


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int):
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out))


class Zero(nn.Module):
    """Zeros of the edge's output shape (the ``0`` op), still connected to the input."""

    def __init__(self, c_out: int, stride: int):
        super().__init__()
        self.c_out, self.stride = c_out, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1 and x.shape[1] == self.c_out:
            return x.mul(0.0)
        n, _, h, w = x.shape
        return x.new_zeros(n, self.c_out, (h + 1) // self.stride, (w + 1) // self.stride)


class FactorizedReduce(nn.Module):
    """The identity op where the shape changes: ReLU, two stride-2 1×1 convolutions (the
    second on the input shifted by one pixel), concatenated, BN."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.convs = nn.ModuleList(nn.Conv2d(c_in, c, 1, stride=stride, bias=False)
                                   for c in (c_out // 2, c_out - c_out // 2))
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = nn.functional.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.convs[0](x), self.convs[1](shifted)], dim=1))


def make_op(code: int, c_in: int, c_out: int, stride: int) -> nn.Module:
    if code == 0:
        return Zero(c_out, stride)
    if code == 1:
        return nn.Identity() if stride == 1 and c_in == c_out else FactorizedReduce(c_in, c_out, stride)
    return ReLUConvBN(c_in, c_out, 1 if code == 2 else 3, stride)


class MicroCell(nn.Module):
    """Nodes 1–3 each sum an op over every earlier node; ``ops`` in the benchmark's order
    (node 1 ← 0; node 2 ← 0, 1; node 3 ← 0, 1, 2). The output is node 3."""

    SOURCES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (node, from) of each op

    def __init__(self, ops: tuple[int, ...], c_in: int, c_out: int, stride: int):
        super().__init__()
        self.edges = nn.ModuleList(make_op(code, c_in, c_out, stride) if source == 0 else make_op(code, c_out, c_out, 1)
                                   for code, (_node, source) in zip(ops, self.SOURCES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for node in (1, 2, 3):
            inputs = [edge(nodes[source]) for edge, (target, source) in zip(self.edges, self.SOURCES) if target == node]
            total = inputs[0]
            for other in inputs[1:]:
                total = total + other
            nodes.append(total)
        return nodes[3]


class Tiles(nn.Module):
    """(N, 3, 3h, 3w) → (9N, 3, h, w): each image's 3×3 grid of tiles, row-major, image-major."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, height, width = x.shape
        if height % TILES or width % TILES:
            raise ValueError(f"jigsaw input of {height}x{width} pixels does not split into a 3x3 grid of tiles")
        h, w = height // TILES, width // TILES
        return x.view(n, c, TILES, h, TILES, w).permute(0, 2, 4, 1, 3, 5).reshape(n * TILES * TILES, c, h, w)


class Encoder(nn.Module):
    """``64-41414-<cell>``: the stem and ten cells (``cells``, an nn.Sequential). ``tiled``:
    the stem first cuts each image into its jigsaw tiles."""

    def __init__(self, ops: tuple[int, ...], tiled: bool = False):
        super().__init__()
        half = BASE_CHANNELS // 2
        self.stem = nn.Sequential(*([Tiles()] if tiled else []),
                                  nn.Conv2d(3, half, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(half),
                                  ReLUConvBN(half, BASE_CHANNELS, 3, 2))
        cells, channels = [], BASE_CHANNELS
        for layer in MACRO_CODE:
            kind = int(layer)
            out = channels * 2 if kind % 2 == 0 else channels
            stride = 2 if kind > 2 else 1
            cells.append(MicroCell(ops, channels, out, stride))
            cells.extend(MicroCell(ops, out, out, 1) for _ in range(CELLS_PER_LAYER - 1))
            channels = out
        self.cells = nn.Sequential(*cells)
        self.out_channels = channels
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cells(self.stem(x))


def conv_layer(c_in: int, c_out: int, activation: nn.Module | None, norm: bool = True) -> list[nn.Module]:
    """The decoders' 3×3 convolution (with bias), BN, activation."""
    return [nn.Conv2d(c_in, c_out, 3, 1, 1), *([nn.BatchNorm2d(c_out)] if norm else []),
            *([activation] if activation is not None else [])]


def deconv_layer(c_in: int, c_out: int) -> list[nn.Module]:
    """The decoders' stride-2 3×3 transposed convolution (doubles the size), BN, leaky ReLU."""
    return [nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1), nn.BatchNorm2d(c_out),
            nn.LeakyReLU(0.2)]


def upsamplings(output_width: int = 256) -> int:
    return int(math.log2(output_width / NOMINAL_ENCODER_WIDTH))


def segmentation_decoder(c_in: int, classes: int) -> nn.Sequential:
    ups = upsamplings()
    layers = conv_layer(c_in, 1024, nn.LeakyReLU(0.2))
    width = 1024
    for _ in range(6 - ups):
        layers += conv_layer(width, width // 2, nn.LeakyReLU(0.2))
        width //= 2
    for _ in range(ups - 1):
        layers += deconv_layer(width, width // 2)
        width //= 2
    layers += deconv_layer(width, width)
    layers += conv_layer(width, classes, None, norm=False)
    return nn.Sequential(*layers)


def generative_decoder(c_in: int, channels: int = 3) -> nn.Sequential:
    """Pix2Pix's decoder as the benchmark sizes it: conv1–conv14, five of them (for a
    32× upsampling) transposed."""
    ups = upsamplings()

    def maybe_up(c_a: int, c_b: int, up: bool) -> list[nn.Module]:
        return deconv_layer(c_a, c_b) if up else conv_layer(c_a, c_b, nn.LeakyReLU(0.2))

    layers = conv_layer(c_in, 1024, nn.LeakyReLU(0.2)) + conv_layer(1024, 1024, nn.LeakyReLU(0.2))
    layers += maybe_up(1024, 512, ups == 6) + conv_layer(512, 512, nn.LeakyReLU(0.2))
    layers += maybe_up(512, 256, ups >= 5) + conv_layer(256, 128, nn.LeakyReLU(0.2))
    layers += maybe_up(128, 64, ups >= 4) + conv_layer(64, 64, nn.LeakyReLU(0.2))
    layers += maybe_up(64, 32, ups >= 3) + conv_layer(32, 32, nn.LeakyReLU(0.2))
    layers += deconv_layer(32, 16) + conv_layer(16, 32, nn.LeakyReLU(0.2))
    layers += deconv_layer(32, 16) + conv_layer(16, channels, nn.Tanh(), norm=False)
    return nn.Sequential(*layers)


class TNB101MicroNetwork(nn.Module):
    """One micro cell's network for one task. ``forward_features`` is the encoder's output
    (before the decoder), the feature map Zen reads; ``stem`` and ``cells`` are the
    encoder's (AZ-NAS's chain of cells)."""

    def __init__(self, ops: tuple[int, ...], task: str, outputs: int):
        super().__init__()
        self.task = task
        self.encoder = Encoder(ops, tiled=task == "jigsaw")
        width = self.encoder.out_channels
        if task in ("class_scene", "class_object", "room_layout"):
            self.decoder = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, outputs))
        elif task == "jigsaw":
            self.decoder = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width * TILES * TILES, outputs))
        elif task == "segmentsemantic":
            self.decoder = segmentation_decoder(width, outputs)
        elif task in ("normal", "autoencoder"):
            self.decoder = generative_decoder(width, outputs)
        else:
            raise ValueError(f"unknown TransNAS-Bench-101 task {task!r}")

    @property
    def stem(self) -> nn.Module:
        return self.encoder.stem

    @property
    def cells(self) -> nn.Sequential:
        return self.encoder.cells

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.forward_features(x)
        if self.task == "jigsaw":  # the nine tiles' maps side by side along channels, tile order
            n, c, h, w = features.shape
            features = features.view(n // (TILES * TILES), TILES * TILES * c, h, w)
        return self.decoder(features)
