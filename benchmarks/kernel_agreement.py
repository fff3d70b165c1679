"""How far a cell's scores move with the arithmetic: convolution kernel, thread count, precision.

The same cells, the same scorer config, scored under several settings in one process:

- ``default``: oneDNN (mkldnn) convolutions, 2 threads;
- ``no_mkldnn``: ``torch.backends.mkldnn.enabled = False`` (another convolution kernel);
- ``threads1``: oneDNN, 1 thread (another blocking of the reductions);
- ``cuda``: the GPU (cuDNN, TF32 off as the scorer sets it), for the GPU suite.

For every component, the largest relative difference |a − b| / max(|a|, |b|) of each
setting against ``default``; with ``--tau``, Kendall τ between the default and the
no_mkldnn scorings of the cells, per score column. ``tests/test_reproducibility.py``
holds the tolerances these figures justify.

    python benchmarks/kernel_agreement.py --space nb201 --cells 0:15625:1563 --proxies all
    python benchmarks/kernel_agreement.py --precision float64 --cells 13714,2000,9000,100
    python benchmarks/kernel_agreement.py --cells 0:15625:78 --settings default,no_mkldnn --tau \\
        --proxies intrain,gradalign,zico --json agreement.json
    python benchmarks/kernel_agreement.py --cells 0:15625:157 --settings default,bf16_cpu --accuracy --proxies intrain
"""

from __future__ import annotations

import argparse
import warnings
import json
import math
import time
from collections.abc import Sequence

import torch
from scipy.stats import kendalltau

from raynas.scoring import CellScorer

SETTINGS = {
    "default": {"mkldnn": True, "threads": 2, "device": "cpu"},
    "no_mkldnn": {"mkldnn": False, "threads": 2, "device": "cpu"},
    "threads1": {"mkldnn": True, "threads": 1, "device": "cpu"},
    "cuda": {"mkldnn": True, "threads": 2, "device": "cuda"},  # the GPU suite's GPU-vs-CPU check
    # reduced precision, measured against the float32 default (issue 21, item 6)
    "bf16_cpu": {"mkldnn": True, "threads": 2, "device": "cpu", "autocast": torch.bfloat16},
    "cuda_tf32": {"mkldnn": True, "threads": 2, "device": "cuda", "tf32": True},
    "cuda_bf16": {"mkldnn": True, "threads": 2, "device": "cuda", "autocast": torch.bfloat16},
}


def score_cells(space: str, proxies: str, cells: Sequence[int], setting: str, precision: str = "float32",
                dataset: str = "cifar10") -> tuple[list[str], list[dict]]:
    """(score columns, rows) of ``cells`` under one of :data:`SETTINGS`."""
    chosen = SETTINGS[setting]
    with torch.backends.mkldnn.flags(enabled=chosen["mkldnn"]):
        scorer = CellScorer(space, proxies, dataset=dataset, device=chosen["device"], threads=chosen["threads"],
                            measure_memory=False, precision=precision)
        # The scorer turns TF32 off on a GPU; this setting turns it back on, for its cells only.
        tf32 = chosen.get("tf32", False)
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
        autocast = chosen.get("autocast")
        try:
            with torch.autocast(chosen["device"], dtype=autocast, enabled=autocast is not None):
                return scorer.score_columns, [scorer.score(c) for c in cells]
        finally:
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False


def relative_difference(a: float, b: float) -> float:
    """|a − b| / max(|a|, |b|); 0 when both are the same NaN or infinity, inf when only one is."""
    if math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
        return 0.0 if (math.isnan(a) and math.isnan(b)) or a == b else math.inf
    scale = max(abs(a), abs(b))
    return abs(a - b) / scale if scale else 0.0


def largest_differences(columns: Sequence[str], rows_a: Sequence[dict], rows_b: Sequence[dict]) -> dict[str, float]:
    """Per column, the largest relative difference over the cells (same cells, same order)."""
    return {c: max(relative_difference(a[c], b[c]) for a, b in zip(rows_a, rows_b)) for c in columns}


