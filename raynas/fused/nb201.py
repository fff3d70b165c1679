"""K NB201 networks side by side in one module (issue 25): one forward and one backward for
all of them, so that a pass's kernel count is set by the op groups it holds (at most four
per edge), not by K.

Layout: cell k owns channels ``[k·C, (k+1)·C)`` of every activation. The stem is one
convolution whose filters are the K stems' stacked (its input, the probe batch, is shared);
every later convolution is grouped, one group per cell; BN and ReLU act per channel, so
stacking is exactly per-cell BN. An edge whose op differs between cells is computed once
per op for the cells that have it (their channels gathered, the op applied grouped, the
result added into the target node in edge order, as the per-cell network sums it). The
classifier is a batched matrix product, one K-slice per cell.

Every fused tensor is the concatenation of the K networks' own tensors (built and seeded as
the per-cell path builds them, then copied in), so what a cell scores does not depend on
which cells share its pass: each cell's loss is its own, summed, and gradients stay per
cell. Only the arithmetic differs from the per-cell path — a grouped kernel adds in another
order — which moves float32 scores as another convolution kernel would
(``tests/kernel_tolerances.py``); in float64 they agree to rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from raynas.spaces.nb201_cell import EDGES
from raynas.spaces.nb201_network import InferCell, ReLUConvBN, ResNetBasicBlock, TinyNetwork


@dataclass
class Slot:
    """Where one per-cell tensor lives inside a fused one: cell ``cell``'s rows ``rows``.
    ``reaches_output`` is False for a tensor of an edge whose target node never reaches the
    cell's output: the per-cell network computes it, but its gradient is None there (not
    zero), so gradient proxies leave it out."""

    cell: int
    rows: slice
    reaches_output: bool = True


class Layer:
    """A fused module output: which cells' channels it holds (for per-cell activations)."""

    def __init__(self, cells: Sequence[int], channels: int):
        self.cells, self.channels = list(cells), channels


class Tape:
    """The outputs of the fused layers during one recorded forward (InTrain's activations)."""

    def __init__(self) -> None:
        self.on = False
        self.items: list[tuple[Layer, torch.Tensor]] = []

    def add(self, layer: Layer, output: torch.Tensor) -> torch.Tensor:
        if self.on:
            self.items.append((layer, output))
        return output


def _stack(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The cells' tensors, concatenated (a copy: the cells' own stay as they are)."""
    with torch.no_grad():
        return torch.cat(list(tensors), dim=0)


class FusedParams:
    """The fused parameters and, for each, the per-cell slices (cell, rows) it holds, in the
    order of each cell's own ``parameters()``."""

    def __init__(self) -> None:
        self.params: list[nn.Parameter] = []
        self.slots: list[list[Slot]] = []
        self.weights: list[bool] = []  # a convolution's or the classifier's weight (grad_params=weights)
        self.tape = Tape()

    def add(self, cells: Sequence[int], tensors: Sequence[torch.Tensor], weight: bool = False,
            live: Sequence[bool] | None = None) -> nn.Parameter:
        param = nn.Parameter(_stack(tensors))
        self.weights.append(weight)
        slots, start = [], 0
        for i, (cell, tensor) in enumerate(zip(cells, tensors)):
            slots.append(Slot(cell, slice(start, start + tensor.shape[0]), True if live is None else live[i]))
            start += tensor.shape[0]
        self.params.append(param)
        self.slots.append(slots)
        return param


class FusedBN(nn.Module):
    def __init__(self, bns: Sequence[nn.BatchNorm2d], cells: Sequence[int], store: FusedParams,
                 live: Sequence[bool] | None = None):
        super().__init__()
        self.weight = store.add(cells, [b.weight for b in bns], live=live)
        self.bias = store.add(cells, [b.bias for b in bns], live=live)
        self.eps = bns[0].eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Train mode, batch statistics (running statistics are not part of any score).
        return F.batch_norm(x, None, None, self.weight, self.bias, training=True, eps=self.eps)


class FusedConv(nn.Module):
    """The cells' convolutions of one position, grouped (or, ``shared_input``, stacked
    filters on one input)."""

    def __init__(self, convs: Sequence[nn.Conv2d], cells: Sequence[int], store: FusedParams, shared_input: bool = False,
                 live: Sequence[bool] | None = None):
        super().__init__()
        self.weight = store.add(cells, [c.weight for c in convs], weight=True, live=live)
        first = convs[0]
        self.stride, self.padding = first.stride, first.padding
        self.groups = 1 if shared_input else len(convs)
        self.layer = Layer(cells, first.out_channels)
        self.tape = store.tape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tape.add(self.layer, F.conv2d(x, self.weight, None, self.stride, self.padding, 1, self.groups))


class FusedReLUConvBN(nn.Module):
    def __init__(self, ops: Sequence[ReLUConvBN], cells: Sequence[int], store: FusedParams,
                 live: Sequence[bool] | None = None):
        super().__init__()
        self.conv = FusedConv([op[1] for op in ops], cells, store, live=live)
        self.bn = FusedBN([op[2] for op in ops], cells, store, live=live)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(F.relu(x)))


