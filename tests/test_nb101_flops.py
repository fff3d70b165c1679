"""benchmarks/nb101_flops.py (issue 25, item 6): the arithmetic it prices NB101 by is the
counted forward MACs × batch × 2 FLOPs × 3 (forward + backward), per cell; peaks by name."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import nb101_flops  # noqa: E402


def test_peaks_are_found_by_device_name():
    assert nb101_flops.device_peaks("NVIDIA H100 PCIe")["float32"] == 51.2e12
    assert nb101_flops.device_peaks("NVIDIA H100 80GB HBM3")["tf32"] == 494.7e12
    assert nb101_flops.device_peaks("NVIDIA H200")["bf16"] == 989.4e12
    assert nb101_flops.device_peaks("cpu") is None


def test_one_cell_is_priced_by_its_counted_arithmetic():
    from raynas.proxies.flops import count_macs
    from raynas.spaces import get_space

    cell = nb101_flops.sample_cells(1)[0]
    result = nb101_flops.measure([cell], "intrain:batch_size=4,resolution=8", ["default"])
    entry = result["settings"]["default"]["intrain"]
    macs = count_macs(get_space("nb101").build(cell, 10), 8)
    assert macs > 0 and entry["flops_per_cell"] == 6 * macs * 4
    assert entry["achieved_flops"] == pytest.approx(entry["flops_per_cell"] / entry["seconds_per_cell"])
    assert entry["fraction_of_peak"] is None and entry["errors"] == 0
    assert entry["whole_space_hours"] == pytest.approx(entry["seconds_per_cell"] * 423_624 / 3600)
