"""GradAlign: agreement of per-sample gradient signs within each class, at initialisation.

Per class c (N_c ≥ 2): s_i = sign(g_i), m = sign(Σ_i g_i);
GradAlign-I  = mean_i s_i · m          (also divided by the parameter count P);
GradAlign-II = log det(S Sᵀ)           (−inf when the sign Gram matrix is singular).
Both averaged over classes. Per-sample gradients come from one batched backward pass and a
closed form per layer (:mod:`raynas.proxies.persample`), or from ``torch.func`` (vmap ∘ grad)
for networks with other layers, for the whole batch at once (or in as few chunks as the
memory budget allows); everything after is a handful of batched tensor operations and one
read-back per cell.

Rounding noise (``noise_tol``, default 0: off): with per-sample BN, a BN shift whose
per-channel constant a later BN removes has an exact per-sample gradient of zero; in
floating point it holds rounding noise, whose signs are coin flips. ``noise_tol`` > 0 makes
a tensor whose per-sample max|g| is at most ``noise_tol`` times that sample's largest |g|
count as zero for that sample. It is off by default because measurement found no gap to
put it in and no gain (docs/history.md, "Rounding noise in gradients"): over 20 NB201
cells the noise reaches 1.7e-7 of a sample's largest |g| while real tensors go down to
1e-12, and at 1e-10, 1e-8 or 1e-6 GA-I moves between two convolution kernels by as much
as without it (9e-5 to 1.6e-4): what moves GA-I is ReLU inputs within rounding of 0, which
flip between kernels (``tests/kernel_tolerances.py``), not the noise tensors.
"""

from __future__ import annotations

import copy
import math
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, replace_all_batch_norm_modules_, vmap

from raynas.probes import ProbeBatch
from raynas.proxies import persample
from raynas.proxies.base import ProbeSpec, ProxyContext, ProxyDef

BN_MODES = ("per_sample", "eval")
EXACT_FP32_COLUMNS = 1 << 23  # a ±1 dot product over fewer columns is an exact fp32 integer
CPU_BLOCK_BYTES = 8 * 2**20  # per block of per-sample gradients on a CPU (benchmarks/gradalign_blocks.py)
BYTES_PER_SAMPLE_PARAM = 12  # per-sample gradient + the products / vmap intermediates beside it
HELD_NUMEL = 4096  # tensors this small wait for the scale of the rounding-noise test (SignStream)
NOISE_TOL = 0.0  # off: measured no gap and no gain (module doc)


@dataclass(frozen=True)
class GradAlignOptions:
    batch_size: int = 128
    # OPEN: per_sample = train-mode BN on each sample alone (as a batch-1 loop would do);
    # eval = BN with its initial running statistics. Measured in docs/history.md.
    bn: str = "per_sample"
    # Working memory for the per-sample gradients: whole classes go through in as few
    # passes as fit (one on NB201). How samples are grouped into passes moves fp32
    # per-sample gradients by rounding (GradAlign-I by ~1e-5 relative on NB101), so this is
    # part of the recorded config like every other option.
    memory_mb: int = 2048
    # per-sample gradient tensors with max|g| <= noise_tol · (the sample's largest |g|)
    # count as zero (SignStream); off by default (module doc), as it was before the option existed
    noise_tol: float = field(default=NOISE_TOL, metadata={"absent": 0.0})

    def __post_init__(self) -> None:
        if self.bn not in BN_MODES:
            raise ValueError(f"gradalign bn must be one of {BN_MODES}, got {self.bn!r}")
        if self.memory_mb < 1:
            raise ValueError(f"gradalign memory_mb must be positive, got {self.memory_mb}")
        if not 0 <= self.noise_tol < 1:
            raise ValueError(f"gradalign noise_tol must be in [0, 1), got {self.noise_tol}")


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
class Chunk:
    """Whole classes whose per-sample gradients are computed in one pass."""

    rows: torch.Tensor  # batch rows, class after class, larger classes first
    sizes: tuple[int, ...]  # samples of each class, in that order

    @property
    def slots(self) -> torch.Tensor:
        """Where each row goes in the padded (classes × largest class) layout that the
        alignment sums work on: every class then has as many rows as the largest, the
        missing ones zero (a zero gradient has sign 0 and adds nothing to any sum)."""
        width = self.sizes[0]
        return torch.cat([torch.arange(size) + k * width for k, size in enumerate(self.sizes)])


