"""Launch overhead of the hot path: what a GPU pays per cell whatever its speed.

Per proxy, on fixed NB201 cells: aten calls per cell, counted by torch.profiler with nested
calls included (the issue's measure) and top-level only (those Python dispatches: on a GPU
each is at least one kernel launch, while nested ones are often a CPU kernel's inner loop,
e.g. the grouped-convolution backward looping over groups); host syncs per cell
(``aten::_local_scalar_dense``: every ``float()``/``.item()``; a ``.tolist()`` of a CPU
tensor is invisible to the profiler, so the one read-back per proxy of the new path adds 1
on a GPU); and the dispatch-bound time per cell — the time with a tiny
probe, where arithmetic is negligible (InTrain batch 4 at 8×8; GradAlign batch 20 with its
probe images average-pooled to 8×8, as GradAlign has no resolution option; GradAlign batch 20
at the native 32×32 is reported beside it, as the issue first measured it).
The same figures for a baseline version of raynas (a git ref, exported with ``git archive``
into the git-ignored ``.baseline/``) come from the same run, side by side:

    RAYNAS_DATA_DIR=../shared/data python benchmarks/overhead.py --baseline bda6610
    RAYNAS_DATA_DIR=../shared/data python benchmarks/overhead.py --proxies intrain --gpu-code-path
    python benchmarks/overhead.py --json overhead.json      # this checkout only
    python benchmarks/overhead.py --fused 1,8,32,128 --gpu-code-path   # InTrain: fused vs per cell

``--fused``: InTrain (tiny probe) on K NB201 cells scored in one fused pass
(:func:`raynas.fused.fused_scores`, what ``CellScorer(cells_per_pass=K)`` runs) beside the
same K networks scored one by one, in the same process: aten calls per cell, host syncs per
pass (``.tolist()`` of a CPU tensor is invisible to the profiler: each path has one such
read-back per pass or cell), and seconds per cell.

Each version runs in a subprocess of its own (one torch thread), so neither warms the other.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CELLS = (13714, 6111, 100, 2000, 9000)
PROXIES = ("intrain", "gradalign", "grad_norm", "synflow", "naswot", "zico", "zen")
# proxy → (tiny spec, side of the probe images it is pooled to, or None to keep them)
TINY = {"intrain": ("intrain:batch_size=4,resolution=8", None), "gradalign": ("gradalign:batch_size=20", 8)}
SMALL_BATCH = {"gradalign": "gradalign:batch_size=20"}  # at 32×32: arithmetic is not negligible on a CPU


def export_baseline(ref: str) -> Path:
    """``raynas/`` as of ``ref``, unpacked under ``.baseline/<ref>`` (git-ignored)."""
    target = ROOT / ".baseline" / ref
    if not (target / "raynas").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "raynas"], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def _top_level(event) -> bool:
    parent = event.cpu_parent
    while parent is not None and not parent.name.startswith("aten::"):
        parent = parent.cpu_parent
    return parent is None


def count_calls(scorer, cells) -> tuple[float, float, float]:
    """(aten calls, top-level aten calls, host syncs) per cell, over ``cells`` (after one
    warm-up cell)."""
    from torch.profiler import ProfilerActivity, profile

    scorer.score(cells[0])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for cell in cells:
            scorer.score(cell)
    aten = [e for e in prof.events() if e.name.startswith("aten::")]
    top = sum(_top_level(e) for e in aten)
    syncs = sum(e.name == "aten::_local_scalar_dense" for e in aten)
    return len(aten) / len(cells), top / len(cells), syncs / len(cells)


def median_time(scorer, cells) -> float:
    scorer.score(cells[0])
    times = []
    for cell in cells:
        start = time.perf_counter()
        scorer.score(cell)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def tiny_scorer(proxy: str, device: str | None):
    """A scorer on the tiny probe: its images pooled to ``side`` × ``side`` where the proxy
    has no resolution option (the same data for every version: ``_probes`` is as old as
    the baseline)."""
    import dataclasses

    import torch.nn.functional as F

    from raynas.scoring import CellScorer

    spec, side = TINY[proxy]
    scorer = CellScorer("nb201", spec, device=device, measure_memory=False)
    if side:
        for key, batch in scorer._probes.items():
            if batch is not None and batch.inputs.shape[-1] > side:
                scorer._probes[key] = dataclasses.replace(batch, inputs=F.adaptive_avg_pool2d(batch.inputs, side))
    return scorer


def use_gpu_code_path() -> None:
    """Take the code paths raynas takes on a GPU (stacked PRs, segment reductions) on this
    CPU, so that their dispatch can be counted without a GPU."""
    import functools

    from raynas.proxies import intrain

    intrain.GROUP_BYTES["cpu"] = intrain.GROUP_BYTES["cuda"]
    intrain.gradient_resilience = functools.partial(intrain.gradient_resilience, batched=True)


def worker(proxies: list[str], device: str | None, gpu_code_path: bool = False) -> dict:
    """Measure with whichever raynas is first on sys.path."""
    import torch

    import raynas
    from raynas.scoring import CellScorer

    torch.set_num_threads(1)
    if gpu_code_path:
        use_gpu_code_path()
    result = {"raynas": str(Path(raynas.__file__).parent), "proxies": {}}
    for proxy in proxies:
        scorer = CellScorer("nb201", proxy, device=device, measure_memory=False)
        aten, top, syncs = count_calls(scorer, list(CELLS))
        entry = {"aten_calls": aten, "top_level_calls": top, "host_syncs": syncs}
        if proxy in TINY:
            entry["dispatch_s"] = median_time(tiny_scorer(proxy, device), list(CELLS))
        if proxy in SMALL_BATCH:
            entry["small_batch_s"] = median_time(CellScorer("nb201", SMALL_BATCH[proxy], device=device,
                                                            measure_memory=False), list(CELLS))
        result["proxies"][proxy] = entry
    return result


def fused_worker(ks: list[int], device: str | None, gpu_code_path: bool, proxy: str = "intrain",
                 real: bool = False) -> dict:
    """``proxy`` (InTrain or GradAlign; the tiny probe, or with ``real`` its own) per cell
    and fused, on the same non-degenerate cells, for each K: the scoring pass only (the
    networks are built first, as both paths build them). The fused path's
    assembly — copying the K networks' tensors into its one flat parameter — is counted
    apart: it is host work where the networks are built (on a GPU, the per-cell path's
    counterpart is moving each network's ~150 tensors to the device, which neither count
    includes)."""
    import numpy as np
    import torch
    from torch.profiler import ProfilerActivity, profile

    from raynas.fused.gradalign import fused_gradalign
    from raynas.fused.intrain import fused_intrain
    from raynas.fused.nb201 import FusedNB201
    from raynas.measure import measured
    from raynas.proxies.base import ProxyContext
    from raynas.spaces import get_space

    torch.set_num_threads(1)
    if gpu_code_path:
        use_gpu_code_path()
    space = get_space("nb201")
    pool = [int(c) for c in np.random.default_rng(0).permutation(len(space)) if not space.is_degenerate(int(c))]
    from raynas.scoring import CellScorer

    # ``real``: the proxy's own probe (batch 64 / 128 at 32×32), where a GPU's cells/s is read
    spec = proxy if real else TINY[proxy][0]
    scorer = CellScorer("nb201", spec, device=device, measure_memory=False) if real else tiny_scorer(proxy, device)
    cp = scorer.proxies[0]
    batch = scorer._probes[cp.probe_spec()]
    fused_pass = {"intrain": fused_intrain, "gradalign": fused_gradalign}[proxy]

    def per_cell(models) -> list[dict]:
        return [cp.proxy.compute(model, batch, cp.options, ProxyContext(scorer.device, 10, 0)) for model in models]

    def assemble(models) -> FusedNB201:
        return FusedNB201(models)  # on the models' device and dtype, as fused_scores builds it

    def counted(run, *args) -> tuple[object, dict]:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            out = run(*args)
        aten = [e for e in prof.events() if e.name.startswith("aten::")]
        return out, {"aten": len(aten), "top_level": sum(map(_top_level, aten)),
                     "syncs": sum(e.name == "aten::_local_scalar_dense" for e in aten)}

    result: dict = {"spec": spec, "k": {}}
    for k in ks:
        models = [scorer._build(c)[0] for c in pool[:k]]
        per_cell(models[:1])  # warm-up
        fused_pass(assemble(models[:1]), batch, cp.options)
        start = time.perf_counter()
        per_cell(models)
        per_cell_s = time.perf_counter() - start
        start = time.perf_counter()
        fused = assemble(models)
        assemble_s = time.perf_counter() - start
        # On a GPU also the pass's peak memory: the footprint K is to be chosen from (issue 25, item 4).
        on_gpu = batch.inputs.device.type == "cuda"
        with measured(batch.inputs.device, memory=on_gpu) as timed:
            fused_pass(fused, batch, cp.options)
        pass_s, peak_mb = timed.seconds, timed.peak_mb if on_gpu else None
        _, a = counted(per_cell, models)
        fused, asm = counted(assemble, models)
        _, f = counted(fused_pass, fused, batch, cp.options)
        entry = {
            "per_cell": {"aten_per_cell": a["aten"] / k, "top_level_per_cell": a["top_level"] / k,
                         "syncs_per_cell": a["syncs"] / k, "seconds_per_cell": per_cell_s / k},
            "fused": {"aten_per_cell": f["aten"] / k, "top_level_per_cell": f["top_level"] / k,
                      "syncs_per_pass": f["syncs"], "seconds_per_cell": pass_s / k,
                      "pass_peak_mb": peak_mb},
            "assembly": {"aten_per_cell": asm["aten"] / k, "top_level_per_cell": asm["top_level"] / k,
                         "seconds_per_cell": assemble_s / k},
        }
        # Each component's largest relative difference between the two paths (fresh weights each).
        a = per_cell([scorer._build(c)[0] for c in pool[:k]])
        b = fused_pass(assemble([scorer._build(c)[0] for c in pool[:k]]), batch, cp.options)
        entry["max_rel_diff"] = {c: max(abs(x[c] - y[c]) / max(abs(x[c]), abs(y[c]), 1e-300) for x, y in zip(a, b))
                                 for c in a[0]}
        result["k"][k] = entry
    return result


def fused_table(result: dict) -> str:
    lines = [f"{result['spec']}, NB201, one thread: per cell → fused pass; the fused path's assembly apart",
             f"{'K':>4s} {'aten/cell':>24s} {'top-level aten/cell':>24s} {'syncs/pass':>10s} {'ms/cell':>22s} "
             f"{'assembly top-level/cell, ms/cell':>34s} {'max rel diff':>13s}"]
    for k, e in result["k"].items():
        a, b, asm = e["per_cell"], e["fused"], e["assembly"]

        def pair(key: str, scale: float = 1.0) -> str:
            return f"{a[key] * scale:,.0f} → {b[key] * scale:,.0f} ({a[key] / b[key]:.1f}×)"

        lines.append(f"{k:>4} {pair('aten_per_cell'):>24s} {pair('top_level_per_cell'):>24s} "
                     f"{b['syncs_per_pass']:>10.0f} {pair('seconds_per_cell', 1000):>22s} "
                     f"{asm['top_level_per_cell']:>24,.0f}, {asm['seconds_per_cell'] * 1000:,.1f}"
                     f"{max(e['max_rel_diff'].values()):>13.1e}")
    return "\n".join(lines)


def run_version(pythonpath: Path, proxies: list[str], device: str | None, gpu_code_path: bool = False) -> dict:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    cmd = [sys.executable, __file__, "--worker", "--proxies", ",".join(proxies)] + (["--device", device] if device else [])
    cmd += ["--gpu-code-path"] if gpu_code_path else []
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def table(after: dict, before: dict | None) -> str:
    lines = [f"{'proxy':10s} {'aten/cell (nested)':>24s} {'top-level aten/cell':>22s} {'syncs/cell':>16s} "
             f"{'dispatch-bound ms/cell':>26s}"]
    for proxy, a in after["proxies"].items():
        b = before["proxies"].get(proxy) if before else None

        def pair(key: str, scale: float = 1.0, fmt: str = "{:,.0f}") -> str:
            now = fmt.format(a[key] * scale) if key in a else "-"
            if not b or key not in b:
                return now
            ratio = b[key] / a[key] if a[key] else float("inf")
            return f"{fmt.format(b[key] * scale)} → {now} ({ratio:.1f}×)"

        lines.append(f"{proxy:10s} {pair('aten_calls'):>24s} {pair('top_level_calls'):>22s} {pair('host_syncs'):>16s} "
                     f"{pair('dispatch_s', 1000, '{:,.1f}'):>26s}")
    if before and {"intrain", "gradalign"} <= after["proxies"].keys() & before["proxies"].keys():
        b = sum(before["proxies"][p]["dispatch_s"] for p in ("intrain", "gradalign"))
        a = sum(after["proxies"][p]["dispatch_s"] for p in ("intrain", "gradalign"))
        lines.append(f"intrain + gradalign dispatch-bound: {b * 1000:,.1f} → {a * 1000:,.1f} ms/cell ({b / a:.1f}×)")
    for proxy in SMALL_BATCH:
        if before and "small_batch_s" in after["proxies"].get(proxy, {}) and "small_batch_s" in before["proxies"].get(proxy, {}):
            b, a = before["proxies"][proxy]["small_batch_s"], after["proxies"][proxy]["small_batch_s"]
            lines.append(f"{SMALL_BATCH[proxy]} at native resolution: {b * 1000:,.1f} → {a * 1000:,.1f} ms/cell ({b / a:.1f}×)")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--proxies", default=",".join(PROXIES))
    ap.add_argument("--baseline", help="git ref of the version to compare against (e.g. the commit before a change)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--json", help="write every figure here")
    ap.add_argument("--gpu-code-path", action="store_true",
                    help="measure this checkout on the code paths it takes on a GPU (the baseline has one path)")
    ap.add_argument("--fused", help="comma-separated K: InTrain fused K cells per pass vs per cell (this checkout)")
    ap.add_argument("--fused-proxy", default="intrain", choices=["intrain", "gradalign"], help="the proxy --fused measures")
    ap.add_argument("--fused-real", action="store_true", help="--fused on the proxy's own probe, not the tiny one")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.fused:
        result = fused_worker([int(k) for k in args.fused.split(",")], args.device, args.gpu_code_path, args.fused_proxy,
                              args.fused_real)
        print(fused_table(result))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
        return
    proxies = [p for p in args.proxies.split(",") if p]
    if args.worker:
        print(json.dumps(worker(proxies, args.device, args.gpu_code_path)))
        return
    before = run_version(export_baseline(args.baseline), proxies, args.device) if args.baseline else None
    after = run_version(ROOT, proxies, args.device, args.gpu_code_path)
    print(f"NB201 cells {', '.join(map(str, CELLS))}; one thread; baseline {args.baseline or '-'}")
    print(table(after, before))
    if args.json:
        Path(args.json).write_text(json.dumps({"cells": CELLS, "baseline_ref": args.baseline,
                                               "before": before, "after": after}, indent=2))


if __name__ == "__main__":
    main()
