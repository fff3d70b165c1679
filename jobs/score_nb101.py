"""Ray job: score NAS-Bench-101 (423,624 cells; GPU cluster work).

    ray job submit --working-dir . -- python jobs/score_nb101.py --out s3-mounted/results/nb101 --all --device cuda
    python jobs/score_nb101.py --limit 200 --out results/nb101   # embedded Ray, CPU

Arguments are those of ``raynas score`` (see ``raynas score --help``); ``--report`` is on.
"""

import sys

from raynas.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("nb101", sys.argv[1:]))