class FusedEdge(nn.Module):
    """One edge of one cell position: per op, the cells (positions in the pass) that have it."""

    def __init__(self, cells_ops: Sequence[nn.Module | None], store: FusedParams, live: Sequence[bool]):
        super().__init__()
        by_op: dict[str, list[int]] = {}
        for k, op in enumerate(cells_ops):
            if op is not None:
                by_op.setdefault(_kind(op), []).append(k)
        self.groups = [(kind, members) for kind, members in by_op.items()]
        for g, (_kind_name, members) in enumerate(self.groups):  # moved with the module: no copy per pass
            self.register_buffer(f"members_{g}", torch.tensor(members), persistent=False)
        self.ops = nn.ModuleList(
            FusedReLUConvBN([cells_ops[k] for k in members], members, store, [live[k] for k in members])
            if kind.startswith("conv") else cells_ops[members[0]]  # pooling or identity: no state, one for all
            for kind, members in self.groups)

    def add_into(self, node: torch.Tensor, source: torch.Tensor, channels: int, k_total: int) -> torch.Tensor:
        n, _, h, w = source.shape
        for g, ((_kind_name, members), op) in enumerate(zip(self.groups, self.ops)):
            if len(members) == k_total:
                node = node + op(source)
                continue
            index = getattr(self, f"members_{g}")
            picked = source.view(n, k_total, channels, h, w).index_select(1, index).reshape(n, -1, h, w)
            out = op(picked).view(n, len(members), channels, h, w)
            node = node.view(n, k_total, channels, h, w).index_add(1, index, out).view(n, -1, h, w)
        return node


def live_edges(active: Sequence[bool]) -> list[bool]:
    """Whether each edge's output reaches node 3 (the cell's output) through active edges."""
    reaching = {3}
    for (target, source), on in sorted(zip(EDGES, active), key=lambda e: -e[0][0]):
        if on and target in reaching:
            reaching.add(source)
    return [on and target in reaching for (target, _), on in zip(EDGES, active)]


def _kind(op: nn.Module) -> str:
    if isinstance(op, ReLUConvBN):
        return f"conv{op[1].kernel_size[0]}"
    return type(op).__name__


class FusedInferCell(nn.Module):
    def __init__(self, cells: Sequence[InferCell], store: FusedParams, channels: int):
        super().__init__()
        self.channels, self.k = channels, len(cells)
        live = [live_edges(cell.active) for cell in cells]
        self.edges = nn.ModuleList(
            FusedEdge([cell.edge_ops[e] if cell.active[e] else None for cell in cells], store, [lv[e] for lv in live])
            for e in range(len(EDGES)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for target in (1, 2, 3):
            node = torch.zeros_like(x)
            for e, (t, source) in enumerate(EDGES):
                if t == target:
                    node = self.edges[e].add_into(node, nodes[source], self.channels, self.k)
            nodes.append(node)
        return nodes[3]


class FusedReduction(nn.Module):
    def __init__(self, blocks: Sequence[ResNetBasicBlock], store: FusedParams):
        super().__init__()
        cells = range(len(blocks))
        self.conv_a = FusedReLUConvBN([b.conv_a for b in blocks], cells, store)
        self.conv_b = FusedReLUConvBN([b.conv_b for b in blocks], cells, store)
        self.pool = blocks[0].downsample[0]
        self.shortcut = FusedConv([b.downsample[1] for b in blocks], cells, store)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(self.pool(x)) + self.conv_b(self.conv_a(x))


class FusedNB201(nn.Module):
    """K :class:`~raynas.spaces.nb201_network.TinyNetwork` as one module. ``forward`` gives
    logits (N, K, classes); while ``store.tape.on``, the tape holds every fused convolution's
    (and the classifier's) output, which split by cell are each cell's layer activations;
    ``store`` maps every fused parameter back to the cells' own."""

    def __init__(self, nets: Sequence[TinyNetwork]):
        super().__init__()
        self.k = len(nets)
        store = FusedParams()
        cells = range(self.k)
        self.stem_conv = FusedConv([n.stem[0] for n in nets], cells, store, shared_input=True)
        self.stem_bn = FusedBN([n.stem[1] for n in nets], cells, store)
        blocks: list[nn.Module] = []
        channels = nets[0].stem[0].out_channels
        for position, first in enumerate(nets[0].cells):
            column = [n.cells[position] for n in nets]
            if isinstance(first, ResNetBasicBlock):
                blocks.append(FusedReduction(column, store))
                channels = first.conv_a[1].out_channels
            else:
                blocks.append(FusedInferCell(column, store, channels))
        self.blocks = nn.Sequential(*blocks)
        self.last_bn = FusedBN([n.lastact[0] for n in nets], cells, store)
        self.classifier_weight = store.add(cells, [n.classifier.weight.unsqueeze(0) for n in nets], weight=True)
        self.classifier_bias = store.add(cells, [n.classifier.bias.unsqueeze(0) for n in nets])
        self.classifier_layer = Layer(cells, nets[0].classifier.out_features)
        self.store = store

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.last_bn(self.blocks(self.stem_bn(self.stem_conv(x)))))
        n, c = x.shape[:2]
        pooled = x.mean((2, 3)).view(n, self.k, c // self.k)
        logits = torch.einsum("nkc,koc->nko", pooled, self.classifier_weight) + self.classifier_bias.squeeze(1)
        self.store.tape.add(self.classifier_layer, logits.reshape(n, -1))
        return logits


def split_by_cell(layer: Layer, activation: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
    """(cell, that cell's channels of ``activation``) for each cell the layer holds."""
    c = layer.channels
    return [(cell, activation[:, i * c:(i + 1) * c]) for i, cell in enumerate(layer.cells)]


def ignores_input(logits: torch.Tensor) -> torch.Tensor:
    """(K,) bool, on the device: cells whose logits (N, K, classes) are the same for every
    input (the per-cell path's DegenerateNetwork)."""
    detached = logits.detach()
    return (detached == detached[:1]).flatten(2).all(2).all(0) & (len(detached) > 1)


def summed_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each cell's mean cross-entropy, summed: each cell's gradients are those of its own loss."""
    k = logits.shape[1]
    per_sample = F.cross_entropy(logits.transpose(1, 2), labels.unsqueeze(1).expand(-1, k), reduction="none")
    return per_sample.mean(0).sum()
