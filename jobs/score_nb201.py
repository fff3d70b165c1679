"""Ray job: score NAS-Bench-201.

    ray job submit --working-dir . -- python jobs/score_nb201.py --out /shared/results/nb201 --all --device cuda
    python jobs/score_nb201.py --out results/nb201        # embedded Ray, first 48 cells, CPU

Arguments are those of ``raynas score`` (see ``raynas score --help``); ``--report`` is on.
"""

import sys

from raynas.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("nb201", sys.argv[1:]))
