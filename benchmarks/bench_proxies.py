"""Per-cell time and peak memory of each proxy: median over a fixed set of NB201 cells.

    python benchmarks/bench_proxies.py                       # 50 cells, CPU (or CUDA if present)
    python benchmarks/bench_proxies.py --device cuda --cells 50 --json out.json
    python benchmarks/bench_proxies.py --proxies baselines --alone   # shared pass vs one at a time
    python benchmarks/bench_proxies.py --proxies all --cells 6 --float64  # what float64 costs, per proxy

The first cell is scored twice and its first result dropped (vmap/cuDNN warm-up).
"""

from __future__ import annotations

import argparse
import json
import statistics

import numpy as np
import torch

from raynas.scoring import CellScorer


def fixed_cells(n: int, seed: int = 7) -> list[int]:
    from raynas.spaces import get_space

    space = get_space("nb201")
    rng = np.random.default_rng(seed)
    cells = [int(c) for c in rng.permutation(len(space)) if not space.is_degenerate(int(c))]
    return sorted(cells[:n])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--proxies", default="intrain;gradalign")
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--cells", type=int, default=50)
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="write the medians here too")
    ap.add_argument("--float64", action="store_true",
                    help="also score the same cells in float64 (precision='float64') and print each proxy's cost ratio")
    ap.add_argument("--alone", action="store_true",
                    help="also score each proxy in a scorer of its own and compare the total time")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    scorer = CellScorer("nb201", args.proxies, dataset=args.dataset, device=args.device)
    cells = fixed_cells(args.cells)
    scorer.score(cells[0])  # warm-up
    rows = [scorer.score(c) for c in cells]
    report = {"device": str(scorer.device), "threads": args.threads, "cells": len(cells), "proxies": {}}
    if scorer.device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(scorer.device)
    total = [sum(r[f"{cp.label}_time_s"] for cp in scorer.proxies) + r["build_time_s"] for r in rows]
    print(f"{len(cells)} NB201 cells on {report['device']} ({args.threads} thread(s)), medians:")
    for cp in scorer.proxies:
        t = statistics.median(r[f"{cp.label}_time_s"] for r in rows)
        m = statistics.median(r[f"{cp.label}_peak_mem_mb"] for r in rows)
        mx = max(r[f"{cp.label}_peak_mem_mb"] for r in rows)
        report["proxies"][cp.label] = {"median_s": t, "median_peak_mb": m, "max_peak_mb": mx}
        print(f"  {cp.label:12s} {t:8.3f} s/cell   peak {m:8.1f} MiB (max {mx:.1f})")
    report["median_total_s"] = statistics.median(total)
    print(f"  {'all + build':12s} {report['median_total_s']:8.3f} s/cell")
    if args.alone:
        # The same cells, each proxy in its own scorer: every one builds the cell and pays
        # for its own forward/backward, as when proxies are run one at a time.
        alone_total = [0.0] * len(cells)
        for cp in scorer.proxies:
            single = CellScorer("nb201", [cp], dataset=args.dataset, device=args.device)
            single.score(cells[0])
            for n, c in enumerate(cells):
                r = single.score(c)
                alone_total[n] += r[f"{cp.label}_time_s"] + r["build_time_s"]
        together, alone = statistics.median(total), statistics.median(alone_total)
        report["median_alone_total_s"] = alone
        print(f"  one proxy at a time: {alone:.3f} s/cell; together: {together:.3f} s/cell "
              f"(saves {100 * (1 - together / alone):.0f}%)")
    if args.float64:
        exact = CellScorer("nb201", args.proxies, dataset=args.dataset, device=args.device, precision="float64")
        exact.score(cells[0])
        rows64 = [exact.score(c) for c in cells]
        report["float64"] = {}
        for cp in scorer.proxies:
            t32 = report["proxies"][cp.label]["median_s"]
            t64 = statistics.median(r[f"{cp.label}_time_s"] for r in rows64)
            report["float64"][cp.label] = {"median_s": t64, "ratio": t64 / t32 if t32 else float("nan")}
            print(f"  float64 {cp.label:12s} {t64:8.3f} s/cell   ({t64 / t32 if t32 else float('nan'):.1f}× float32)")
        total64 = statistics.median(sum(r[f"{cp.label}_time_s"] for cp in exact.proxies) + r["build_time_s"]
                                    for r in rows64)
        print(f"  float64 all + build {total64:8.3f} s/cell ({total64 / report['median_total_s']:.1f}× float32)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
