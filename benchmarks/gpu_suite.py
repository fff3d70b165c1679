"""The GPU suite: one run, at most ``--budget-s`` seconds, every GPU figure raynas reports.

On a GPU machine whose Python has a CUDA torch and no Ray (raynas from the checkout, never
pip-installed there). How to run it on a lent machine — the device kit, the baseline
package, the prepared command — is in ``benchmarks/README.md``.

Phases, each skipped when the budget is spent, each adding to ``OUT/gpu_suite.json``:

1. **sweep** (no Ray): 1, 2, 4, 8 worker processes on the one GPU, each a
   ``CellScorer(device=...)`` scoring the same fixed NB201 cells with intrain + gradalign on
   CIFAR-10 (the shipped probes), started together after a warm-up: cells/s for each, and
   per-proxy ms/cell and peak GPU memory at one worker — for this checkout and for the
   baseline package(s), in the same run (``--baseline-dir [NAME=]FOLDER``, repeatable).
   **profile**: where one process's time goes — per proxy, wall ms per cell, and under
   torch.profiler the GPU kernels per cell, the GPU's busy time per cell and the kernels
   that take most of it (``params`` alone: the network's build).
2. **ray**: ``raynas score nb201 --device DEVICE`` on an embedded Ray with packed actors
   (GPUs per actor measured), a few hundred cells, checked exactly-once.
3. **agreement**: every proxy on ``--agreement-cells`` fixed cells on the GPU (fp32, then
   TF32, then bf16 autocast) and on the CPU (``benchmarks/kernel_agreement.py``): the
   largest relative difference per component of each against the CPU's fp32.
4. **whole**: as much of the whole NB201 space as the time left allows, through the same
   command, one run per ``--whole DATASET=PROXIES`` (in order, each an equal share of the
   time left; into ``--whole-dir`` when one run is given, resuming a run already there),
   each compacted into ``OUT/nb201_DATASET_whole.parquet`` (index-sorted; resumable).

``--device cpu --tiny`` runs every phase end to end at toy sizes and fixed cell counts, with
no budget (the test suite does, so the suite cannot rot; a busy machine only makes it slower).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SWEEP_PROXIES = "intrain;gradalign"
WHOLE_PROXIES = "intrain,gradalign,synflow,params,flops"
TINY_WHOLE_PROXIES = "intrain:batch_size=8,resolution=16;params"


def fixed_cells(n: int) -> list[int]:
    """``n`` non-degenerate NB201 cells spread over the space, the same in every run."""
    sys.path.insert(0, str(ROOT))
    from raynas.spaces import get_space

    space = get_space("nb201")
    step = len(space) // (3 * n)
    return [c for c in range(7, len(space), step) if not space.is_degenerate(c)][:n]


# -- phase 1: the Ray-free sweep ------------------------------------------------------------

def worker_main(args: argparse.Namespace) -> None:
    """One sweep worker: warm up, say ready, wait for go, score, print one JSON line."""
    import torch

    import raynas
    from raynas.scoring import CellScorer

    torch.set_num_threads(1)
    cells = [int(c) for c in args.cells.split(",")]
    scorer = CellScorer("nb201", args.proxies, dataset="cifar10", seed=0, device=args.device)
    scorer.score(cells[0])  # vmap / cuDNN / allocator warm-up, not timed
    Path(args.ready).touch()
    while not Path(args.go).exists():
        time.sleep(0.01)
    start = time.time()
    rows = [scorer.score(c) for c in cells]
    end = time.time()
    labels = [cp.label for cp in scorer.proxies]
    print(json.dumps({
        "raynas": str(Path(raynas.__file__).parent), "start": start, "end": end, "cells": len(rows),
        "errors": sum(r["status"] == "error" for r in rows),
        "ms_per_cell": {p: 1000 * statistics.median(r[f"{p}_time_s"] for r in rows) for p in labels},
        "peak_mb": {p: max(r[f"{p}_peak_mem_mb"] for r in rows) for p in labels},
        "build_ms": 1000 * statistics.median(r["build_time_s"] for r in rows),
    }))


def profile_main(args: argparse.Namespace) -> None:
    """Where one process's time goes, per proxy: wall ms per cell (no profiler), and under
    torch.profiler the GPU's kernels and busy time per cell (the sum of kernel and copy
    durations, one stream) with the kernels that take most of it. Each proxy is scored by
    a scorer of its own, so each figure includes the network's build; ``params`` (no GPU
    work of its own) is that build alone. Prints one JSON line."""
    import torch
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    from raynas.scoring import CellScorer

    torch.set_num_threads(1)
    cells = [int(c) for c in args.cells.split(",")]
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    result = {}
    for proxy in args.proxies.split(";"):
        scorer = CellScorer("nb201", proxy, dataset="cifar10", seed=0, device=args.device, measure_memory=False)
        scorer.score(cells[0])
        times = []
        for c in cells:
            sync()
            start = time.perf_counter()
            scorer.score(c)
            sync()
            times.append(time.perf_counter() - start)
        with profile(activities=activities) as prof:
            for c in cells:
                scorer.score(c)
            sync()
        device_events = [e for e in prof.events() if e.device_type == DeviceType.CUDA]
        by_name: dict[str, float] = {}
        for e in device_events:
            by_name[e.name] = by_name.get(e.name, 0.0) + e.time_range.elapsed_us()
        top = sorted(by_name.items(), key=lambda kv: -kv[1])[:8]
        result[proxy] = {
            "wall_ms": 1000 * statistics.median(times),
            "gpu_ops_per_cell": len(device_events) / len(cells),
            "gpu_busy_ms_per_cell": sum(by_name.values()) / 1000 / len(cells),
            "top_gpu_ms_per_cell": {k[:90]: v / 1000 / len(cells) for k, v in top},
            "cpu_ops_per_cell": sum(e.name.startswith("aten::") for e in prof.events()) / len(cells),
        }
    print(json.dumps(result))


def worker_env(pythonpath: Path) -> dict:
    """A worker's environment: ``pythonpath``'s raynas first, and the probe file shipped in
    this checkout for every version (a baseline package from before it shipped data finds
    it through RAYNAS_DATA_DIR)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(pythonpath), *filter(None, [os.environ.get("PYTHONPATH")])]),
            "RAYNAS_DATA_DIR": os.environ.get("RAYNAS_DATA_DIR", str(ROOT / "raynas" / "data"))}