def plan_chunks(labels: torch.Tensor, max_rows: int) -> list[Chunk]:
    """The usable rows (classes with ≥ 2 samples) packed into as few chunks of whole classes
    as ``max_rows`` allows (a class larger than that is a chunk of its own)."""
    classes = sorted(class_groups(labels), key=len, reverse=True)
    packed: list[list[torch.Tensor]] = [[]]
    for rows in classes:
        if packed[-1] and sum(map(len, packed[-1])) + len(rows) > max_rows:
            packed.append([])
        packed[-1].append(rows)
    return [Chunk(torch.cat(members), tuple(len(r) for r in members)) for members in packed]


class AlignmentSums:
    """Per class, accumulated over column blocks of per-sample gradients in the padded
    layout of :attr:`Chunk.slots`: the sign Gram S_c S_cᵀ and s_i · m for every sample
    (their sum is GA-I × n_c), both from one batched product per block. They are
    integers, accumulated in fp32, which holds them exactly below 2²⁴ columns, and moved
    to float64 before that. The blocks of a chunk come between :meth:`start_chunk` and
    :meth:`end_chunk`, in any column order and width: every sum is exact, so the blocking
    cannot change a score."""

    def __init__(self, device: torch.device, n_params: int, dtype: torch.dtype = torch.float32):
        self.device = device
        self.n_params = n_params
        self.dtype = dtype  # of the blocks, the signs and the exact accumulator (float64 holds more)
        # (chunk, float64 (classes, rows + 1, rows + 1)): per class the Gram of its signs with
        # the mean sign as a last row, [S; m] [S; m]ᵀ, whose last column holds each s_i · m
        self.chunks: list[tuple[Chunk, torch.Tensor]] = []
        self._open: tuple[Chunk, torch.Tensor] | None = None
        self._exact: torch.Tensor | None = None  # its fp32 accumulator
        self._signs: torch.Tensor | None = None  # a block's signs and mean signs
        self._columns = 0  # columns in the fp32 accumulator

    def start_chunk(self, chunk: Chunk) -> None:
        shape = (len(chunk.sizes), chunk.sizes[0] + 1, chunk.sizes[0] + 1)
        self._open = (chunk, torch.zeros(shape, dtype=torch.float64, device=self.device))
        self._exact = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self._signs = None
        self._columns = 0

    def add_block(self, block: torch.Tensor) -> None:
        """One (classes · largest class, columns) block, at most 2²³ columns."""
        chunk = self._open[0]
        classes, width, columns = len(chunk.sizes), chunk.sizes[0], block.shape[1]
        if self._columns + columns > EXACT_FP32_COLUMNS:
            self._move_to_float64()
        if self._signs is None or self._signs.shape[2] < columns:
            self._signs = block.new_empty(classes, width + 1, columns)
        # Each class's signs with its mean sign as one more row: one product gives the
        # Gram (rows × rows) and every s_i · m (last column) at once.
        signs = self._signs[:, :, :columns]
        g = block.view(classes, width, columns)
        torch.sign(g, out=signs[:, :width])
        torch.sign(g.sum(1, keepdim=True), out=signs[:, width:])
        self._exact.baddbmm_(signs, signs.transpose(1, 2))
        self._columns += columns

    def _move_to_float64(self) -> None:
        self._open[1].add_(self._exact)
        self._exact.zero_()
        self._columns = 0

    def end_chunk(self) -> None:
        self._move_to_float64()
        self.chunks.append(self._open)
        self._open = self._exact = self._signs = None

    def scores(self) -> dict[str, float]:
        """GA-I and GA-II per class, averaged by :func:`summarise`: the sums come to the
        host in one transfer, and the small log-determinants are taken there."""
        on_host = torch.cat([gram.flatten() for _, gram in self.chunks]).cpu().split([g.numel() for _, g in self.chunks])
        aligned, sizes, grams_by_size = [], [], {}
        for (chunk, _), flat in zip(self.chunks, on_host):
            width = chunk.sizes[0]
            extended = flat.view(-1, width + 1, width + 1)
            aligned.append(extended[:, :width, width].sum(1))  # the padding rows hold zeros
            for k, size in enumerate(chunk.sizes):
                grams_by_size.setdefault(size, []).append((len(sizes), extended[k, :size, :size]))
                sizes.append(size)
        per_class_1 = (torch.cat(aligned) / torch.tensor(sizes, dtype=torch.float64)).tolist()
        per_class_2 = [math.nan] * len(per_class_1)
        for members in grams_by_size.values():
            sign, logdet = torch.linalg.slogdet(torch.stack([g for _, g in members]))
            # A nonsingular integer matrix has |det| ≥ 1: log det below log(1/2) is
            # round-off on a singular one.
            values = torch.where((sign > 0) & (logdet >= math.log(0.5)), logdet, torch.full_like(logdet, -math.inf))
            for (k, _), value in zip(members, values.tolist()):
                per_class_2[k] = value
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


