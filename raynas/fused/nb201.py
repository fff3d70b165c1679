"""K NB201 networks side by side in one module (issue 25): one forward and one backward for
all of them, whose kernel count is set by the network's positions — not by K, nor by which
ops the cells hold.

Layout: cell k owns channels ``[k·C, (k+1)·C)`` of every activation. The stem is one
convolution whose filters are the K stems' stacked (its input, the probe batch, is shared);
every later convolution is grouped, one group per cell. An edge convolves for all K cells
at once: a cell whose op there is a 1×1 convolution holds its kernel at the centre of a 3×3
one (the same products plus exact zeros), a cell with no convolution there holds zeros
(weights and BN affine), which give exact zeros; skip and pooling terms are added under
0/1 channel masks. A node sums its edges in edge order, as the per-cell network does, and a
cell's term at each edge is exactly one of those, so every cell's sums are its own.

Parameters: every fused tensor is a view of one flat parameter in which each cell's piece
of each tensor is one contiguous chunk — the cell's own tensor, built and seeded as the
per-cell path builds it, copied in — so a cell's scores do not depend on which cells share
its pass, each cell's loss is its own (summed), and after the backward every per-cell
gradient is a segment of one flat gradient: per-tensor statistics of all cells are a few
reductions per run of equal-sized chunks (:meth:`FusedNB201.chunk_rows`, :func:`chunk_moments`). Only the
arithmetic's order differs from the per-cell path — a grouped kernel adds in another order —
which moves float32 scores as another convolution kernel would
(``tests/kernel_tolerances.py``); in float64 they agree to rounding.

Cost: every edge convolves all K cells (a cell without a convolution there convolves zeros,
a 1×1 cell a 3×3 kernel), up to ~2.5× the convolution arithmetic of the per-cell networks
and 9× for 1×1 edges — nothing next to the launches it saves on a GPU, where NB201 cells
are launch-bound (docs/results.md, "Fused scoring").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from raynas.spaces.nb201_cell import EDGES
from raynas.spaces.nb201_network import InferCell, ReLUConvBN, ResNetBasicBlock, TinyNetwork, avg_pool_3x3

@dataclass(frozen=True)
class Chunk:
    """One cell's piece of one fused tensor. ``real``: the cell has this tensor (else zeros
    that compute nothing); ``weight``: a convolution's or the classifier's weight;
    ``live``: its gradient exists in the per-cell network (False for an edge whose target
    node never reaches the cell's output: computed there, but its gradient is None, not
    zero); ``centre``: a 1×1 kernel held at the centre of a 3×3 slot."""

    cell: int
    real: bool = True
    weight: bool = False
    live: bool = True
    centre: bool = False


class _Storage:
    """Collects the fused tensors — per cell a piece (its own tensor, or None for zeros) —
    then lays them out in one flat vector, grouped so that each group's tensors are
    contiguous (the 3×3 groups' centres are then one strided view per group)."""

    def __init__(self, k: int):
        self.k = k
        self.entries: list[tuple[str, tuple[int, ...], list[torch.Tensor | None], list[Chunk]]] = []

    def add(self, group: str, shape: tuple[int, ...], pieces: Sequence[torch.Tensor | None],
            chunks: Sequence[Chunk]) -> int:
        self.entries.append((group, tuple(shape), list(pieces), list(chunks)))
        return len(self.entries) - 1


@dataclass
class _Conv:
    """A fused ReLU-Conv-BN (or a bare convolution, ``bn`` None): tensor ids, geometry and
    the row of its output in the taped layers."""

    weight: int
    bn: tuple[int, int] | None
    stride: int
    padding: int
    groups: int
    tape_row: int


@dataclass
class _Edge:
    target: int
    source: int
    conv: _Conv | None
    skip: tuple[int, int] | None  # keys of its (1, K·C, 1, 1) 0/1 masks
    pool: tuple[int, int] | None


class FusedNB201(nn.Module):
    """K :class:`~raynas.spaces.nb201_network.TinyNetwork` as one module, on their device and
    dtype. ``forward`` gives logits (N, K, classes); while :attr:`tape` is a list, it
    collects ``(row, output)`` for every fused convolution and the classifier: the cells
    ``present_rows[row]`` each have that layer, their slice of ``output`` its activation.

    Everything the pass needs on the device — the flat parameter, the skip and pooling
    masks, the tape's and the gradient chunks' bookkeeping — is made here, in a few copies,
    so that the pass itself reads nothing from the host and waits for nothing until its
    one read-back."""

    def __init__(self, nets: Sequence[TinyNetwork]):
        super().__init__()
        self.k = k = len(nets)
        self._store = _Storage(k)
        self.present_rows: list[list[bool]] = []
        self._row_keys: list[object] = []  # rows of one key have one activation shape
        self._mask_rows: dict[int, list[list[bool]]] = {}  # channels → per-cell masks
        self.tape: list[tuple[int, torch.Tensor]] | None = None
        first = nets[0]
        c = first.stem[0].out_channels
        self._stem = self._conv_of([n.stem[0] for n in nets], [n.stem[1] for n in nets], "stem", 0, groups=1)
        self._blocks: list[tuple[str, object]] = []
        level = 0
        for position, block in enumerate(first.cells):
            column = [n.cells[position] for n in nets]
            if isinstance(block, ResNetBasicBlock):
                level += 1
                self._blocks.append(("reduction", self._reduction_of(column, position, level)))
                c = block.conv_a[1].out_channels
            else:
                self._blocks.append(("cell", self._cell_of(column, c, level)))
        self._last_bn = self._bn_of([n.lastact[0] for n in nets], "bn")
        self._classifier = (
            self._store.add("linear", tuple(first.classifier.weight.shape), [n.classifier.weight for n in nets],
                            [Chunk(i, weight=True) for i in range(k)]),
            self._store.add("linear", tuple(first.classifier.bias.shape), [n.classifier.bias for n in nets],
                            [Chunk(i) for i in range(k)]))
        self.classifier_row = self._tape_row([True] * k, "classifier")
        self._eps = first.stem[1].eps
        self._finish(first.classifier.weight)

    # -- building ---------------------------------------------------------------------------
    def _tape_row(self, present: Sequence[bool], key: object) -> int:
        self.present_rows.append(list(present))
        self._row_keys.append(key)
        return len(self.present_rows) - 1

    def _bn_of(self, bns: Sequence[nn.BatchNorm2d | None], group: str,
               live: Sequence[bool] | None = None) -> tuple[int, int]:
        """A fused BN's (weight, bias); a cell without one (None) holds zeros."""
        shape = next(b for b in bns if b is not None).weight.shape
        chunks = [Chunk(i, real=b is not None, live=True if live is None else live[i]) for i, b in enumerate(bns)]
        return (self._store.add(group, tuple(shape), [None if b is None else b.weight for b in bns], chunks),
                self._store.add(group, tuple(shape), [None if b is None else b.bias for b in bns], chunks))

    def _conv_of(self, convs: Sequence[nn.Conv2d | None], bns: Sequence[nn.BatchNorm2d | None] | None, group: str,
                 level: int, groups: int | None = None, live: Sequence[bool] | None = None) -> _Conv:
        """A fused convolution (with its BN) whose output is at spatial ``level``: a cell
        without one (None) holds zeros, a 1×1 kernel among 3×3 ones sits at their centre."""
        size = max(c.kernel_size[0] for c in convs if c is not None)
        ref = next(c for c in convs if c is not None and c.kernel_size[0] == size)
        shape = (ref.out_channels, ref.in_channels // ref.groups, size, size)
        chunks = [Chunk(i, real=c is not None, weight=True, live=True if live is None else live[i],
                        centre=c is not None and c.kernel_size[0] < size) for i, c in enumerate(convs)]
        pieces = [None if c is None else c.weight if c.kernel_size[0] == size else F.pad(c.weight.detach(), (1, 1, 1, 1))
                  for c in convs]
        weight = self._store.add(group if size == 3 else "other", shape, pieces, chunks)
        bn = None if bns is None else self._bn_of(bns, "bn", live)
        row = self._tape_row([c is not None for c in convs], (ref.out_channels, level))
        return _Conv(weight, bn, ref.stride[0], ref.padding[0], self.k if groups is None else groups, row)

    def _reduction_of(self, blocks: Sequence[ResNetBasicBlock], position: int,
                      level: int) -> tuple[_Conv, _Conv, _Conv]:
        def relu_conv_bn(ops: Sequence[ReLUConvBN]) -> _Conv:
            return self._conv_of([op[1] for op in ops], [op[2] for op in ops], f"reduction{position}", level)

        return (relu_conv_bn([b.conv_a for b in blocks]), relu_conv_bn([b.conv_b for b in blocks]),
                self._conv_of([b.downsample[1] for b in blocks], None, "other", level))

    def _cell_of(self, cells: Sequence[InferCell], channels: int, level: int) -> list[_Edge]:
        live = [live_edges(cell.active) for cell in cells]
        masks = self._mask_rows.setdefault(channels, [])
        edges = []
        for e, (target, source) in enumerate(EDGES):
            ops = [cell.edge_ops[e] if cell.active[e] else None for cell in cells]
            convs = [op if isinstance(op, ReLUConvBN) else None for op in ops]
            conv = None
            if any(op is not None for op in convs):
                conv = self._conv_of([None if op is None else op[1] for op in convs],
                                     [None if op is None else op[2] for op in convs], f"edges{channels}", level,
                                     live=[lv[e] for lv in live])
            rows = {}
            for kind, module in (("skip", nn.Identity), ("pool", nn.AvgPool2d)):
                on = [isinstance(op, module) for op in ops]
                if any(on):
                    rows[kind] = (channels, len(masks))
                    masks.append(on)
            edges.append(_Edge(target, source, conv, rows.get("skip"), rows.get("pool")))
        return edges

    def _finish(self, like: torch.Tensor) -> None:
        """The flat parameter, its split into fused tensors, and the device-side
        bookkeeping, in one copy per kind."""
        entries, k = self._store.entries, self.k
        groups = list(dict.fromkeys(entry[0] for entry in entries))
        # By group, then chunk size: each run of equal-sized chunks is one (chunks, size) view.
        order = sorted(range(len(entries)), key=lambda i: (groups.index(entries[i][0]), math.prod(entries[i][1])))
        self._sizes, self._shapes, self.chunks, self._ids = [], [], [], {}
        self.chunk_numels: list[int] = []  # each chunk's own values (a centred one's: its centre)
        self._runs: list[list[int]] = []  # [start, end, chunk size]
        self._centre_runs: list[list[int]] = []
        pieces: list[torch.Tensor] = []
        centred_chunks: list[int] = []
        offset = 0
        with torch.no_grad():
            zeros = like.new_zeros(max(math.prod(entry[1]) for entry in entries))
            for slot, i in enumerate(order):
                group, shape, cell_pieces, chunks = entries[i]
                numel = math.prod(shape)
                pieces += [zeros[:numel] if p is None else p.view(-1) for p in cell_pieces]
                self._ids[i] = slot
                self._sizes.append(numel * k)
                self._shapes.append(_fused_shape(group, shape, k))
                _extend(self._runs, offset, offset + numel * k, numel)
                if group.startswith("edges"):  # 3×3 edge weights: their centres are segments too
                    _extend(self._centre_runs, offset, offset + numel * k, numel // 9)
                    centred_chunks += range(len(self.chunks), len(self.chunks) + k)
                self.chunks += chunks
                self.chunk_numels += [numel // 9 if c.centre else numel for c in chunks]
                offset += numel * k
            self.flat = nn.Parameter(torch.cat(pieces))
        del self._store
        device = like.device
        # Segment j < len(chunks) is chunk j; a centred chunk's centre is segment centre_of[j].
        self.centre_of = {j: len(self.chunks) + n for n, j in enumerate(centred_chunks)}
        # 0/1 skip and pooling masks, (1, K·C, 1, 1) per edge: one copy per channel count.
        self._masks = {}
        for channels, rows in self._mask_rows.items():
            if rows:
                table = torch.tensor(rows, dtype=like.dtype, device=device).repeat_interleave(channels, dim=1)
                self._masks.update({(channels, i): row.view(1, -1, 1, 1) for i, row in enumerate(table)})
        # The tape's rows by key (one activation shape each), ascending, with their cells.
        present = torch.tensor(self.present_rows, dtype=torch.bool, device=device)
        self.row_groups: dict[object, list[int]] = {}
        for row, key in enumerate(self._row_keys):
            self.row_groups.setdefault(key, []).append(row)
        # Built stage by stage, a key's rows are consecutive: a slice of ``present`` each.
        assert all(rows == list(range(rows[0], rows[-1] + 1)) for rows in self.row_groups.values())
        self.present = present
        # The gradient chunks each proxy reads: (segment, owning cell) on the device.
        picks = {"live": lambda c: c.live, "live_weights": lambda c: c.live and c.weight, "weights": lambda c: c.weight,
                 "all": lambda c: True}
        chosen = {name: self._select(keep) for name, keep in picks.items()}
        table = torch.tensor([v for s, o in chosen.values() for v in (*s, *o)], dtype=torch.long, device=device)
        self.selections: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        start = 0
        for name, (segments, _owners) in chosen.items():
            n = len(segments)
            self.selections[name] = (table[start:start + n], table[start + n:start + 2 * n])
            start += 2 * n

    def _select(self, keep) -> tuple[list[int], list[int]]:
        """(segment, owning cell) of every real chunk ``keep(chunk)`` accepts: a centred
        chunk's segment is its centre's."""
        segments, owners = [], []
        for j, chunk in enumerate(self.chunks):
            if chunk.real and keep(chunk):
                segments.append(self.centre_of[j] if chunk.centre else j)
                owners.append(chunk.cell)
        return segments, owners

    # -- the pass ---------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = [v.view(s) for v, s in zip(torch.split(self.flat, self._sizes), self._shapes)]
        x = self._run_conv(t, self._stem, x)
        for kind, block in self._blocks:
            x = self._reduction(t, block, x) if kind == "reduction" else self._cell(t, block, x)
        weight, bias = (t[self._ids[i]] for i in self._last_bn)
        x = F.relu(F.batch_norm(x, None, None, weight, bias, training=True, eps=self._eps))
        n, c = x.shape[:2]
        pooled = x.mean((2, 3)).view(n, self.k, c // self.k)
        w, b = (t[self._ids[i]] for i in self._classifier)
        logits = torch.einsum("nkc,koc->nko", pooled, w) + b
        self._record(self.classifier_row, logits.reshape(n, -1))
        return logits

    def _record(self, row: int, output: torch.Tensor) -> None:
        if self.tape is not None:
            self.tape.append((row, output))

    def _run_conv(self, t: list[torch.Tensor], conv: _Conv, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x, t[self._ids[conv.weight]], None, conv.stride, conv.padding, 1, conv.groups)
        self._record(conv.tape_row, out)
        if conv.bn is None:
            return out
        weight, bias = (t[self._ids[i]] for i in conv.bn)
        # Train mode, batch statistics (running statistics are not part of any score).
        return F.batch_norm(out, None, None, weight, bias, training=True, eps=self._eps)

    def _reduction(self, t: list[torch.Tensor], block: tuple[_Conv, _Conv, _Conv], x: torch.Tensor) -> torch.Tensor:
        conv_a, conv_b, shortcut = block
        residual = self._run_conv(t, conv_b, F.relu(self._run_conv(t, conv_a, F.relu(x))))
        return self._run_conv(t, shortcut, F.avg_pool2d(x, 2, 2)) + residual

    def _cell(self, t: list[torch.Tensor], edges: list[_Edge], x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        relu: dict[int, torch.Tensor] = {}
        pooled: dict[int, torch.Tensor] = {}
        for target in (1, 2, 3):
            node = torch.zeros_like(x)
            for edge in edges:
                if edge.target != target:
                    continue
                source = nodes[edge.source]
                if edge.conv is not None:
                    if edge.source not in relu:
                        relu[edge.source] = F.relu(source)
                    node = node + self._run_conv(t, edge.conv, relu[edge.source])
                if edge.skip is not None:
                    node = torch.addcmul(node, source, self._masks[edge.skip])
                if edge.pool is not None:
                    if edge.source not in pooled:
                        pooled[edge.source] = avg_pool_3x3(source)
                    node = torch.addcmul(node, pooled[edge.source], self._masks[edge.pool])
            nodes.append(node)
        return nodes[3]

    # -- per-chunk statistics ---------------------------------------------------------------
    def chunk_rows(self, values: torch.Tensor) -> list[torch.Tensor]:
        """``values`` laid out as :attr:`flat` along their last dimension (e.g. its
        gradient, or per-sample gradients (rows, …)) as (…, chunks, size) views, one per run
        of equal-sized chunks, then the 3×3 edge slots' centres: chunk j of their
        concatenation is segment j (:attr:`selections`)."""
        rows = [values[..., a:b].unflatten(-1, (-1, n)) for a, b, n in self._runs]
        return rows + [values[..., a:b].unflatten(-1, (-1, 9))[..., 4].unflatten(-1, (-1, n))
                       for a, b, n in self._centre_runs]


def chunk_moments(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(max|v|, population std) of every segment (row) of ``rows`` (float64), on the device —
    a few kernels per run of equal-sized chunks, however many chunks."""
    peak = torch.cat([r.abs().amax(1) for r in rows])
    # (v − mean)² by hand, as the per-cell path: aten::std reads a scalar back on some builds.
    std = torch.cat([_centred_square(r).mean(1).sqrt() for r in rows])
    return peak, std


def _centred_square(rows: torch.Tensor) -> torch.Tensor:
    deviation = rows - rows.mean(1, keepdim=True)
    return deviation * deviation


def chunk_sums(rows: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([r.sum(1) for r in rows])


def _extend(runs: list[list[int]], start: int, end: int, size: int) -> None:
    """Append [start, end) of ``size``-element chunks to ``runs``, joining the last run
    when it ends at ``start`` with the same size."""
    if runs and runs[-1][1] == start and runs[-1][2] == size:
        runs[-1][1] = end
    else:
        runs.append([start, end, size])


def _fused_shape(group: str, shape: tuple[int, ...], k: int) -> tuple[int, ...]:
    if group == "linear":  # the classifier: one (out, in) matrix or (out,) bias per cell
        return (k, *shape) if len(shape) == 2 else (k, shape[0])
    return (k * shape[0], *shape[1:])


def live_edges(active: Sequence[bool]) -> list[bool]:
    """Whether each edge's output reaches node 3 (the cell's output) through active edges."""
    reaching = {3}
    for (target, source), on in sorted(zip(EDGES, active), key=lambda e: -e[0][0]):
        if on and target in reaching:
            reaching.add(source)
    return [on and target in reaching for (target, _), on in zip(EDGES, active)]


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
