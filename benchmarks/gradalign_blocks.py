"""GradAlign's CPU block size (``gradalign.CPU_BLOCK_BYTES``) against its two costs: the
dispatch-bound time per cell (the batch-20 probe at 8×8 of ``benchmarks/overhead.py``) and
the aten calls per cell at the default options (more, smaller blocks: more calls).

    RAYNAS_DATA_DIR=../shared/data python benchmarks/gradalign_blocks.py --mib 4,8,16
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import overhead  # noqa: E402

from raynas.proxies import gradalign  # noqa: E402
from raynas.scoring import CellScorer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", default="4,8,16", help="block sizes to try, MiB")
    ap.add_argument("--rounds", type=int, default=2, help="timing rounds (calls are counted in the first)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cells = list(overhead.CELLS)
    tiny = overhead.tiny_scorer("gradalign", None)
    default = CellScorer("nb201", "gradalign", measure_memory=False, threads=1)
    print(f"NB201 cells {', '.join(map(str, cells))}; one thread")
    for round_ in range(args.rounds):
        for mib in (float(m) for m in args.mib.split(",")):
            gradalign.CPU_BLOCK_BYTES = int(mib * 2**20)
            line = f"round {round_ + 1}, {mib:g} MiB: probe {1000 * overhead.median_time(tiny, cells):7.1f} ms/cell"
            if round_ == 0:
                nested, top, _ = overhead.count_calls(default, cells)
                line += f"; default batch: {nested:,.0f} aten calls/cell nested, {top:,.0f} top-level"
            print(line, flush=True)


if __name__ == "__main__":
    main()