class NoiseInStreamedTensor(Exception):
    """A tensor whose pieces were already reduced turned out to be rounding noise for some
    sample: the chunk is taken again with every piece held until the scale is known."""


class SignStream:
    """Per-sample gradient pieces (chunk rows, columns), as they are formed, gathered into
    blocks of ``width`` columns for :class:`AlignmentSums`, each block moved into the
    padded layout of :attr:`Chunk.slots` (when a class is smaller than the largest) by one
    copy. On a CPU the blocks are cache-sized, so that the signs and sums read them from
    cache: on NB201 the (N, P) matrix they replace holds up to 128 × 1.1 M floats, written
    once and read four times.

    With ``noise_tol`` > 0, a tensor whose per-sample max|g| is at most ``noise_tol`` times
    that sample's largest |g| counts as zero for that sample (its signs are coin flips of
    rounding noise). The largest |g| is known only at the end, so small tensors (at most
    :data:`HELD_NUMEL` elements: BN affine parameters and biases, where such noise sits)
    are held until then; a larger one found to be noise raises
    :class:`NoiseInStreamedTensor` (``hold_all`` then holds every tensor)."""

    def __init__(self, sums: AlignmentSums, chunk: Chunk, slots: torch.Tensor, width: int, like: torch.Tensor,
                 noise_tol: float = 0.0, hold_all: bool = False):
        self.sums = sums
        self.width = max(1, min(width, EXACT_FP32_COLUMNS, sums.n_params))
        self.buffer = like.new_empty(len(slots), self.width)
        padded_rows = len(chunk.sizes) * chunk.sizes[0]
        self.padded = like.new_zeros(padded_rows, self.width) if padded_rows > len(slots) else None
        self.slots = slots
        self.filled = 0
        self.noise_tol = noise_tol
        self.hold_all = hold_all
        self.peaks: dict[int, torch.Tensor] = {}  # per tensor (by id): per-row max |g| so far
        self.held: dict[int, list[torch.Tensor]] = {}  # pieces of the tensors held to the end

    def write(self, param: torch.Tensor, piece: torch.Tensor) -> None:
        """The next (rows, columns) ``piece`` of ``param``'s per-sample gradients."""
        if self.noise_tol:
            key, peak = id(param), piece.abs().amax(1)
            self.peaks[key] = peak if key not in self.peaks else torch.maximum(self.peaks[key], peak)
            if self.hold_all or param.numel() <= HELD_NUMEL:
                self.held.setdefault(key, []).append(piece)
                return
        self._reduce(piece)

    def _reduce(self, piece: torch.Tensor) -> None:
        start, columns = 0, piece.shape[1]
        while start < columns:
            take = min(columns - start, self.width - self.filled)
            self.buffer[:, self.filled : self.filled + take].copy_(piece if take == columns else piece[:, start : start + take])
            self.filled += take
            start += take
            if self.filled == self.width:
                self._flush_block()

    def flush(self) -> None:
        """The end of the chunk: the held tensors, their noise zeroed, and the last block."""
        if self.peaks:
            keys = list(self.peaks)
            peaks = torch.stack([self.peaks[k] for k in keys])  # (tensors, rows)
            noise = peaks <= self.noise_tol * peaks.amax(0)
            streamed = torch.tensor([k not in self.held for k in keys], device=noise.device)
            if bool((noise & streamed[:, None]).any()):
                raise NoiseInStreamedTensor
            for k, is_noise in zip(keys, noise):
                for piece in self.held.get(k, ()):
                    self._reduce(piece.masked_fill(is_noise[:, None], 0))
            self.peaks, self.held = {}, {}
        self._flush_block()

    def _flush_block(self) -> None:
        if not self.filled:
            return
        block = self.buffer[:, : self.filled]
        if self.padded is not None:
            block = self.padded[:, : self.filled].index_copy_(0, self.slots, block)
        self.sums.add_block(block)
        self.filled = 0


