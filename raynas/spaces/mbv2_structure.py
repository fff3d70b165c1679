"""Structure strings of the MobileNetV2-like ImageNet space that Zen-NAS, ZiCo and AZ-NAS
search (idstcv/ZenNAS ``SearchSpace/search_space_IDW_fixfc.py``, its ``PlainNet`` blocks and
``evolution_search.py``): parsing, the benchmark's own FLOPs count, and mutation — all pure
Python, no torch.

A structure is a chain of super blocks, written as the peers write them::

    SuperConvK3BNRELU(3,8,2,1)SuperResIDWE6K3(8,32,2,8,1)...SuperConvK1BNRELU(128,2048,1,1)

``SuperConvK{1,3}BNRELU(in, out, stride, layers)`` is a conv-BN-ReLU (the stem, and the 1×1
head to 2,048 channels, which the search never changes); ``SuperResIDWE{e}K{k}(in, out,
stride, bottleneck, layers)`` is ``layers`` sub-layers, each two inverted-residual parts
(1×1 expansion by e, k×k depthwise, 1×1 projection): ``in → bottleneck`` (a projection
shortcut, the stride on the first sub-layer) and ``bottleneck → out``.

What the peers' code does silently, and raynas does the same way:

* FLOPs (:func:`zen_flops`) are ``MasterNet.get_FLOPs``: convolution and linear MACs, plus
  one per BN output element, plus the projection shortcuts counted at the output resolution
  divided by the stride once more (so a strided shortcut counts a quarter). The budgets
  (450M, 600M, 1G) are in these units.
* A mutation replaces one super block (two, once the population has more than ten members)
  by a random candidate of ``gen_search_space``, whose candidate list repeats the early
  block types (it appends each type's candidates to the list it has already stored, then
  starts a new one): the multiset is kept, so the types are drawn as often as there. Its
  order is sorted, not Python's ``set`` order (which changes with the hash seed), so a
  mutation is a function of the random generator alone.
* After a mutation, a block of six or more sub-layers is split into two of three.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, replace

CONV_TYPES = {"SuperConvK1BNRELU": 1, "SuperConvK3BNRELU": 3}
IDW_TYPES = {f"SuperResIDWE{e}K{k}": (e, k) for k in (3, 5, 7) for e in (1, 2, 4, 6)}  # the peers' order
HEAD_CHANNELS = 2048
RESOLUTION = 224  # ImageNet, where the FLOPs budgets are counted
SPLIT_LAYERS = 6  # evolution_search: split_layer_threshold
CHANNEL_BASE = 8
_BLOCK = re.compile(r"(\w+)\(([0-9, ]*)\)")


@dataclass(frozen=True)
class Block:
    """One super block. ``kind`` is its type name; ``bottleneck`` is 0 for a conv block."""

    kind: str
    c_in: int
    c_out: int
    stride: int
    bottleneck: int
    layers: int

    @property
    def is_conv(self) -> bool:
        return self.kind in CONV_TYPES

    def __str__(self) -> str:
        if self.is_conv:
            return f"{self.kind}({self.c_in},{self.c_out},{self.stride},{self.layers})"
        return f"{self.kind}({self.c_in},{self.c_out},{self.stride},{self.bottleneck},{self.layers})"


def smart_round(x: float, base: int = CHANNEL_BASE) -> int:
    """ZenNAS' rounding to a multiple of ``base`` (Python's round: half to even), at least base."""
    return max(base, round(x / float(base)) * base)


def parse_block(text: str) -> Block:
    match = _BLOCK.fullmatch(text.strip())
    if not match:
        raise ValueError(f"malformed mbv2 block {text!r}")
    kind, args = match.group(1), [int(a) for a in match.group(2).split(",") if a.strip()]
    if kind in CONV_TYPES and len(args) == 4:
        return Block(kind, args[0], args[1], args[2], 0, args[3])
    if kind in IDW_TYPES and len(args) == 5:
        return Block(kind, *args)
    known = ", ".join([*CONV_TYPES, "SuperResIDWE{1,2,4,6}K{3,5,7}"])
    raise ValueError(f"mbv2 block {text!r}: expected one of {known} with 4 (conv) or 5 (IDW) integers")


def parse_structure(text: str) -> tuple[Block, ...]:
    """The blocks of a structure string; a ValueError naming what is wrong otherwise: an
    unknown block, a stem that does not take 3 channels, a head that is not a 1×1 conv to
    2,048, channels that do not chain, a stride other than 1 or 2, or a layer count below 1."""
    body = re.sub(r"\s+", "", text)
    pieces = _BLOCK.findall(body)
    if not pieces or "".join(f"{k}({a})" for k, a in pieces) != body:
        raise ValueError(f"malformed mbv2 structure {text[:80]!r}: expected blocks like "
                         "SuperConvK3BNRELU(3,16,2,1)SuperResIDWE6K3(16,32,2,16,1)...SuperConvK1BNRELU(C,2048,1,1)")
    blocks = tuple(parse_block(f"{k}({a})") for k, a in pieces)
    first, last = blocks[0], blocks[-1]
    if first.kind != "SuperConvK3BNRELU" or first.c_in != 3:
        raise ValueError(f"mbv2 structure must start with SuperConvK3BNRELU(3,...), not {first}")
    if last.kind != "SuperConvK1BNRELU" or last.c_out != HEAD_CHANNELS or len(blocks) < 3:
        raise ValueError(f"mbv2 structure must end with SuperConvK1BNRELU(C,{HEAD_CHANNELS},1,1) after at least one "
                         f"IDW block, not {last}")
    for prev, block in zip(blocks, blocks[1:]):
        if block.c_in != prev.c_out:
            raise ValueError(f"mbv2 block {block} takes {block.c_in} channels, but {prev} gives {prev.c_out}")
    for block in blocks:
        if block.stride not in (1, 2) or block.layers < 1 or min(block.c_out, block.bottleneck or 1) < 1:
            raise ValueError(f"mbv2 block {block}: stride must be 1 or 2, layers and channels at least 1")
    return blocks


def format_structure(blocks: tuple[Block, ...]) -> str:
    return "".join(str(b) for b in blocks)


def layer_count(blocks: tuple[Block, ...]) -> int:
    """``MasterNet.get_num_layers``: the sub-layers of every block (stem and head included)."""
    return sum(b.layers for b in blocks)


# -- FLOPs as MasterNet.get_FLOPs counts them -------------------------------------------------
def _conv(c_in: int, c_out: int, k: int, stride: int, res: int) -> int:
    return c_in * c_out * k**2 * res**2 // stride**2


def _dw(c: int, k: int, stride: int, res: int) -> int:
    return c * k**2 * res**2 // stride**2


def _part(c_in: int, hidden: int, c_out: int, k: int, stride: int, res: int, shortcut: bool) -> tuple[float, int]:
    """One inverted-residual part (1×1, BN, k×k depthwise, BN, 1×1, BN) and its shortcut:
    (FLOPs, output resolution)."""
    out_res = res // stride
    flops: float = _conv(c_in, hidden, 1, 1, res) + res**2 * hidden
    flops += _dw(hidden, k, stride, res) + out_res**2 * hidden
    flops += _conv(hidden, c_out, 1, 1, out_res) + out_res**2 * c_out
    if shortcut:
        flops += c_in * c_out * (out_res / stride) ** 2 + (out_res / stride) ** 2 * c_out
    return flops, out_res


def block_flops(block: Block, res: int) -> tuple[float, int]:
    """(FLOPs, output resolution) of one super block at input resolution ``res``."""
    if block.is_conv:
        k, flops, c_in = CONV_TYPES[block.kind], 0.0, block.c_in
        stride = block.stride
        for _ in range(block.layers):
            flops += _conv(c_in, block.c_out, k, stride, res) + (res // stride) ** 2 * block.c_out
            res, c_in, stride = res // stride, block.c_out, 1
        return flops, res
    e, k = IDW_TYPES[block.kind]
    flops, c_in, stride = 0.0, block.c_in, block.stride
    for i in range(block.layers):
        hidden = smart_round(block.bottleneck * e)
        f1, res = _part(c_in, hidden, block.bottleneck, k, stride, res,
                        shortcut=i == 0 or stride > 1 or c_in != block.bottleneck)
        f2, res = _part(block.bottleneck, smart_round(block.c_out * e), block.c_out, k, 1, res,
                        shortcut=block.bottleneck != block.c_out)
        flops += f1 + f2
        c_in, stride = block.c_out, 1
    return flops, res


def zen_flops(blocks: tuple[Block, ...], num_classes: int = 1000, resolution: int = RESOLUTION) -> float:
    """``MasterNet.get_FLOPs(resolution)``: every block, then the classifier."""
    res, flops = resolution, 0.0
    for block in blocks:
        f, res = block_flops(block, res)
        flops += f
    return flops + blocks[-1].c_out * num_classes


# -- mutation as evolution_search does it -----------------------------------------------------
def _channel_choices(channels: int) -> list[int]:
    scaled = [channels * 2.5, channels * 2, channels * 1.5, channels * 1.25, channels,
              channels / 1.25, channels / 1.5, channels / 2, channels / 2.5]
    return sorted({smart_round(max(8, x)) for x in scaled}, reverse=True)


def _layer_choices(layers: int) -> list[int]:
    return sorted({max(0, round(x)) for x in (layers, layers + 1, layers + 2, layers - 1, layers - 2)}, reverse=True)


def candidates(block: Block) -> list[str]:
    """``gen_search_space``'s candidates for ``block``, as the multiset it draws from (sorted)."""
    if block.is_conv:
        outs = [block.c_out] if block.kind == "SuperConvK1BNRELU" else _channel_choices(block.c_out)
        return sorted({str(replace(block, c_out=c)) for c in outs})
    stored: list[list[str]] = []
    current: list[str] = []
    for kind in IDW_TYPES:
        for c_out, layers, bottleneck in itertools.product(_channel_choices(block.c_out), _layer_choices(block.layers),
                                                           _channel_choices(block.bottleneck)):
            c_out, bottleneck = smart_round(c_out), smart_round(bottleneck)
            if c_out < CHANNEL_BASE or bottleneck < CHANNEL_BASE or layers <= 0:
                continue
            current.append(str(Block(kind, block.c_in, c_out, block.stride, bottleneck, layers)))
        current = sorted(set(current))  # the peers' list(set(...)); later types are appended to it
        stored.append(current)
    return sorted(itertools.chain.from_iterable(stored))


