"""SWAP's pattern packing, before and after the byte-wise change, in one process: the same
NB201 cells scored alternately with each, counts compared for equality, times summed.

    python benchmarks/swap_packing_ab.py                 # cells 100 2000 9000 13714 5555 777
    python benchmarks/swap_packing_ab.py --old-first --cells 100 2000

The baseline is the former ``distinct_patterns``: every sign widened to int64, times 2^s,
summed over the samples.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from raynas.proxies import swap
from raynas.proxies.activations import relu_output_signs
from raynas.scoring import CellScorer


def int64_sum_patterns(model: nn.Module, inputs: torch.Tensor) -> int:
    signs = relu_output_signs(model, inputs)
    if signs is None:
        return 0
    bits = signs.to(torch.int64)
    weights = torch.bitwise_left_shift(torch.ones(len(inputs), 1, dtype=torch.int64, device=bits.device),
                                       torch.arange(len(inputs), device=bits.device).unsqueeze(1))
    return int(torch.unique((bits * weights).sum(0)).numel())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cells", type=int, nargs="+", default=[100, 2000, 9000, 13714, 5555, 777])
    ap.add_argument("--old-first", action="store_true", help="score each cell with the baseline first")
    args = ap.parse_args()
    byte_wise = swap.distinct_patterns
    order = [("int64 sum", int64_sum_patterns), ("byte-wise", byte_wise)]
    if not args.old_first:
        order.reverse()
    scorer = CellScorer("nb201", "swap", dataset="cifar10", threads=1)
    seconds = {name: 0.0 for name, _ in order}
    try:
        for cell in args.cells:
            scores = {}
            for name, count in order:
                swap.distinct_patterns = count  # the benchmark's switch between the two
                row = scorer.score(cell)
                scores[name] = row["swap"]
                seconds[name] += row["swap_time_s"]
            same = len(set(scores.values())) == 1
            print(f"cell {cell}: {scores} {'equal' if same else 'DIFFERENT'}", flush=True)
    finally:
        swap.distinct_patterns = byte_wise
    print(f"int64 sum {seconds['int64 sum']:.1f} s, byte-wise {seconds['byte-wise']:.1f} s: "
          f"{seconds['byte-wise'] / seconds['int64 sum']:.2f}×")


if __name__ == "__main__":
    main()
