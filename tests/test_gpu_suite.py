"""benchmarks/gpu_suite.py end to end on CPU at toy sizes, so that the one-shot GPU run
cannot rot: the Ray-free sweep (this checkout and a baseline package, side by side), the
Ray run checked exactly-once, the agreement check and the whole-space phase, compacted.
``--tiny`` fixes every phase's cell count and ignores the clock, so a busy machine only
makes this test slower."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_suite_runs_every_phase_on_cpu(tmp_path):
    out = tmp_path / "suite"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    # The baseline is this checkout too (CI may have no history to export): the point is
    # that the side-by-side path runs, not the ratio.
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_suite.py"), "--device", "cpu", "--tiny", "--out", str(out),
         "--baseline-dir", str(ROOT)],
        env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "gpu_suite.json").read_text())
    assert report["device"] == "cpu" and report["finished"]
    versions = report["sweep"]["versions"]
    assert [p["workers"] for p in versions["current"]] == [1, 2]
    for point in versions["current"] + versions["baseline"]:
        assert point["cells"] == 2 * point["workers"] and point["errors"] == 0 and point["cells_per_s"] > 0
        assert set(point["ms_per_cell"]) == {"intrain", "gradalign"}
    assert report["ray"]["returncode"] == 0 and report["ray"]["exactly_once"]["ok"]
    assert report["ray"]["exactly_once"]["rows"] == 8
    agreement = report["agreement"]["largest_relative_difference"]["threads1"]
    assert set(agreement) >= {"intrain", "o", "gradalign_1", "params"} and agreement["params"] == 0
    assert list(report["whole"]) == ["cifar10"]  # --whole's default, one run
    whole = report["whole"]["cifar10"]
    assert whole["cells"] == 6 and whole["exactly_once"]["ok"]
    table = pq.read_table(out / "nb201_cifar10_whole.parquet")
    assert table.num_rows == whole["cells"] and set(table.column("dataset").to_pylist()) == {"cifar10"}
    assert table.column("index").to_pylist() == sorted(table.column("index").to_pylist())
    assert "speed-up over baseline at 1 worker" in done.stdout
    profile = report["profile"]  # where one process's time goes, per proxy (params: the build alone)
    assert [p.split(":")[0] for p in profile] == ["params", "intrain", "gradalign"]
    for figures in profile.values():
        assert figures["wall_ms"] > 0 and figures["cpu_ops_per_cell"] > 0
        assert figures["gpu_ops_per_cell"] == 0  # on a CPU: no kernels to count
    assert profile["intrain:batch_size=8,resolution=16"]["cpu_ops_per_cell"] > profile["params"]["cpu_ops_per_cell"]


@pytest.mark.parametrize("whole, message", [
    (["--whole", "cifar10"], "write DATASET=PROXIES"),
    (["--whole", "cifar10=params", "--whole", "cifar10=flops"], "one run per dataset"),
    (["--whole", "cifar10=params", "--whole", "cifar100=params", "--whole-dir", "x"], "--whole-dir resumes one run"),
])
def test_gpu_suite_refuses_bad_whole_runs_before_any_phase(tmp_path, whole, message):
    out = tmp_path / "suite"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_suite.py"), "--device", "cpu", "--tiny",
                           "--out", str(out), *whole], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and message in done.stderr
    assert not out.exists()  # no phase ran