def block_width(rows: int, device: torch.device, memory_mb: float) -> int:
    """Columns per block: on a CPU :data:`CPU_BLOCK_BYTES`, small enough that the signs and
    sums of a block read it from cache, large enough that blocks cost few calls (measured
    in docs/history.md); on a GPU, where each block costs kernel launches, a quarter of the
    memory budget."""
    budget = CPU_BLOCK_BYTES if device.type == "cpu" else memory_mb * 2**20 / 4
    return max(1, int(budget) // (4 * rows))


def alignment_scores(gradients: Iterable[torch.Tensor], labels: torch.Tensor,
                     noise_tol: float = 0.0) -> dict[str, float]:
    """GradAlign-I, -I/P and -II from per-sample gradient tensors (each (N, ...))."""
    (chunk,) = plan_chunks(labels, len(labels))
    flats = [g.reshape(len(labels), -1) for g in gradients]
    device = flats[0].device
    sums = AlignmentSums(device, sum(f.shape[1] for f in flats), flats[0].dtype)
    sums.start_chunk(chunk)
    stream = SignStream(sums, chunk, chunk.slots.to(device), block_width(len(chunk.rows), device, 2048), flats[0],
                        noise_tol, hold_all=True)
    for flat in flats:
        stream.write(flat, flat[chunk.rows.to(device)])
    stream.flush()
    sums.end_chunk()
    return sums.scores()


_PLANS: dict[tuple[int, int], tuple[weakref.ref, list]] = {}


def batch_chunks(batch: ProbeBatch, max_rows: int) -> list[tuple[Chunk, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(chunk, its slots, its inputs, its labels) for each chunk of ``batch``, on the
    batch's device: planned once per probe batch and chunk size, not once per cell
    (planning reads the labels to the host)."""
    key = (id(batch.inputs), max_rows)
    known = _PLANS.get(key)
    if known is not None and known[0]() is batch.inputs:
        return known[1]
    if len(_PLANS) > 32:  # entries of probe batches long gone
        _PLANS.clear()
    device = batch.inputs.device
    plan = [(chunk, chunk.slots.to(device), batch.inputs[rows], batch.labels[rows])
            for chunk in plan_chunks(batch.labels, max_rows) for rows in [chunk.rows.to(device)]]
    _PLANS[key] = (weakref.ref(batch.inputs), plan)
    return plan


def model_alignment(model: nn.Module, batch: ProbeBatch, bn: str, max_rows: int, width: int | None = None,
                    closed_form: bool = True, noise_tol: float = 0.0) -> dict[str, float]:
    """GradAlign of ``model`` on ``batch``: per-sample gradients for chunks of at most
    ``max_rows`` samples (whole classes), reduced in column blocks of ``width``, rounding
    noise below ``noise_tol`` zeroed (:class:`SignStream`). The gradients come from one
    batched backward per chunk, streamed into the blocks as they are formed
    (:mod:`raynas.proxies.persample`), when every layer has a closed form (and
    ``closed_form``); else from vmap on one private copy per cell."""
    if bn not in BN_MODES:
        raise ValueError(f"gradalign bn must be one of {BN_MODES}, got {bn!r}")
    device = batch.inputs.device
    sums = AlignmentSums(device, sum(p.numel() for p in model.parameters()), batch.inputs.dtype)
    batched = closed_form and persample.supports(model)
    vmapped = None
    for chunk, slots, inputs, labels in batch_chunks(batch, max_rows):
        for hold_all in (False, True):
            sums.start_chunk(chunk)
            stream = SignStream(sums, chunk, slots, width or block_width(len(labels), device, 2048), inputs,
                                noise_tol, hold_all)
            try:
                if batched:
                    batched = persample.stream_per_sample_gradients(model, inputs, labels, bn, stream.write)
                if not batched:
                    vmapped = vmapped or functional_copy(model, bn)
                    for param, flat in zip(vmapped[1].values(), per_sample_flat(*vmapped, inputs, labels)):
                        stream.write(param, flat)
                stream.flush()
                break
            except NoiseInStreamedTensor:
                continue  # once more, every tensor held until the scale is known
        sums.end_chunk()
    return sums.scores()


def compute(model: nn.Module, batch: ProbeBatch, options: GradAlignOptions, ctx: ProxyContext) -> dict[str, float]:
    n_params = sum(p.numel() for p in model.parameters())
    max_rows = max(1, int(options.memory_mb * 2**20) // (BYTES_PER_SAMPLE_PARAM * n_params))
    width = block_width(len(batch), batch.inputs.device, options.memory_mb)
    return model_alignment(model, batch, options.bn, max_rows, width, noise_tol=options.noise_tol)


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
