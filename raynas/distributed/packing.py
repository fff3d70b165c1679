"""How many scoring actors share one GPU, from a measurement rather than a guess.

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


def measure_footprint(config: dict[str, Any], cell: int | str) -> dict[str, Any]:
    """Score ``cell`` on this process's GPU and report its footprint (runs inside a Ray task
    holding one whole GPU, so that the GPU's used memory is this process's alone)."""
    import torch

    from raynas.scoring import CellScorer
    from raynas.spec import ScoringSpec

    scorer = CellScorer.from_spec(ScoringSpec.from_config(config), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    scorer.score(cell)
    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info()
    return {"process_mb": (total - free) / 2**20, "peak_allocated_mb": torch.cuda.max_memory_allocated() / 2**20,
            "gpu_total_mb": total / 2**20, "gpu_name": torch.cuda.get_device_name(), "cell": cell}


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
