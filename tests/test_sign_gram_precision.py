"""benchmarks/sign_gram_precision.py (issue 25, item 5): the check the GPU suite runs on
GradAlign's ±1 sign Gram in reduced precision, on the CPU: fp32 and integer products are
exact; a bf16 *result* holds integers only up to 256, whatever its accumulator."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import sign_gram_precision as sg  # noqa: E402


def test_exactness_of_each_precision_on_the_cpu():
    wide = sg.measure("cpu", classes=2, rows=8, columns=4096, repeats=1)["dtypes"]
    assert wide["float32"]["exact"] and wide["int8"]["exact"]
    # the diagonal holds ~2/3 · 4096 nonzero squares: past bf16's 256, so a bf16 result rounds
    assert not wide["bfloat16"]["exact"] and wide["bfloat16"]["max_abs_error"] >= 1
    narrow = sg.measure("cpu", classes=2, rows=8, columns=200, repeats=1)["dtypes"]
    assert narrow["bfloat16"]["exact"] and narrow["float16"]["exact"]
    assert "error" in narrow["bfloat16_out32"] or narrow["bfloat16_out32"]["exact"]  # a GPU-only kernel