def profile_point(pythonpath: Path, cells: list[int], device: str, proxies: str, timeout: float) -> dict:
    env = worker_env(pythonpath)
    done = subprocess.run([sys.executable, __file__, "--profile-worker", "--device", device, "--proxies", proxies,
                           "--cells", ",".join(map(str, cells))], env=env, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"profile worker failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def sweep_point(pythonpath: Path, workers: int, cells: list[int], device: str, proxies: str, timeout: float) -> dict:
    """``workers`` processes scoring ``cells`` each, timed from the common go signal."""
    sync = Path(tempfile.mkdtemp(prefix="raynas-sweep-"))
    env = worker_env(pythonpath)
    procs = [subprocess.Popen(
        [sys.executable, __file__, "--worker", "--device", device, "--proxies", proxies,
         "--cells", ",".join(map(str, cells)), "--ready", str(sync / f"ready-{i}"), "--go", str(sync / "go")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(workers)]
    deadline = time.monotonic() + timeout
    try:
        while len(list(sync.glob("ready-*"))) < workers:
            if time.monotonic() > deadline or any(p.poll() not in (None, 0) for p in procs):
                raise RuntimeError("a sweep worker failed or timed out while warming up: "
                                   + next((p.stderr.read()[-2000:] for p in procs if p.poll()), "timeout"))
            time.sleep(0.05)
        (sync / "go").touch()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            if p.returncode:
                raise RuntimeError(f"sweep worker failed: {err[-2000:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    total = sum(r["cells"] for r in results)
    return {"workers": workers, "cells": total, "wall_s": wall, "cells_per_s": total / wall,
            "errors": sum(r["errors"] for r in results), "raynas": results[0]["raynas"],
            "ms_per_cell": results[0]["ms_per_cell"], "peak_mb": results[0]["peak_mb"],
            "build_ms": results[0]["build_ms"]}


def agreement_point(cells: list[int], settings: str, proxies: str, timeout: float) -> dict:
    """``benchmarks/kernel_agreement.py`` on ``cells``: every component's largest relative
    difference between the device and the CPU (the same scorer config)."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "agreement.json"
        done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "kernel_agreement.py"), "--cells",
                               ",".join(map(str, cells)), "--proxies", proxies, "--settings", settings, "--json",
                               str(report)], env=worker_env(ROOT), capture_output=True, text=True, timeout=timeout)
        if done.returncode:
            raise RuntimeError(f"agreement failed: {done.stderr[-2000:]}")
        return json.loads(report.read_text())


def baseline_version(arg: str) -> tuple[str, Path]:
    """``NAME=FOLDER`` or ``FOLDER`` (named ``baseline``)."""
    name, _, folder = arg.rpartition("=")
    path = Path(folder).resolve()
    if not (path / "raynas").is_dir():
        raise SystemExit(f"--baseline-dir {arg}: no raynas/ package in {path}")
    return name or "baseline", path


# -- phases 2 and 3: through Ray ------------------------------------------------------------

def raynas_score(args: list[str], timeout: float) -> tuple[int, str]:
    """``raynas score ...`` from this checkout, stopped with SIGINT (then killed) at timeout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
           "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")}
    proc = subprocess.Popen([sys.executable, "-m", "raynas.cli", "score", "nb201", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
    return proc.returncode, out


def exactly_once(out_dir: Path, expected: set[int] | None = None) -> dict:
    """Every row of every accepted part, counted raw (a reader would hide duplicates)."""
    import pyarrow.parquet as pq

    from raynas.results import scan_results

    scan = scan_results(out_dir)
    indices = [c for p in scan.accepted for c in pq.read_table(p, columns=["index"]).column("index").to_pylist()]
    check = {"rows": len(indices), "distinct": len(set(indices)), "duplicates": len(indices) - len(set(indices))}
    if expected is not None:
        check["missing"] = len(expected - set(indices))
        check["foreign"] = len(set(indices) - expected)
    check["rejected_files"] = len(scan.rejected)
    check["ok"] = (check["duplicates"] == 0 and check.get("missing", 0) == 0 and check.get("foreign", 0) == 0
                   and not scan.rejected)
    return check


def summary_line(log: str) -> str:
    return next((line for line in reversed(log.splitlines()) if line.startswith("scored ")), log.strip()[-500:])


# -- the suite ------------------------------------------------------------------------------

class Suite:
    """The budget. ``fixed`` (the CPU test at toy sizes): every phase runs its fixed cell
    count whatever the clock says, each command under its own generous timeout, so that a
    busy machine makes the suite slower, never different."""

    def __init__(self, out: Path, budget_s: float, fixed: bool = False):
        self.out, self.deadline, self.fixed = out, time.monotonic() + budget_s, fixed
        self.report: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "budget_s": budget_s}
        out.mkdir(parents=True, exist_ok=True)

    def left(self) -> float:
        """Seconds left for a command: the budget's rest, or a fixed 600 when ``fixed``."""
        return 600.0 if self.fixed else self.deadline - time.monotonic()

    def save(self) -> None:
        (self.out / "gpu_suite.json").write_text(json.dumps(self.report, indent=2))


def device_facts(device: str) -> dict:
    import torch

    facts = {"device": device, "torch": torch.__version__, "python": sys.version.split()[0]}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        facts.update(gpu=props.name, gpu_memory_mb=props.total_memory / 2**20, cuda=torch.version.cuda)
    return facts


def run(args: argparse.Namespace) -> dict:
    specs = whole_specs(args)  # bad input stops the suite before its first phase
    suite = Suite(Path(args.out), args.budget_s, fixed=args.tiny)
    report = suite.report
    report.update(device_facts(args.device))
    workers = [1, 2] if args.tiny else [int(n) for n in args.sweep_workers.split(",")]
    cells = fixed_cells(2 if args.tiny else args.sweep_cells)
    proxies = "intrain:batch_size=8,resolution=16;gradalign:batch_size=20" if args.tiny else SWEEP_PROXIES
    report["sweep"] = {"cells": cells, "proxies": proxies, "versions": {}}
    versions = [("current", ROOT)] + [baseline_version(b) for b in args.baseline_dir]
    for name, path in versions:
        points = report["sweep"]["versions"].setdefault(name, [])
        for n in workers:
            if suite.left() < (args.ray_reserve_s + 20):
                report["sweep"].setdefault("skipped", []).append(f"{name} ×{n}: out of time")
                continue
            try:
                points.append(sweep_point(path, n, cells, args.device, proxies, min(suite.left(), 300)))
                p = points[-1]
                print(f"sweep {name:8s} {n} worker(s): {p['cells_per_s']:8.2f} cells/s  "
                      f"({', '.join(f'{k} {v:.1f} ms' for k, v in p['ms_per_cell'].items())})", flush=True)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                report["sweep"].setdefault("failed", []).append(f"{name} ×{n}: {exc}")
                print(f"sweep {name} ×{n} failed: {exc}", flush=True)
            suite.save()

    profile_cells = cells[:2] if args.tiny else cells[: args.profile_cells]
    if profile_cells and suite.left() > args.ray_reserve_s:
        try:
            report["profile"] = profile_point(ROOT, profile_cells, args.device, f"params;{proxies}", suite.left() - 20)
            for proxy, p in report["profile"].items():
                print(f"profile {proxy.split(':')[0]:10s} wall {p['wall_ms']:7.1f} ms/cell, GPU busy "
                      f"{p['gpu_busy_ms_per_cell']:6.1f} ms/cell in {p['gpu_ops_per_cell']:,.0f} kernels/copies, "
                      f"{p['cpu_ops_per_cell']:,.0f} aten calls", flush=True)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            report["profile_failed"] = str(exc)
            print(f"profile failed: {exc}", flush=True)
        suite.save()

    ray_cells = 8 if args.tiny else args.ray_cells
    if ray_cells and suite.left() > 30:
        run_dir = suite.out / "ray_run"
        code, log = raynas_score(["--device", args.device, "--cells", f"0:{ray_cells}", "--proxies", proxies,
                                  "--out", str(run_dir), "--progress-interval", "5"], suite.left() - 10)
        report["ray"] = {"returncode": code, "summary": summary_line(log),
                         "packing": [l for l in log.splitlines() if "GPUs per actor" in l],
                         "exactly_once": exactly_once(run_dir, set(range(ray_cells))) if code == 0 else None}
        (suite.out / "ray_run.log").write_text(log)
        print(f"ray: {report['ray']['summary']}; {report['ray']['packing']}; exactly once: {report['ray']['exactly_once']}",
              flush=True)
        suite.save()

    agreement_cells = 2 if args.tiny else args.agreement_cells
    if agreement_cells and suite.left() > args.ray_reserve_s / 2:
        # tiny (CPU): two CPU settings stand in for the device, so that the phase runs
        settings = "default,threads1" if args.device == "cpu" else "default,cuda,cuda_tf32,cuda_bf16"
        agreement_proxies = "intrain:batch_size=8,resolution=16;gradalign:batch_size=20;params" if args.tiny else "all"
        try:
            report["agreement"] = agreement_point(fixed_cells(agreement_cells), settings, agreement_proxies,
                                                  suite.left() - 20)
            for setting, worst in report["agreement"]["largest_relative_difference"].items():
                print(f"agreement {setting} vs CPU (largest relative difference per component): "
                      + ", ".join(f"{c} {d:.1e}" for c, d in worst.items()), flush=True)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            report["agreement_failed"] = str(exc)
            print(f"agreement failed: {exc}", flush=True)
        suite.save()

    report["whole"] = {}
    for n, (dataset, whole_proxies) in enumerate(specs):
        # each run its share of what is left; what an early finisher leaves goes to the next
        share = (suite.left() - 15) / (len(specs) - n)
        if share < 30:
            report["whole"][dataset] = {"skipped": "out of time"}
            continue
        whole_dir = Path(args.whole_dir) if args.whole_dir else suite.out / "whole" / dataset
        whole_cells = ["--cells", "0:6"] if args.tiny else ["--all"]
        start = time.monotonic()
        code, log = raynas_score(["--device", args.device, *whole_cells, "--dataset", dataset, "--proxies", whole_proxies,
                                  "--out", str(whole_dir), "--progress-interval", "30"], share)
        (suite.out / f"whole_{dataset}.log").write_text(log)
        whole = report["whole"][dataset] = {"returncode": code, "seconds": time.monotonic() - start,
                                            "proxies": whole_proxies, "summary": summary_line(log)}
        if (whole_dir / "_raynas_run.json").exists():
            import pyarrow.parquet as pq

            from raynas.results import load_results

            table = load_results(whole_dir)
            whole["exactly_once"] = exactly_once(whole_dir)
            whole["cells"] = table.num_rows
            pq.write_table(table, suite.out / f"nb201_{dataset}_whole.parquet", compression="zstd")
        print(f"whole space, {dataset} ({whole_proxies}): {whole.get('cells', 0)} cells in {whole['seconds']:.0f} s",
              flush=True)
        suite.save()
    report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    suite.save()
    print_table(report)
    return report


def whole_specs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """``--whole DATASET=PROXIES`` as (dataset, proxies) pairs, in order; at toy sizes the
    default is one small CIFAR-10 run."""
    texts = args.whole or [f"cifar10={TINY_WHOLE_PROXIES if args.tiny else WHOLE_PROXIES}"]
    specs = []
    for text in texts:
        dataset, eq, proxies = text.partition("=")
        if not eq or not dataset.strip() or not proxies.strip():
            raise SystemExit(f"--whole {text!r}: write DATASET=PROXIES, e.g. 'imagenet16-120=az_nas;flops'")
        specs.append((dataset.strip(), proxies.strip()))
    datasets = [d for d, _ in specs]
    if len(set(datasets)) != len(datasets):
        raise SystemExit(f"--whole: one run per dataset, got {datasets}")
    if args.whole_dir and len(specs) > 1:
        raise SystemExit("--whole-dir resumes one run: give one --whole with it")
    return specs


def print_table(report: dict) -> None:
    print(f"\n{report.get('gpu', report['device'])} · torch {report['torch']}")
    print(f"{'version':9s} {'workers':>7s} {'cells/s':>9s}  per-proxy ms/cell at that point; peak MiB")
    for name, points in report.get("sweep", {}).get("versions", {}).items():
        for p in points:
            per = ", ".join(f"{k} {v:.1f}" for k, v in p["ms_per_cell"].items())
            peak = ", ".join(f"{k} {v:.0f}" for k, v in p["peak_mb"].items())
            print(f"{name:9s} {p['workers']:7d} {p['cells_per_s']:9.2f}  {per}; {peak}")
    versions = report.get("sweep", {}).get("versions", {})
    best = lambda pts: max(p["cells_per_s"] for p in pts)  # noqa: E731
    one = lambda pts: next((p["cells_per_s"] for p in pts if p["workers"] == 1), float("nan"))  # noqa: E731
    for name, points in versions.items():
        if name != "current" and points and versions.get("current"):
            print(f"speed-up over {name} at 1 worker: {one(versions['current']) / one(points):.1f}×; "
                  f"best vs best: {best(versions['current']) / best(points):.1f}×")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="folder for gpu_suite.json, logs and the whole-space Parquet")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--baseline-dir", action="append", default=[],
                    help="[NAME=]FOLDER holding an earlier raynas/ package (git archive), swept beside this "
                         "checkout; repeatable (default name: baseline)")
    ap.add_argument("--budget-s", type=float, default=480, help="hard limit of the whole suite")
    ap.add_argument("--sweep-cells", type=int, default=24, help="cells per sweep worker")
    ap.add_argument("--sweep-workers", default="1,2,4,8", help="worker counts of the sweep")
    ap.add_argument("--profile-cells", type=int, default=4, help="cells of the profile phase (0: skip it)")
    ap.add_argument("--ray-cells", type=int, default=300, help="cells of the Ray run (0: skip it)")
    ap.add_argument("--agreement-cells", type=int, default=20,
                    help="cells scored with every proxy on the GPU and on the CPU, compared (0: skip it)")
    ap.add_argument("--whole-dir", help="results folder of the whole-space phase's one run; an existing run there "
                                        "is resumed (default: OUT/whole/DATASET)")
    ap.add_argument("--ray-reserve-s", type=float, default=150, help="seconds the sweep leaves for the Ray phases")
    ap.add_argument("--whole", action="append", metavar="DATASET=PROXIES",
                    help="a whole-space run of the last phase, repeatable, in order, each given an equal share of the "
                         f"time left (default: cifar10={WHOLE_PROXIES})")
    ap.add_argument("--tiny", action="store_true", help="toy sizes (CPU test)")
    # worker mode (internal)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--profile-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--proxies", help=argparse.SUPPRESS)
    ap.add_argument("--cells", help=argparse.SUPPRESS)
    ap.add_argument("--ready", help=argparse.SUPPRESS)
    ap.add_argument("--go", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker_main(args)
        return
    if args.profile_worker:
        profile_main(args)
        return
    if not args.out:
        ap.error("--out is required")
    sys.path.insert(0, str(ROOT))
    run(args)


if __name__ == "__main__":
    main()
