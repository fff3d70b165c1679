"""Wall time and peak memory of a block of work, on CPU or CUDA.

CPU peak memory is the process's peak resident set (VmHWM) above its resident size at the
start, after returning freed heap pages to the OS; Linux lets a process reset VmHWM (``/proc/self/clear_refs`` ← 5), which makes the
figure per block. Where that is unavailable the peak is NaN rather than a made-up number.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass
class Measurement:
    seconds: float = math.nan
    peak_mb: float = math.nan


def _status_kb(field: str) -> float:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])
    return math.nan


def _load_libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


_LIBC = _load_libc()


def _reset_cpu_peak() -> float | None:
    """Reset VmHWM and return the current RSS in kB, or None if not supported.

    Freed heap pages are first handed back to the OS (glibc ``malloc_trim``): otherwise a
    block that reuses memory freed by an earlier one would show no peak at all.
    """
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)
    try:
        _CLEAR_REFS.write_text("5")
        return _status_kb("VmRSS")
    except OSError:
        return None


def reset_process_peak() -> bool:
    """Start this process's peak resident memory afresh (see :func:`process_peak_mb`);
    False where the kernel does not allow it (the peak then counts from the start)."""
    return _reset_cpu_peak() is not None


def process_peak_mb() -> float:
    """This process's peak resident memory (VmHWM) in MiB since the last
    :func:`reset_process_peak` (or since it started), NaN where the kernel has no figure."""
    try:
        return _status_kb("VmHWM") / 1024
    except OSError:
        return math.nan


@contextlib.contextmanager
def measured(device: torch.device, memory: bool = True) -> Iterator[Measurement]:
    """Time the block; with ``memory`` also its peak memory (on CPU that costs ~20% more
    time, for the page faults after trimming the heap; on CUDA it is free)."""
    result = Measurement()
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = _reset_cpu_peak() if memory else None
    start = time.perf_counter()
    try:
        yield result
    finally:
        if cuda:
            torch.cuda.synchronize(device)
            result.peak_mb = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        elif base is not None:
            result.peak_mb = max(0.0, _status_kb("VmHWM") - base) / 1024
        result.seconds = time.perf_counter() - start