def kendall_between(columns: Sequence[str], rows_a: Sequence[dict], rows_b: Sequence[dict]) -> dict[str, float]:
    """Kendall τ between two scorings of the same cells, per column (finite values only)."""
    out = {}
    for c in columns:
        pairs = [(a[c], b[c]) for a, b in zip(rows_a, rows_b) if math.isfinite(a[c]) and math.isfinite(b[c])]
        if len(pairs) > 2 and len({p[0] for p in pairs}) > 1:
            out[c] = float(kendalltau(*zip(*pairs)).statistic)
    return out


def accuracy_tau(space: str, dataset: str, columns: Sequence[str], rows: Sequence[dict]) -> dict[str, float]:
    """Kendall τ of each score column against the space's test accuracy on ``dataset``."""
    from raynas.analysis import rank_correlation
    from raynas.spaces import get_space

    accuracy = get_space(space).ground_truth().by_cell(dataset)
    known = [r for r in rows if r["index"] in accuracy]
    return {c: rank_correlation([r[c] for r in known], [accuracy[r["index"]] for r in known])["kendall_tau"]
            for c in columns}


def parse_cells(text: str) -> list[int]:
    if text.count(":") in (1, 2):
        return list(range(*(int(p) for p in text.split(":"))))
    return [int(c) for c in text.split(",")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="nb201")
    ap.add_argument("--cells", default="13714,2000,9000,100", help="indices, or START:STOP[:STEP]")
    ap.add_argument("--proxies", default="all")
    ap.add_argument("--precision", default="float32")
    ap.add_argument("--settings", default="default,no_mkldnn,threads1")
    ap.add_argument("--tau", action="store_true", help="Kendall τ between default and no_mkldnn, per column")
    ap.add_argument("--accuracy", action="store_true",
                    help="Kendall τ of each column against the benchmark's accuracy, per setting (NaN ranked last)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")  # said on every flags() call
    cells = parse_cells(args.cells)
    settings = args.settings.split(",")
    if "default" not in settings:
        ap.error(f"--settings {args.settings!r}: name 'default' too, the setting the others are compared with")
    scored, seconds = {}, {}
    for setting in settings:
        start = time.perf_counter()
        columns, scored[setting] = score_cells(args.space, args.proxies, cells, setting, args.precision)
        seconds[setting] = time.perf_counter() - start
    report = {"space": args.space, "cells": cells, "precision": args.precision, "seconds": seconds,
              "scores": {s: [{c: r[c] for c in ("index", *columns)} for r in rows] for s, rows in scored.items()},
              "largest_relative_difference": {s: largest_differences(columns, scored["default"], scored[s])
                                              for s in settings if s != "default"}}
    if args.tau:
        report["kendall_default_vs_no_mkldnn"] = kendall_between(columns, scored["default"], scored["no_mkldnn"])
    if args.accuracy:
        report["kendall_vs_accuracy"] = {s: accuracy_tau(args.space, "cifar10", columns, scored[s]) for s in settings}
    print(f"{args.space}, {len(cells)} cells, {args.precision}; seconds per setting: "
          + ", ".join(f"{s} {t:.0f}" for s, t in seconds.items()))
    others = [s for s in settings if s != "default"]
    print(f"{'component':28s}" + "".join(f"{s:>12s}" for s in others) + ("   τ(kernels)" if args.tau else ""))
    for c in columns:
        line = f"{c:28s}" + "".join(f"{report['largest_relative_difference'][s][c]:12.1e}" for s in others)
        if args.tau and c in report["kendall_default_vs_no_mkldnn"]:
            line += f"   {report['kendall_default_vs_no_mkldnn'][c]:.5f}"
        if args.accuracy:
            line += "   τ vs accuracy " + " / ".join(f"{report['kendall_vs_accuracy'][s][c]:.4f}" for s in settings)
        print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, default=str)


if __name__ == "__main__":
    main()