def split_long_blocks(blocks: list[Block]) -> list[Block]:
    """``MasterNet.split(6)``: an IDW block of 6 or more sub-layers becomes two of 3."""
    out: list[Block] = []
    for block in blocks:
        if not block.is_conv and block.layers >= SPLIT_LAYERS:
            first = SPLIT_LAYERS // 2
            out.append(replace(block, layers=first))
            out.append(replace(block, c_in=block.c_out, stride=1, layers=SPLIT_LAYERS - first))
        else:
            out.append(block)
    return out


def mutate(blocks: tuple[Block, ...], rng, replaces: int = 1) -> tuple[Block, ...]:
    """``get_new_random_structure_str``: ``replaces`` draws of a block position (a position
    drawn twice is changed once), each replaced by a random candidate; then the channels
    are chained again and long blocks split. ``rng``: a ``numpy.random.Generator``."""
    chain = list(blocks)
    chosen: set[int] = set()
    for _ in range(replaces):
        position = int(rng.integers(len(chain)))
        if position in chosen:
            continue
        chosen.add(position)
        options = candidates(chain[position])
        chain[position] = parse_block(options[int(rng.integers(len(options)))])
    for i in range(1, len(chain)):
        chain[i] = replace(chain[i], c_in=chain[i - 1].c_out)
    return tuple(split_long_blocks(chain))
