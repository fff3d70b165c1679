"""Throughput of the whole Ray pipeline: cells/s for N actors (embedded Ray, or --address).

    python benchmarks/throughput.py --actors 1 2 --cells 40                 # CPU actors here
    python benchmarks/throughput.py --device cuda --gpus-per-actor 1 0.5 0.25 --cells 2000

Each configuration scores the same cells into a fresh directory; the time includes actor
start-up (torch import, probe building), so use enough cells to amortise it.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from raynas.distributed.driver import RunOptions, run_scoring


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--proxies", default="intrain;gradalign")
    ap.add_argument("--cells", type=int, default=40)
    ap.add_argument("--start", type=int, default=1000, help="first cell index of the range scored")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--actors", type=int, nargs="*", default=[1, 2], help="CPU actor counts")
    ap.add_argument("--gpus-per-actor", type=float, nargs="*", default=[1.0], help="GPU fractions")
    ap.add_argument("--shard-size", type=int, default=None)
    ap.add_argument("--address", default=None)
    args = ap.parse_args()

    import ray

    configs = ([(n, 1.0) for n in args.actors] if args.device == "cpu" else [(None, f) for f in args.gpus_per_actor])
    cells = list(range(args.start, args.start + args.cells))
    for actors, fraction in configs:
        out = Path(tempfile.mkdtemp(prefix="raynas-bench-"))
        start = time.perf_counter()
        summary = run_scoring(RunOptions(
            space="nb201", proxies=args.proxies, out=out, cells=cells, device=args.device,
            max_actors=actors, num_gpus_per_actor=fraction, shard_size=args.shard_size, address=args.address,
            progress_interval_s=30,
        ))
        seconds = time.perf_counter() - start
        label = f"{summary.actors} {args.device} actor(s)" + (f" at {fraction} GPU each" if args.device == "cuda" else "")
        print(f"{label}: {summary.scored} cells in {seconds:.1f} s = {summary.scored / seconds:.3f} cells/s", flush=True)
        shutil.rmtree(out)
    ray.shutdown()


if __name__ == "__main__":
    main()
