"""Ray job: score NAS-Bench-201.

    ray job submit --working-dir . -- python jobs/score_nb201.py --out /shared/results/nb201 --all --device cuda
    python jobs/score_nb201.py --out results/nb201        # embedded Ray, first 48 cells, CPU

Arguments are those of ``raynas score`` (see ``raynas score --help``); ``--report`` is on.
"""

import sys

from raynas.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if not any(a == "--out" or a.startswith("--out=") for a in args):
        args += ["--out", "results/nb201"]
    sys.exit(main(["score", "nb201", "--report", *args]))
