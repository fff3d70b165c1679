"""Scoring API: build a cell once, run every requested proxy on it, return one flat row.

``score(space, arch, proxies)`` is the one-shot form; :class:`CellScorer` keeps the probe
batches (built once) for many cells and is what the Ray actors wrap. A cell's row depends
only on (space, cell, proxy config, dataset, seed): the weights are drawn from a seed
derived from those, and every proxy starts from the same initial weights. Proxies that
differentiate the same batch share one gradient pass per cell; its time is billed to the
first of them in the requested order.
"""

from __future__ import annotations

import gc
import logging
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch

from raynas.measure import measured
from raynas.precision import DEFAULT_PRECISION
from raynas.probes import ProbeBatch, gaussian_batch, ones_batch, real_batch
from raynas.proxies.base import ConfiguredProxy, DegenerateNetwork, ProbeSpec, ProxyContext
from raynas.rows import (BUILD_TIME_COLUMN, STATUS_DEGENERATE, STATUS_ERROR, STATUS_OK, measure_columns,
                         row_columns)
from raynas.seeding import derive_seed, seeded
from raynas.spaces import SearchSpace
from raynas.spec import ScoringSpec

logger = logging.getLogger("raynas.scoring")


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """CUDA when available unless told otherwise."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def cpu_threads_now() -> tuple[int, str]:
    """Torch CPU threads for a scorer that was not told how many: the cores this process may
    use, less those busy now (1-minute load average), at most torch's default. NB201's
    layers are too small to gain much from more threads, while threads that wait for busy
    cores cost a lot (a loaded 2-core machine scored ~40x slower at torch's default)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    threads = max(1, min(TORCH_DEFAULT_THREADS, round(usable - busy)))
    return threads, f"{usable} usable cores, {busy:.1f} busy"


TORCH_DEFAULT_THREADS = torch.get_num_threads()  # before any scorer changed it
_told_threads = False


def set_cpu_threads(threads: int | None) -> int:
    """Set torch's CPU thread count (process-wide) for scoring; None chooses one with
    :func:`cpu_threads_now` and says so once per process when it is below torch's default."""
    global _told_threads
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
        return threads
    chosen, why = cpu_threads_now()
    if chosen < TORCH_DEFAULT_THREADS and not _told_threads:
        logger.warning("scoring with %d torch CPU thread(s) (%s); pass threads=N to CellScorer or score() "
                       "to choose", chosen, why)
        _told_threads = True
    torch.set_num_threads(chosen)
    return chosen


class InitialState:
    """A cell's initial parameters and buffers, put back between proxies without a full
    state_dict reload: the buffers always (a train-mode forward moves BN running
    statistics inside the kernel, which no version counter records; they are small), the
    parameters only when a proxy changed one in place (its version counter moved) — each
    group in one foreach copy."""

    def __init__(self, model: torch.nn.Module):
        self.params = list(model.parameters())
        self.buffers = list(model.buffers())
        self.saved_params = [p.detach().clone() for p in self.params]
        self.saved_buffers = [b.detach().clone() for b in self.buffers]
        self.versions = [p._version for p in self.params]

    def restore(self) -> None:
        changed = [i for i, p in enumerate(self.params) if p._version != self.versions[i]]
        with torch.no_grad():
            if self.buffers:
                torch._foreach_copy_(self.buffers, self.saved_buffers)
            if changed:
                torch._foreach_copy_([self.params[i] for i in changed], [self.saved_params[i] for i in changed])
        for i in changed:
            self.versions[i] = self.params[i]._version


class CellScorer:
    """Scores cells of one space with a fixed set of configured proxies on one device."""

    def __init__(
        self,
        space: str | SearchSpace,
        proxies: str | Sequence[str | ConfiguredProxy],
        dataset: str = "cifar10",
        seed: int = 0,
        device: str | torch.device | None = None,
        measure_memory: bool = True,
        threads: int | None = None,
        precision: str = DEFAULT_PRECISION,
        cells_per_pass: int | None = None,
    ):
        """``threads``: torch's CPU threads, process-wide (None: the cores not busy now, see
        :func:`cpu_threads_now`; the Ray actors pass their CPUs). On a GPU it only sets
        the host threads. ``precision``: float32, or float64 (:mod:`raynas.precision`).
        ``cells_per_pass``: :meth:`iter_scores` scores this many cells in one fused pass
        where a proxy and space allow it (:mod:`raynas.fused`; a number forces it, even 1);
        None chooses per device (:func:`auto_cells_per_pass`). It changes what a cell scores
        only as another convolution kernel would (within ``tests/kernel_tolerances.py``:
        the fused path's kernels add in another order, and GradAlign's signs of rounding
        noise can differ), so runs do not record it."""
        self._setup(ScoringSpec.resolve(space, proxies, dataset, seed, precision), device, measure_memory, threads,
                    cells_per_pass)

    @classmethod
    def from_spec(cls, spec: ScoringSpec, device: str | torch.device | None = None, measure_memory: bool = True,
                  threads: int | None = None, cells_per_pass: int | None = None,
                  device_share: float = 1.0) -> CellScorer:
        """A scorer for a resolved spec (the actors' path: the spec a run recorded).
        ``device_share``: the part of its device's memory this scorer may fill (an actor
        packed with others on one GPU: its fraction), for the cells per fused pass."""
        scorer = cls.__new__(cls)
        scorer._setup(spec, device, measure_memory, threads, cells_per_pass, device_share)
        return scorer

    def _setup(self, spec: ScoringSpec, device: str | torch.device | None, measure_memory: bool,
               threads: int | None, cells_per_pass: int | None = None, device_share: float = 1.0) -> None:
        self.spec = spec
        self.measure_memory = measure_memory
        self.space = spec.space
        self.proxies = list(spec.proxies)
        self.dataset = spec.dataset
        self.seed = spec.seed
        self.device = pick_device(device)
        use_threads = self.device.type == "cpu" or threads is not None
        self.threads = set_cpu_threads(threads) if use_threads else torch.get_num_threads()
        if self.device.type == "cuda":
            # Full fp32 (no TF32) in convolutions and matmuls, so that a cell scores the same
            # on a GPU as on a CPU up to rounding: TF32 keeps 10 mantissa bits, and GradAlign
            # reads the signs of small gradients. These kernels are launch-bound anyway.
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        if cells_per_pass is not None and cells_per_pass < 1:
            raise ValueError(f"cells_per_pass must be at least 1, got {cells_per_pass}")
        # Probes are built up front: a missing dataset fails here, before any cell is scored.
        self._probes: dict[ProbeSpec, ProbeBatch | None] = {}
        self._shared_needs: dict[ProbeSpec, frozenset[str]] = {}
        for cp in self.proxies:
            spec = cp.probe_spec()
            if spec not in self._probes:
                self._probes[spec] = self._make_probe(spec)
            self._shared_needs[spec] = self._shared_needs.get(spec, frozenset()) | cp.proxy.shares
        # An explicit size forces the fused path (even of one cell); auto fuses where it pays
        # (FUSED_BY_DEFAULT), as many cells as this scorer's share of the device's memory holds.
        candidates = [cp for cp in self.proxies if fusable(self.space, cp)]
        if cells_per_pass is not None:
            self.cells_per_pass, self.cells_per_pass_reason = cells_per_pass, "given"
        elif candidates and FUSED_BY_DEFAULT.get(self.device.type):
            self.cells_per_pass, self.cells_per_pass_reason = self._measured_cells_per_pass(candidates, device_share)
            logger.warning("%d cells per fused pass: %s", self.cells_per_pass, self.cells_per_pass_reason)
        else:
            self.cells_per_pass, self.cells_per_pass_reason = auto_cells_per_pass(self.device)
        fuse = cells_per_pass is not None or self.cells_per_pass > 1
        self.fused_proxies = candidates if fuse else []

    # -- schema -------------------------------------------------------------------------
    @property
    def score_columns(self) -> list[str]:
        return [c for cp in self.proxies for c in cp.columns]

    @property
    def measure_columns(self) -> list[str]:
        return [c for cp in self.proxies for c in measure_columns(cp.label)]

    @property
    def columns(self) -> list[str]:
        return row_columns(self.score_columns, [cp.label for cp in self.proxies])

    def config(self) -> dict[str, Any]:
        """Everything that determines a row's scores (recorded with every run)."""
        return self.spec.config()

    # -- scoring ------------------------------------------------------------------------
    def score(self, arch: int | str) -> dict[str, Any]:
        """One row for one cell; proxy failures become NaN plus status/error, never raise."""
        index = self.space.index_of(arch)
        model, initial, seconds = self._build(index)
        return self._score_built(index, model, initial, seconds)

    def _build(self, index: int) -> tuple[torch.nn.Module, InitialState, float]:
        """The cell's network from its seed (and its initial state), and the seconds it took."""
        with measured(self.device, memory=False) as build:
            with seeded(derive_seed(self.seed, self.space.name, index)):
                model = self.space.build(index, self.dataset.num_classes)
            model.to(self.device, self.spec.dtype)
            initial = InitialState(model)
        return model, initial, build.seconds

    def _score_built(self, index: int, model: torch.nn.Module, initial: InitialState, build_seconds: float,
                     skip: Sequence[ConfiguredProxy] = ()) -> dict[str, Any]:
        """The row of a built cell, every proxy but those in ``skip`` scored (a fused pass
        fills them in)."""
        row: dict[str, Any] = dict.fromkeys(self.columns, math.nan)
        row.update(space=self.space.name, index=index, arch=self.space.arch_str(index),
                   dataset=self.dataset.name, seed=self.seed, device=str(self.device),
                   status=STATUS_OK, error="")
        degenerate = self.space.is_degenerate(index)
        if degenerate:
            row["status"] = STATUS_DEGENERATE
        errors: list[str] = []
        cell_seed = derive_seed(self.seed, self.space.name, index)
        row[BUILD_TIME_COLUMN] = build_seconds
        shared: dict = {}  # one cell's reusable work (the shared gradient pass)
        for i, cp in enumerate(self.proxies):
            if (degenerate and not cp.proxy.structural) or cp in skip:
                continue
            if i:
                initial.restore()
            model.zero_grad(set_to_none=True)
            ctx = ProxyContext(self.device, self.dataset.num_classes, derive_seed(cell_seed, cp.seed_key),
                               shared=shared, shared_needs=self._shared_needs[cp.probe_spec()])
            try:
                with measured(self.device, self.measure_memory) as m, seeded(ctx.seed):
                    values = cp.proxy.compute(model, self._probes[cp.probe_spec()], cp.options, ctx)
                row.update(zip(cp.columns, (float(values[c]) for c in cp.proxy.components)))
                row.update(zip(measure_columns(cp.label), (m.seconds, m.peak_mb)))
            except DegenerateNetwork as exc:
                if row["status"] != STATUS_ERROR:  # an error is the stronger status, whatever the order
                    row["status"] = STATUS_DEGENERATE
                errors.append(f"{cp.label}: {exc}")
            except Exception as exc:  # noqa: BLE001 — one bad cell must not stop a batch
                row["status"] = STATUS_ERROR
                errors.append(f"{cp.label}: {type(exc).__name__}: {exc}")
                logger.exception("cell %d: proxy %s failed", index, cp.label)
                self._release()
        row["error"] = "; ".join(errors)
        return row

    def iter_scores(self, cells: Iterable[int | str]) -> Iterator[dict[str, Any]]:
        """Rows for many cells, in order; the plain-Python path the Ray actors share. With
        fusable proxies on the fused path, cells go ``cells_per_pass`` at a time."""
        if not self.fused_proxies:
            for n, cell in enumerate(cells, start=1):
                yield self.score(cell)
                if n % 50 == 0:
                    self._release()
            return
        chunk: list[int | str] = []
        for cell in cells:
            chunk.append(cell)
            if len(chunk) == self.cells_per_pass:
                yield from self._score_fused(chunk)
                chunk = []
        if chunk:
            yield from self._score_fused(chunk)

    def _score_fused(self, cells: Sequence[int | str]) -> list[dict[str, Any]]:
        """Rows of a few cells: the fusable proxies in one pass over all of them, the others
        cell by cell (each proxy still starts from the cell's initial weights)."""
        from raynas.fused import fused_scores

        indices = [self.space.index_of(c) for c in cells]
        built = [self._build(i) for i in indices]
        rows = [self._score_built(i, m, init, secs, skip=self.fused_proxies)
                for i, (m, init, secs) in zip(indices, built)]
        for _model, initial, _ in built:
            initial.restore()
        live = [k for k, i in enumerate(indices) if not self.space.is_degenerate(i)]
        if live:
            try:
                with measured(self.device, self.measure_memory) as m:
                    values = fused_scores(self.fused_proxies, [built[k][0] for k in live], self._probes)
            except Exception as exc:  # noqa: BLE001 — e.g. out of memory at this K: the cells go one by one
                first_line = (str(exc).strip().splitlines() or [""])[0]
                logger.warning("cells %s: the fused pass failed (%s: %s); scoring them cell by cell",
                               [indices[k] for k in live], type(exc).__name__, first_line)
                self._release()
                for k in live:
                    model, initial, seconds = built[k]
                    initial.restore()
                    rows[k] = self._score_built(indices[k], model, initial, seconds)
                live = []
            # The pass's time is billed to the first fused proxy, as a shared per-cell pass is.
            for n, cp in enumerate(self.fused_proxies):
                for k, value in zip(live, values[cp.label] if live else ()):
                    self._fill(rows[k], cp, value, m.seconds / len(live) if n == 0 else 0.0, m.peak_mb)
        del built
        self._release()
        return rows

    def _fill(self, row: dict[str, Any], cp: ConfiguredProxy, value: Any, seconds: float, peak_mb: float) -> None:
        """One fused proxy's result into a row: components, or the status the per-cell path
        would give (a pass's time is shared equally; its peak memory is the whole pass's)."""
        if isinstance(value, DegenerateNetwork) or value is None:
            if row["status"] != STATUS_ERROR:
                row["status"] = STATUS_DEGENERATE
            message = f"{cp.label}: {value or DegenerateNetwork('network output is identical for every input')}"
        elif isinstance(value, Exception):
            row["status"] = STATUS_ERROR
            message = f"{cp.label}: {type(value).__name__}: {value}"
        else:
            row.update(zip(cp.columns, (float(value[c]) for c in cp.proxy.components)))
            row.update(zip(measure_columns(cp.label), (seconds, peak_mb)))
            return
        row["error"] = "; ".join(filter(None, [row["error"], message]))

    def _measured_cells_per_pass(self, proxies: Sequence[ConfiguredProxy], share: float = 1.0) -> tuple[int, str]:
        """K from one fused pass of ``proxies`` over two copies of the space's heaviest cell:
        its peak memory per cell (networks included) against ``share`` of the device's memory."""
        from raynas.fused import fused_scores

        heaviest = getattr(self.space, "heaviest_cell", None)
        cell = heaviest() if callable(heaviest) else 0
        with measured(self.device, memory=True) as m:
            models = [self._build(cell)[0] for _ in range(2)]
            fused_scores(proxies, models, self._probes)
            del models
        self._release()
        if self.device.type == "cuda":
            name, total = torch.cuda.get_device_name(self.device), torch.cuda.mem_get_info(self.device)[1]
        else:
            name, total = "this host", os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return plan_cells_per_pass(m.peak_mb / 2, total / 2**20 * share,
                                   f"cell {cell} on {name}, {share:g} of it for this scorer")

    # -- helpers ------------------------------------------------------------------------
    def _make_probe(self, spec: ProbeSpec) -> ProbeBatch | None:
        resolution = spec.resolution or self.dataset.resolution
        if spec.kind == "none":
            return None
        if spec.kind == "gaussian":
            batch = gaussian_batch(spec.batch_size, resolution, self.dataset.num_classes, self.seed,
                                   self.dataset.target)
        elif spec.kind == "ones":
            batch = ones_batch(spec.batch_size, resolution)
        elif spec.kind == "real":
            batch = real_batch(self.dataset.name, spec.batch_size, self.seed)
        else:
            raise ValueError(f"unknown probe kind {spec.kind!r}")
        return batch.to(self.device, self.spec.dtype)

    def _release(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


# Whether auto fuses on a device. CPU: no — the fused NB201 pass is slower than cell by cell
# there (``benchmarks/overhead.py --fused``: it convolves every cell at every edge). CUDA: not
# until the GPU suite has measured it (docs/results.md, "Fused scoring"); then K comes from
# the GPU's memory (:func:`plan_cells_per_pass`).
FUSED_BY_DEFAULT = {"cpu": False, "cuda": False}
MAX_CELLS_PER_PASS = 64  # past this the launches per cell hardly fall (benchmarks/overhead.py)
PASS_HEADROOM = 1.5  # the calibration cell is the heaviest, but allocator fragmentation varies
PASS_USABLE = 0.8  # of this scorer's share of the GPU


def auto_cells_per_pass(device: torch.device) -> tuple[int, str]:
    """(cells per fused pass, why) when not told, before any measurement: 1 (the per-cell
    path) unless :data:`FUSED_BY_DEFAULT` says the device fuses."""
    return 1, f"the per-cell path on {device.type} (raynas.scoring.FUSED_BY_DEFAULT)"


def plan_cells_per_pass(per_cell_mb: float, available_mb: float, where: str) -> tuple[int, str]:
    """(K, reason): as many cells per fused pass as ``available_mb`` holds at
    ``per_cell_mb`` each with :data:`PASS_HEADROOM`, between 1 and :data:`MAX_CELLS_PER_PASS`."""
    fit = int(available_mb * PASS_USABLE // (per_cell_mb * PASS_HEADROOM)) if per_cell_mb > 0 else MAX_CELLS_PER_PASS
    k = max(1, min(MAX_CELLS_PER_PASS, fit))
    return k, (f"a fused pass holds {per_cell_mb:,.0f} MiB per cell ({where}); ×{PASS_HEADROOM} headroom fits {fit} "
               f"in {PASS_USABLE:.0%} of {available_mb:,.0f} MiB; at most {MAX_CELLS_PER_PASS} → {k}")


def fusable(space: SearchSpace, cp: ConfiguredProxy) -> bool:
    from raynas.fused import fusable as fused_path_for

    return fused_path_for(space.name, cp)


def score(
    space: str | SearchSpace,
    arch: int | str,
    proxies: str | Sequence[str | ConfiguredProxy],
    device: str | torch.device | None = None,
    dataset: str = "cifar10",
    seed: int = 0,
    threads: int | None = None,
    precision: str = DEFAULT_PRECISION,
) -> dict[str, Any]:
    """Score one cell: ``{component: value, ..., status, error, <proxy>_time_s, ...}``
    (``threads``, ``precision``: see :class:`CellScorer`)."""
    return CellScorer(space, proxies, dataset=dataset, seed=seed, device=device, threads=threads,
                      precision=precision).score(arch)
