"""GradAlign: agreement of per-sample gradient signs within each class, at initialisation.

Per class c (N_c ≥ 2): s_i = sign(g_i), m = sign(Σ_i g_i);
GradAlign-I  = mean_i s_i · m          (also divided by the parameter count P);
GradAlign-II = log det(S Sᵀ)           (−inf when the sign Gram matrix is singular).
Both averaged over classes. Per-sample gradients come from one batched backward pass and a
closed form per layer (:mod:`raynas.proxies.persample`), or from ``torch.func`` (vmap ∘ grad)
for networks with other layers, for the whole batch at once (or in as few chunks as the
memory budget allows); everything after is a handful of batched tensor operations and one
read-back per cell.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, replace_all_batch_norm_modules_, vmap

from raynas.probes import ProbeBatch
from raynas.proxies import persample
from raynas.proxies.base import ProbeSpec, ProxyContext, ProxyDef

BN_MODES = ("per_sample", "eval")
EXACT_FP32_COLUMNS = 1 << 23  # a ±1 dot product over fewer columns is an exact fp32 integer
BYTES_PER_SAMPLE_PARAM = 12  # per-sample gradient + the products / vmap intermediates beside it


@dataclass(frozen=True)
class GradAlignOptions:
    batch_size: int = 128
    # OPEN: per_sample = train-mode BN on each sample alone (as a batch-1 loop would do);
    # eval = BN with its initial running statistics. Measured in docs/results.md.
    bn: str = "per_sample"
    # Working memory for the per-sample gradients: whole classes go through in as few
    # passes as fit (one on NB201). How samples are grouped into passes moves fp32
    # per-sample gradients by rounding (GradAlign-I by ~1e-5 relative on NB101), so this is
    # part of the recorded config like every other option.
    memory_mb: int = 2048

    def __post_init__(self) -> None:
        if self.bn not in BN_MODES:
            raise ValueError(f"gradalign bn must be one of {BN_MODES}, got {self.bn!r}")
        if self.memory_mb < 1:
            raise ValueError(f"gradalign memory_mb must be positive, got {self.memory_mb}")


def functional_copy(model: nn.Module, bn: str) -> tuple[nn.Module, dict, dict]:
    """(network, parameters, buffers) to differentiate per sample. ``per_sample``: a private
    copy whose BN normalises each sample by its own statistics (running statistics cannot
    be updated inside vmap; the caller's network is untouched)."""
    if bn not in BN_MODES:
        raise ValueError(f"gradalign bn must be one of {BN_MODES}, got {bn!r}")
    net = replace_all_batch_norm_modules_(copy.deepcopy(model)).train() if bn == "per_sample" else model.eval()
    params = {k: p.detach() for k, p in net.named_parameters()}
    buffers = {k: b.detach() for k, b in net.named_buffers()}
    return net, params, buffers


def per_sample_flat(net: nn.Module, params: dict, buffers: dict, inputs: torch.Tensor,
                    labels: torch.Tensor) -> list[torch.Tensor]:
    """Per-sample gradients of each parameter tensor, flattened to (rows, numel), from one
    vmap call over all the rows."""

    def sample_loss(p: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = functional_call(net, (p, buffers), (x.unsqueeze(0),))
        return F.cross_entropy(logits, y.unsqueeze(0))

    grads = vmap(grad(sample_loss), in_dims=(None, 0, 0))(params, inputs, labels)
    return [g.reshape(len(labels), -1) for g in grads.values()]


def per_sample_gradients(model: nn.Module, batch: ProbeBatch, bn: str) -> dict[str, torch.Tensor]:
    """{parameter name: (N, *shape)} gradients of each sample's cross-entropy loss."""
    net, params, buffers = functional_copy(model, bn)
    flats = per_sample_flat(net, params, buffers, batch.inputs, batch.labels)
    return {k: flat.reshape(len(batch), *p.shape) for (k, p), flat in zip(params.items(), flats)}


def class_groups(labels: torch.Tensor) -> list[torch.Tensor]:
    """Row indices of each class with at least two samples (GradAlign needs pairs)."""
    labels = labels.cpu()
    classes, counts = torch.unique(labels, return_counts=True)
    groups = [torch.nonzero(labels == c).flatten() for c in classes[counts >= 2]]
    if not groups:
        raise ValueError("GradAlign needs at least one class with two or more samples in the batch")
    return groups


@dataclass(frozen=True)
class SizeGroup:
    """Consecutive classes of one size: rows ``start .. start + classes·size`` of a chunk
    viewed as (classes, size, columns) with no copy."""

    start: int
    classes: int
    size: int


@dataclass(frozen=True)
class Chunk:
    """Whole classes whose per-sample gradients are computed in one vmap call."""

    rows: torch.Tensor  # batch rows, class after class, larger classes first
    groups: tuple[SizeGroup, ...]


def plan_chunks(labels: torch.Tensor, max_rows: int) -> list[Chunk]:
    """The usable rows (classes with ≥ 2 samples) packed into as few chunks of whole classes
    as ``max_rows`` allows (a class larger than that is a chunk of its own)."""
    classes = sorted(class_groups(labels), key=len, reverse=True)
    packed: list[list[torch.Tensor]] = [[]]
    for rows in classes:
        if packed[-1] and sum(map(len, packed[-1])) + len(rows) > max_rows:
            packed.append([])
        packed[-1].append(rows)
    chunks = []
    for members in packed:
        groups, start = [], 0
        for size in sorted({len(r) for r in members}, reverse=True):
            count = sum(len(r) == size for r in members)
            groups.append(SizeGroup(start, count, size))
            start += count * size
        chunks.append(Chunk(torch.cat(members), tuple(groups)))
    return chunks


def column_blocks(flats: list[torch.Tensor], width: int) -> Iterator[torch.Tensor]:
    """(rows, ≤ width) blocks over the columns of row-aligned matrices: small ones joined,
    large ones sliced (views, no copy)."""
    pending: list[torch.Tensor] = []
    filled = 0
    for flat in flats:
        for a in range(0, flat.shape[1], width):
            piece = flat[:, a : a + width]
            if filled + piece.shape[1] > width and pending:
                yield pending[0] if len(pending) == 1 else torch.cat(pending, dim=1)
                pending, filled = [], 0
            pending.append(piece)
            filled += piece.shape[1]
    if pending:
        yield pending[0] if len(pending) == 1 else torch.cat(pending, dim=1)


class AlignmentSums:
    """Per class, accumulated over column blocks: Σ_p m_p · Σ_{i∈c} s_i,p (GA-I × n_c) and
    the sign Gram S_c S_cᵀ (float64; each block's fp32 product is exact below 2²⁴ columns)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.weighted: list[torch.Tensor] = []  # per size group: (classes,)
        self.grams: list[torch.Tensor] = []  # per size group: (classes, size, size)
        self.sizes: list[int] = []
        self.n_params = 0

    def add_chunk(self, flats: list[torch.Tensor], groups: tuple[SizeGroup, ...], width: int) -> None:
        weighted = [torch.zeros(g.classes, dtype=torch.float64, device=self.device) for g in groups]
        grams = [torch.zeros(g.classes, g.size, g.size, dtype=torch.float64, device=self.device) for g in groups]
        columns = 0
        for block in column_blocks(flats, min(width, EXACT_FP32_COLUMNS)):
            signs = torch.sign(block)
            columns += block.shape[1]
            for g, w, gram in zip(groups, weighted, grams):
                rows = slice(g.start, g.start + g.classes * g.size)
                s = signs[rows].view(g.classes, g.size, -1)
                mean_sign = torch.sign(block[rows].reshape(g.classes, g.size, -1).sum(1))
                w += (s.sum(1) * mean_sign).sum(1, dtype=torch.float64)
                gram += torch.bmm(s, s.transpose(1, 2)).double()
        self.weighted += weighted
        self.grams += grams
        self.sizes += [g.size for g in groups for _ in range(g.classes)]
        self.n_params = columns

    def scores(self) -> dict[str, float]:
        """GA-I and GA-II per class (one read-back), averaged by :func:`summarise`."""
        ga2 = []
        for gram in self.grams:
            sign, logdet = torch.linalg.slogdet(gram)
            # A nonsingular integer matrix has |det| ≥ 1: log det below log(1/2) is
            # round-off on a singular one.
            ga2.append(torch.where((sign > 0) & (logdet >= math.log(0.5)), logdet, torch.full_like(logdet, -math.inf)))
        sizes = torch.tensor(self.sizes, dtype=torch.float64, device=self.device)
        per_class_1, per_class_2 = torch.stack([torch.cat(self.weighted) / sizes, torch.cat(ga2)]).tolist()
        return summarise(per_class_1, per_class_2, self.n_params)


def summarise(per_class_1: list[float], per_class_2: list[float], n_params: int) -> dict[str, float]:
    """The GradAlign components: per-class scores averaged over classes."""
    ga1 = float(torch.tensor(per_class_1, dtype=torch.float64).mean())
    return {
        "gradalign_1": ga1,
        "gradalign_1_per_param": ga1 / n_params,
        "gradalign_2": sum(per_class_2) / len(per_class_2),
        "gradalign_classes": float(len(per_class_1)),
    }


def block_width(rows: int, device: torch.device, memory_mb: float) -> int:
    """Columns per block: on CPU blocks of ≤ 16 MB (below glibc's mmap threshold, so their
    memory is reused instead of faulted in anew); on a GPU a quarter of the budget."""
    budget = 16 * 2**20 if device.type == "cpu" else memory_mb * 2**20 / 4
    return max(1, int(budget) // (4 * rows))


def alignment_scores(gradients: Iterable[torch.Tensor], labels: torch.Tensor) -> dict[str, float]:
    """GradAlign-I, -I/P and -II from per-sample gradient tensors (each (N, ...))."""
    (chunk,) = plan_chunks(labels, len(labels))
    flats = [g.reshape(len(labels), -1)[chunk.rows.to(g.device)] for g in gradients]
    sums = AlignmentSums(flats[0].device)
    sums.add_chunk(flats, chunk.groups, block_width(len(chunk.rows), flats[0].device, 2048))
    return sums.scores()


def model_alignment(model: nn.Module, batch: ProbeBatch, bn: str, max_rows: int, width: int | None = None,
                    closed_form: bool = True) -> dict[str, float]:
    """GradAlign of ``model`` on ``batch``: per-sample gradients for chunks of at most
    ``max_rows`` samples (whole classes), reduced in column blocks of ``width``. The
    gradients come from one batched backward per chunk (:mod:`raynas.proxies.persample`)
    when every layer has a closed form (and ``closed_form``), else from vmap on one
    private copy per cell."""
    if bn not in BN_MODES:
        raise ValueError(f"gradalign bn must be one of {BN_MODES}, got {bn!r}")
    device = batch.inputs.device
    sums = AlignmentSums(device)
    batched = closed_form and persample.supports(model)
    vmapped = None
    for chunk in plan_chunks(batch.labels, max_rows):
        rows = chunk.rows.to(device)
        inputs, labels = batch.inputs[rows], batch.labels[rows]
        matrix = persample.per_sample_gradients(model, inputs, labels, bn) if batched else None
        if matrix is not None:
            flats = [matrix]
        else:
            batched = False
            vmapped = vmapped or functional_copy(model, bn)
            flats = per_sample_flat(*vmapped, inputs, labels)
        sums.add_chunk(flats, chunk.groups, width or block_width(len(rows), device, 2048))
        del flats
    return sums.scores()


def compute(model: nn.Module, batch: ProbeBatch, options: GradAlignOptions, ctx: ProxyContext) -> dict[str, float]:
    n_params = sum(p.numel() for p in model.parameters())
    max_rows = max(1, int(options.memory_mb * 2**20) // (BYTES_PER_SAMPLE_PARAM * n_params))
    width = block_width(len(batch), batch.inputs.device, options.memory_mb)
    return model_alignment(model, batch, options.bn, max_rows, width)


PROXY = ProxyDef(
    name="gradalign",
    compute=compute,
    options_cls=GradAlignOptions,
    components=("gradalign_1", "gradalign_1_per_param", "gradalign_2", "gradalign_classes"),
    headline="gradalign_1",
    probe=lambda o: ProbeSpec("real", o.batch_size, None),
    higher_is_better=True,
    per_sample_grads=True,
    bn_mode="per_sample",
    description="per-sample gradient sign alignment within classes (real labelled batch)",
    diagnostics=("gradalign_classes",),
)
