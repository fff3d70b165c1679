"""What one scoring actor holds, measured rather than guessed: how many actors share one
GPU, and how much memory a CPU actor asks for when it fuses several cells per pass.

NB201 cells are tiny: one actor keeps an H100 busy a few percent of the time, mostly
waiting on Python and kernel launches, so several actors per GPU multiply throughput until
memory runs out. Before a ``--device cuda`` run without ``--num-gpus-per-actor``, one Ray
task on a GPU scores the space's heaviest cell (the largest activations and parameters)
with the run's proxies and reports what that process holds on its GPU — CUDA context,
allocator cache and peak tensors — and the GPU's size. :func:`plan_packing` turns that into
GPUs per actor, with the reason printed.

Kernels of several processes overlap on one GPU only under CUDA MPS (otherwise the GPU
time-slices between processes; packing still hides each actor's Python time). See
docs/gpu.md for turning MPS on in cluster.yaml and in a KubeRay pod.

A run that fuses K cells per pass (``--cells-per-pass K``) holds K cells' networks and
activations at once, so both measurements score K copies of the calibration cell in one
pass, as the actors will (:func:`measure_footprint`, :func:`measure_cpu_peak`): the cost
table's per-cell figures describe one cell at a time and would ask for too little.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MAX_ACTORS_PER_GPU = 8  # past this, CPU cores per GPU node, not memory, are the limit
HEADROOM = 1.5  # the measured cell is the heaviest, but allocator fragmentation varies
USABLE = 0.9  # of the GPU's memory; the rest for the driver, NCCL-free stragglers, MPS


@dataclass(frozen=True)
class Footprint:
    """What one scoring process held on its GPU after scoring the calibration cell."""

    process_mb: float  # device memory used by the process (context + allocator + tensors)
    peak_allocated_mb: float  # torch's peak of live tensors
    gpu_total_mb: float
    gpu_name: str
    cell: int


def _score_as_an_actor(config: dict[str, Any], cell: int | str, device: str, cells_per_pass: int | None,
                       threads: int | None = None) -> None:
    """Score what one actor's pass holds: ``cells_per_pass`` copies of ``cell`` where its
    proxies fuse (else one cell: the per-cell path holds one at a time), through the actors'
    own :meth:`CellScorer.iter_scores`."""
    from raynas.scoring import CellScorer
    from raynas.spec import ScoringSpec

    scorer = CellScorer.from_spec(ScoringSpec.from_config(config), device=device, measure_memory=False,
                                  threads=threads, cells_per_pass=cells_per_pass)
    for _row in scorer.iter_scores([cell] * (scorer.cells_per_pass if scorer.fused_proxies else 1)):
        pass


def measure_footprint(config: dict[str, Any], cell: int | str, cells_per_pass: int | None = None) -> dict[str, Any]:
    """Score ``cell`` (``cells_per_pass`` copies of it in one fused pass, when given) on this
    process's GPU and report its footprint (runs inside a Ray task holding one whole GPU, so
    that the GPU's used memory is this process's alone)."""
    import torch

    torch.cuda.reset_peak_memory_stats()
    _score_as_an_actor(config, cell, "cuda", cells_per_pass)
    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info()
    return {"process_mb": (total - free) / 2**20, "peak_allocated_mb": torch.cuda.max_memory_allocated() / 2**20,
            "gpu_total_mb": total / 2**20, "gpu_name": torch.cuda.get_device_name(), "cell": cell}


def measure_cpu_peak(config: dict[str, Any], cell: int | str, cells_per_pass: int | None,
                     threads: int | None = None) -> float:
    """This process's peak resident memory in MiB — imports, Ray worker and all — while it
    scores one pass of ``cells_per_pass`` copies of ``cell`` on the CPU (run inside a Ray task
    of an actor's CPUs: what the process holds is what an actor will; where the peak cannot
    be reset it counts from the worker's start, still an upper bound). NaN where the kernel
    does not report a peak."""
    from raynas.measure import process_peak_mb, reset_process_peak

    reset_process_peak()
    _score_as_an_actor(config, cell, "cpu", cells_per_pass, threads)
    return process_peak_mb()


def plan_packing(footprint: Footprint, cpus_per_gpu: float | None = None) -> tuple[float, str]:
    """(GPUs per actor, reason): as many actors as fit the GPU's usable memory with
    headroom, at most :data:`MAX_ACTORS_PER_GPU` and at most the node's CPUs per GPU."""
    per_actor = footprint.process_mb * HEADROOM
    fit = int(footprint.gpu_total_mb * USABLE // per_actor) if per_actor > 0 else MAX_ACTORS_PER_GPU
    limit, why = MAX_ACTORS_PER_GPU, f"at most {MAX_ACTORS_PER_GPU} per GPU"
    if cpus_per_gpu is not None and cpus_per_gpu < limit:
        limit, why = max(1, int(cpus_per_gpu)), f"{cpus_per_gpu:g} CPUs per GPU"
    actors = max(1, min(fit, limit))
    fraction = math.floor(10_000 / actors) / 10_000  # Ray takes 4 decimals; round down so they fit
    reason = (f"one actor holds {footprint.process_mb:,.0f} MiB on {footprint.gpu_name} "
              f"({footprint.gpu_total_mb:,.0f} MiB) scoring cell {footprint.cell}; ×{HEADROOM} headroom "
              f"fits {fit} in {USABLE:.0%} of it; {why} → {actors} actor(s) per GPU, --num-gpus-per-actor {fraction:g}")
    return fraction, reason
