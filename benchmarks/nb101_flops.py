"""NB101 priced by its arithmetic (issue 25, item 6): achieved FLOP/s per NB101 cell against
the device's peak, and what the whole space would cost at that rate.

Per cell and setting (fp32, TF32, bf16 autocast: ``kernel_agreement.SETTINGS``): the
proxy's seconds (the row's ``<label>_time_s``, network build excluded) and its arithmetic,
counted rather than guessed — ``torch.utils.flop_counter`` over one forward of the cell's
network at the probe's resolution (raynas' ``flops``: multiply-accumulates per image), times
the probe's batch, times 2 FLOPs per MAC, times 3 for forward + backward (the backward of a
convolution is two products of the forward's size). That is InTrain's work; GradAlign's
per-sample gradients add products this estimate leaves out, so its achieved rate is a lower
bound. Fractions are of the device's dense peak for the setting (:data:`PEAKS`, by device
name; none for a CPU).

    python benchmarks/nb101_flops.py --device cuda --cells 8 --settings cuda,cuda_tf32,cuda_bf16 --json nb101_flops.json
    python benchmarks/nb101_flops.py --device cpu --cells 2 --proxies "intrain:batch_size=8,resolution=8"   # a smoke run

Cells: the first ``--cells`` of the 300-cell NB101 accuracy sample
(``data/scores/nb101_s300_cells.txt``).

``--price`` needs no GPU: the arithmetic of the whole space from the counted MACs of the
sample's cells — per cell and for all 423,624, for InTrain at its default probe (batch 64,
32×32), at the cheaper 16×16 batch 32, and GradAlign's lower bound (batch 128, forward and
backward only) — and the GPU-hours it takes at a device's dense peak and at 40 % of it:

    python benchmarks/nb101_flops.py --price --cells 300 --device-name H100
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

NB101_CELLS = 423_624
# Dense peaks (FLOP/s) from the vendors' data sheets: fp32, TF32 tensor cores, bf16 tensor cores.
PEAKS = {
    "H100 PCIe": {"float32": 51.2e12, "tf32": 378e12, "bf16": 756e12},
    "H100": {"float32": 66.9e12, "tf32": 494.7e12, "bf16": 989.4e12},  # SXM
    "H200": {"float32": 66.9e12, "tf32": 494.7e12, "bf16": 989.4e12},
    "A100": {"float32": 19.5e12, "tf32": 156e12, "bf16": 312e12},
    "A10G": {"float32": 31.2e12, "tf32": 62.5e12, "bf16": 125e12},  # cluster.yaml's g5.xlarge
}
MODE = {"cuda": "float32", "cuda_tf32": "tf32", "cuda_bf16": "bf16", "default": "float32", "bf16_cpu": "bf16"}


def device_peaks(name: str) -> dict[str, float] | None:
    """The peaks of the first :data:`PEAKS` entry whose name ``name`` contains (PCIe first)."""
    for key, peaks in PEAKS.items():
        if key in name:
            return peaks
    return None


def sample_cells(n: int) -> list[int]:
    return [int(c) for c in (ROOT / "data/scores/nb101_s300_cells.txt").read_text().split()[:n]]


def cell_macs(cells: list[int], resolution: int) -> dict[int, int]:
    """Multiply-accumulates of one forward at ``resolution`` per image, per cell (on the CPU)."""
    from raynas.proxies.flops import count_macs
    from raynas.spaces import get_space

    space = get_space("nb101")
    return {c: count_macs(space.build(c, 10), resolution) for c in cells}


def measure(cells: list[int], proxies: str, settings: list[str]) -> dict:
    import torch
    from kernel_agreement import score_cells

    from raynas.proxies.registry import parse_proxies

    configured = parse_proxies(proxies)
    probes = {cp.label: cp.probe_spec() for cp in configured}
    resolutions = {spec.resolution or 32 for spec in probes.values()}
    macs = {r: cell_macs(cells, r) for r in resolutions}
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    peaks = device_peaks(name)
    result: dict = {"device": name, "cells": cells, "proxies": proxies, "settings": {}}
    for setting in settings:
        _, rows = score_cells("nb101", proxies, cells, setting)
        mode = MODE.get(setting, "float32")
        entry = {}
        for label, spec in probes.items():
            flops = [6 * macs[spec.resolution or 32][r["index"]] * spec.batch_size for r in rows]
            seconds = [r[f"{label}_time_s"] for r in rows]
            rates = [f / s for f, s in zip(flops, seconds)]
            entry[label] = {
                "seconds_per_cell": statistics.mean(seconds), "median_seconds": statistics.median(seconds),
                "flops_per_cell": statistics.mean(flops), "achieved_flops": sum(flops) / sum(seconds),
                "median_achieved_flops": statistics.median(rates),
                "fraction_of_peak": None if peaks is None else sum(flops) / sum(seconds) / peaks[mode],
                "peak": None if peaks is None else peaks[mode],
                "whole_space_hours": statistics.mean(seconds) * NB101_CELLS / 3600,
                "errors": sum(r["status"] == "error" for r in rows),
            }
        result["settings"][setting] = entry
    return result


PROBES = {"intrain (64 @ 32×32)": (64, 32), "intrain (32 @ 16×16)": (32, 16), "gradalign ≥ (128 @ 32×32)": (128, 32)}


def arithmetic_price(cells: list[int], device_name: str) -> dict:
    """The whole space's arithmetic from the sample's counted MACs (see ``--price``)."""
    macs = {r: cell_macs(cells, r) for r in (32, 16)}
    peaks = device_peaks(device_name) or {}
    out: dict = {"cells": len(cells), "device": device_name,
                 "macs_per_image": {r: statistics.mean(m.values()) for r, m in macs.items()},
                 "median_macs_per_image": {r: statistics.median(m.values()) for r, m in macs.items()}, "probes": {}}
    for name, (batch, resolution) in PROBES.items():
        per_cell = 6 * batch * statistics.mean(macs[resolution].values())
        total = per_cell * NB101_CELLS
        out["probes"][name] = {"flops_per_cell": per_cell, "whole_space_flops": total,
                               "gpu_hours_at_peak": {mode: total / peak / 3600 for mode, peak in peaks.items()},
                               "gpu_hours_at_40_percent": {mode: total / (0.4 * peak) / 3600 for mode, peak in peaks.items()}}
    return out


def price_table(price: dict) -> str:
    lines = [f"NB101 arithmetic from {price['cells']} sample cells: "
             f"{price['macs_per_image'][32] / 1e9:.2f} G MACs per 32×32 image (median "
             f"{price['median_macs_per_image'][32] / 1e9:.2f} G); GPU-hours on {price['device']} at peak / at 40 % of it",
             f"{'probe':28s} {'TFLOP/cell':>10s} {'whole space, FLOP':>18s}   {'fp32':15s}  {'TF32':15s}  {'bf16':15s}"]
    for name, p in price["probes"].items():
        hours = "  ".join(f"{p['gpu_hours_at_peak'][m]:6.2f} / {p['gpu_hours_at_40_percent'][m]:<6.2f}"
                          for m in ("float32", "tf32", "bf16") if m in p["gpu_hours_at_peak"])
        lines.append(f"{name:28s} {p['flops_per_cell'] / 1e12:10.3f} {p['whole_space_flops']:18.2e}   {hours}")
    return "\n".join(lines)


def table(result: dict) -> str:
    lines = [f"NB101, {len(result['cells'])} cells of the accuracy sample, on {result['device']}",
             f"{'setting':10s} {'proxy':10s} {'s/cell':>8s} {'GFLOP/cell':>11s} {'TFLOP/s':>8s} {'of peak':>8s} "
             f"{'whole space, h':>15s}"]
    for setting, entry in result["settings"].items():
        for label, e in entry.items():
            peak = "-" if e["fraction_of_peak"] is None else f"{e['fraction_of_peak']:.1%}"
            lines.append(f"{setting:10s} {label:10s} {e['seconds_per_cell']:8.3f} {e['flops_per_cell'] / 1e9:11.1f} "
                         f"{e['achieved_flops'] / 1e12:8.2f} {peak:>8s} {e['whole_space_hours']:15,.0f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--cells", type=int, default=8, help="the first N cells of the NB101 accuracy sample")
    ap.add_argument("--proxies", default="intrain", help="a proxy spec (InTrain's arithmetic is the one counted)")
    ap.add_argument("--settings", help="kernel_agreement settings (default: cuda,cuda_tf32,cuda_bf16 or default)")
    ap.add_argument("--json", help="write every figure here")
    ap.add_argument("--price", action="store_true", help="the arithmetic price only (no scoring, no GPU)")
    ap.add_argument("--device-name", default="H100", help="whose peaks --price uses")
    args = ap.parse_args()
    if args.price:
        price = arithmetic_price(sample_cells(args.cells), args.device_name)
        print(price_table(price))
        if args.json:
            Path(args.json).write_text(json.dumps(price, indent=2))
        return
    settings = (args.settings or ("cuda,cuda_tf32,cuda_bf16" if args.device == "cuda" else "default")).split(",")
    result = measure(sample_cells(args.cells), args.proxies, settings)
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
