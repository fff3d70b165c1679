"""What a cell costs to score on one CPU thread, per space and proxy: the table raynas prints
its estimate from before a run starts (``raynas/data/cell_costs.json``, read by
:mod:`raynas.cost`), and from which it sets the CPU actors' memory request.

    python benchmarks/cell_costs.py --space nb201 --cells 6 --write      # every built-in proxy
    python benchmarks/cell_costs.py --space nb101 --cells 8 --skip te_nas,swap,vkdnw --write
    python benchmarks/cell_costs.py --markdown           # the table of docs/results.md, from the file

Each proxy is measured in a fresh process of its own (``--one PROXY``), as an actor runs:
the process's resident memory after its set-up (imports, probe batches, the space's tables)
is the base; the peak above it over the cells (the cell's network, its gradients, the
proxy's work) is the proxy's. Seconds are per cell (build + the proxy), the mean over the
cells (what many cells cost; NB101 cells differ 15-fold in arithmetic), after one warm-up
cell (the space's smallest) that is not counted. Cells: a fixed random draw of the space's
non-degenerate cells (NB101: of its accuracy sample).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np

TABLE = Path(__file__).resolve().parents[1] / "raynas" / "data" / "cell_costs.json"
# small cells: the warm-up pays only the first-call costs (None: the first measured cell's pool's first)
WARM_UP = {"nb201": 0, "nb101": 3398, "nb_macro": 0, "darts": None, "tnb101_micro": 16}


def measured_cells(space_name: str, n: int, seed: int = 11) -> list[int]:
    from raynas.spaces import get_space

    space = get_space(space_name)
    if space_name == "nb101":
        from raynas.spaces.nb101 import load_ground_truth_table

        pool = np.asarray(load_ground_truth_table().column("index"))
    elif len(space) > 10**7:  # the DARTS space: the cells whose accuracy is known
        from raynas.analysis import load_ground_truth

        pool = load_ground_truth(space_name).table.column("index").to_numpy()
    else:
        pool = np.arange(len(space))
    drawn = np.random.default_rng(seed).permutation(pool)
    return [int(c) for c in drawn if not space.is_degenerate(int(c))][:n]


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure_one(space: str, proxy: str, cells: list[int]) -> dict:
    """In this process: the base memory after set-up, then the cells (run as ``--one``)."""
    import time

    import torch

    from raynas.scoring import CellScorer
    from raynas.spec import default_dataset

    torch.set_num_threads(1)
    scorer = CellScorer(space, proxy, dataset=default_dataset(space), threads=1, measure_memory=False)
    base_mb = _status_mb("VmRSS")
    scorer.score(WARM_UP[space] if WARM_UP[space] is not None else measured_cells(space, 1, seed=0)[0])
    seconds = []
    for cell in cells:
        start = time.perf_counter()
        row = scorer.score(cell)
        seconds.append(time.perf_counter() - start)
        if row["status"] != "ok":
            raise RuntimeError(f"{space} cell {cell}, {proxy}: {row['status']} {row['error']}")
    return {"base_mb": base_mb, "peak_mb": _status_mb("VmHWM") - base_mb, "seconds": statistics.mean(seconds),
            "max_seconds": max(seconds)}


def markdown(table: dict) -> str:
    """Per proxy: seconds and peak memory per cell in each space, and the whole NB201 space
    on one core."""
    spaces = table["spaces"]
    nb201 = spaces.get("nb201", {}).get("proxies", {})
    lines = ["| proxy | NB201 s / cell | NB201 peak MB | whole NB201, one core | NB101 s / cell | NB101 peak MB |",
             "|---|---|---|---|---|---|"]
    for name in sorted({*nb201, *spaces.get("nb101", {}).get("proxies", {})}):
        cells = []
        for space in ("nb201", "nb101"):
            f = spaces.get(space, {}).get("proxies", {}).get(name)
            cells.append(f"{f['seconds']:.2f} | {f['peak_mb']:,.0f}" if f else "– | –")
            if space == "nb201":
                cells.append(f"{f['seconds'] * 15625 / 3600:.1f} h" if f else "–")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    others = [s for s in spaces if s not in ("nb201", "nb101")]
    if others:
        lines += ["", "| proxy | " + " | ".join(f"{s} s / cell | {s} peak MB" for s in others) + " |",
                  "|---|" + "---|---|" * len(others)]
        for name in sorted({n for s in others for n in spaces[s]["proxies"]}):
            cells = [f"{f['seconds']:.2f} | {f['peak_mb']:,.0f}" if (f := spaces[s]["proxies"].get(name)) else "– | –"
                     for s in others]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    bases = ", ".join(f"{s}: {v['base_mb']:.0f} MB, {v['measured']}" for s, v in spaces.items())
    return "\n".join(lines) + f"\n\nBase of a scoring process (plus ~150 MB for a Ray worker): {bases}."


def merged_space(before: dict | None, measured: dict, base_mb: float, note: str) -> dict:
    """A space's entry of the table after measuring ``measured``: where only some of its
    proxies were re-measured, the others keep their figures and the base, and ``note`` is
    added to the record of where the figures come from."""
    if before and set(before["proxies"]) - set(measured):
        return {"measured": f"{before['measured']}; {', '.join(measured)}: {note}",
                "base_mb": before["base_mb"], "proxies": {**before["proxies"], **measured}}
    return {"measured": note, "base_mb": base_mb, "proxies": measured}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default="nb201", choices=sorted(WARM_UP))
    ap.add_argument("--cells", type=int, default=6)
    ap.add_argument("--proxies", default="all", help="proxy names (default: every built-in)")
    ap.add_argument("--skip", default="", help="proxies not to measure (too slow here)")
    ap.add_argument("--write", action="store_true", help=f"merge the figures into {TABLE.name}")
    ap.add_argument("--markdown", action="store_true", help=f"print {TABLE.name} as a markdown table, measure nothing")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads(TABLE.read_text())))
        return
    cells = measured_cells(args.space, args.cells)
    if args.one:
        print(json.dumps(measure_one(args.space, args.one, cells)))
        return

    from raynas.proxies.registry import PROXIES

    names = list(PROXIES) if args.proxies == "all" else args.proxies.split(",")
    skip = set(filter(None, args.skip.split(",")))
    figures = {}
    for name in [n for n in names if n not in skip]:
        out = subprocess.run([sys.executable, __file__, "--space", args.space, "--cells", str(args.cells),
                              "--one", name], capture_output=True, text=True)
        if out.returncode:  # e.g. a real-data proxy on a space without images: refused, in one line
            print(f"{args.space} {name:10s} not measured: {(out.stderr.strip().splitlines() or ['?'])[-1]}", flush=True)
            continue
        figures[name] = json.loads(out.stdout.strip().splitlines()[-1])
        f = figures[name]
        print(f"{args.space} {name:10s} {f['seconds']:8.2f} s/cell (max {f['max_seconds']:.2f})  "
              f"peak {f['peak_mb']:8.1f} MB above a base of {f['base_mb']:.0f} MB", flush=True)
    if args.write:
        table = json.loads(TABLE.read_text()) if TABLE.exists() else {"spaces": {}}
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), platform.processor())
        command = " ".join(["python benchmarks/cell_costs.py", *sys.argv[1:]]).replace(" --write", "")
        note = f"{date.today()}, {cpu}, 1 thread, {args.cells} cells ({command})"
        measured = {n: {"seconds": round(f["seconds"], 3), "peak_mb": round(f["peak_mb"], 1)} for n, f in figures.items()}
        base_mb = statistics.median(f["base_mb"] for f in figures.values())
        table["spaces"][args.space] = merged_space(table["spaces"].get(args.space), measured, base_mb, note)
        TABLE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
        print(f"wrote {TABLE}")


if __name__ == "__main__":
    main()
