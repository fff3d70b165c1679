"""A search space of your own: 258 plain convolution chains (1 to 3 conv-BN-ReLU layers,
each 8, 16 or 32 channels wide with a 1x1 or 3x3 kernel), then global pooling and a
linear classifier. A cell's string form lists its layers: ``16k3-32k1``.

    raynas score chain_space.SPACE --proxies params,input_sensitivity.PROXY --out runs/chains
"""

from itertools import product

from torch import nn

LAYER_CHOICES = [(width, kernel) for width in (8, 16, 32) for kernel in (1, 3)]
CELLS = [chain for depth in (1, 2, 3) for chain in product(LAYER_CHOICES, repeat=depth)]


class ChainSpace:
    name = "chains"

    def __len__(self) -> int:
        return len(CELLS)

    def index_of(self, arch: int | str) -> int:
        if isinstance(arch, int) or arch.isdigit():
            index = int(arch)
            if not 0 <= index < len(CELLS):
                raise ValueError(f"chain index {index} out of range [0, {len(CELLS)})")
            return index
        layers = tuple(tuple(int(v) for v in layer.split("k")) for layer in arch.split("-"))
        if layers not in CELLS:
            raise ValueError(f"{arch!r} is not a chain of this space (layers like 16k3, joined by '-')")
        return CELLS.index(layers)

    def arch_str(self, index: int) -> str:
        return "-".join(f"{width}k{kernel}" for width, kernel in CELLS[index])

    def is_degenerate(self, index: int) -> bool:
        return False  # every chain connects input and output

    def build(self, index: int, num_classes: int) -> nn.Module:
        layers, channels = [], 3
        for width, kernel in CELLS[index]:
            layers += [nn.Conv2d(channels, width, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            channels = width
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))

    def example(self) -> str:
        return self.arch_str(len(CELLS) - 1)


SPACE = ChainSpace()
