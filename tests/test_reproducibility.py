"""A cell's scores do not depend on the convolution kernel or the thread count, within the
tolerances of ``tests/kernel_tolerances.py`` (float32, each exception with its cause) and
to 1e-9 in float64 (but GradAlign's signs of rounding noise, named there).

Each cell is scored with every built-in proxy three ways in one process: oneDNN with 2
threads, the native kernel (``torch.backends.mkldnn.enabled = False``), and oneDNN with 1
thread. The default tier takes one NB201 cell both ways and one NB101 cell across threads
(the native kernel costs ~100 s a cell with every proxy); the slow tier the 10 NB201 and 2
NB101 cells the tolerances were measured on, both ways (``benchmarks/kernel_agreement.py``
measures the same, on any cells).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from kernel_tolerances import tolerance

from raynas.proxies.registry import PROXIES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from kernel_agreement import largest_differences, score_cells  # noqa: E402

FLOAT64_REFERENCE = Path(__file__).parent / "data" / "float64_reference.json"
NB101_PROXIES = "intrain;gradalign:batch_size=32;baselines"  # GradAlign at NB101's paper batch, as the reference
# Every built-in; TE-NAS's NTK takes one backward per sample, so it runs on 16 here (the
# arithmetic is the same at any batch; 64 costs 16x).
EVERY = ";".join("te_nas:batch_size=16" if name == "te_nas" else name for name in PROXIES)
NB201_TEN = list(range(0, 15625, 1563))
NB101_SMALL = ["020d47975f503b9f1e24e6c4e647f2da", "0b777e9e258b202148366f4635fc4b18"]  # two of the smallest cells


def check(space: str, proxies: str, cells: list, precision: str = "float32",
          settings: tuple[str, ...] = ("no_mkldnn", "threads1")) -> list[dict]:
    """Score ``cells`` under each setting; every component within its tolerance of the
    default's. Returns the default rows."""
    columns, default = score_cells(space, proxies, cells, "default", precision)
    assert all(row["status"] in ("ok", "degenerate") for row in default), [r["error"] for r in default]
    failures = []
    for setting in settings:
        _, other = score_cells(space, proxies, cells, setting, precision)
        for column, diff in largest_differences(columns, default, other).items():
            allowed, cause = tolerance(column, precision)
            if not diff <= allowed:
                failures.append(f"{space} {setting} {column}: {diff:.1e} > {allowed:.0e} ({cause})")
    assert not failures, "\n".join(failures)
    return default


def test_nb201_scores_agree_across_kernels_and_threads(shared_data):
    check("nb201", EVERY, [2000])


def test_nb101_scores_agree_across_threads(shared_data):
    check("nb101", NB101_PROXIES, NB101_SMALL[:1], settings=("threads1",))


def test_float64_scores_agree_to_1e9_and_equal_the_stored_ones(shared_data):
    """float64 has one CPU convolution kernel (oneDNN has none for it), so this checks the
    thread count, and every component against ``tests/data/float64_reference.json`` (this
    code's definitions in float64, written on another machine; the command is in
    ``benchmarks/hotpath_reference.py``) to 1e-9: in float64 no ReLU flips, so a stored
    reference can be tight on any CPU, except GradAlign's signs of rounding noise
    (``kernel_tolerances.FLOAT64``, measured between an Intel and an AMD CPU)."""
    reference = json.loads(FLOAT64_REFERENCE.read_text())["cases"]
    rows = check("nb201", EVERY, [c["cell"] for c in reference], "float64", settings=("threads1",))
    for case, row in zip(reference, rows):
        for column, expected in case["scores"].items():
            expected = float(expected)
            if math.isfinite(expected):
                allowed, cause = tolerance(column, "float64")
                assert row[column] == pytest.approx(expected, rel=allowed, abs=1e-12), (case["cell"], column, cause)
            else:
                assert math.isnan(row[column]) if math.isnan(expected) else row[column] == expected, column


@pytest.mark.slow
def test_ten_nb201_and_two_nb101_cells(shared_data):
    check("nb201", EVERY, NB201_TEN)
    check("nb101", NB101_PROXIES, NB101_SMALL)
