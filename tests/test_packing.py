"""GPUs per actor from a measured footprint (the measurement itself needs a GPU and runs in
benchmarks/gpu_suite.py; the planning is arithmetic, checked here)."""

import pytest

from raynas.distributed.driver import calibration_cell, check_gpus_per_actor, split_into_shards
from raynas.distributed.packing import Footprint, plan_packing
from raynas.spaces import get_space


def footprint(process_mb: float, total_mb: float = 81_559) -> Footprint:
    return Footprint(process_mb=process_mb, peak_allocated_mb=process_mb / 2, gpu_total_mb=total_mb,
                     gpu_name="NVIDIA H100 80GB HBM3", cell=1462)


def test_small_cells_pack_up_to_the_cap():
    fraction, reason = plan_packing(footprint(2_000))  # 81,559 × 0.9 / 3,000 = 24 fit
    assert fraction == 0.125
    assert "fits 24" in reason and "8 actor(s) per GPU" in reason and "cell 1462" in reason


def test_cpus_per_gpu_and_memory_limit_the_packing():
    assert plan_packing(footprint(2_000), cpus_per_gpu=4)[0] == 0.25
    fraction, reason = plan_packing(footprint(20_000))  # 73,403 // 30,000 = 2
    assert fraction == 0.5 and "2 actor(s)" in reason
    assert plan_packing(footprint(3_000), cpus_per_gpu=3)[0] == 0.3333  # three fit in one GPU
    assert plan_packing(footprint(70_000))[0] == 1.0  # never less than one actor per GPU


@pytest.mark.parametrize("bad", [0, -0.5, 1.5])
def test_gpus_per_actor_must_be_a_fraction_or_whole(bad):
    with pytest.raises(ValueError, match=f"--num-gpus-per-actor must be in \\(0, 1\\] or a whole number, got {bad:g}"):
        check_gpus_per_actor(bad)
    for good in (None, 0.25, 1, 2):
        check_gpus_per_actor(good)


def test_calibration_uses_the_heaviest_nb201_cell():
    space = get_space("nb201")
    cell = calibration_cell(space, [5, 6])
    assert set(space.ops(cell)) == {"nor_conv_3x3"}
    assert calibration_cell(get_space("nb101"), [42, 7]) == 42  # no declared heaviest cell: the first to score


def test_shards_shrink_so_that_every_packed_actor_gets_work():
    cells = list(range(300))
    shards = split_into_shards(cells, "cuda", None, actors=8)  # 128 a shard would feed 3 of 8
    assert len(shards) == 8 and max(map(len, shards)) == 38
    assert [c for s in shards for c in s] == cells  # every cell once, in order
    assert list(map(len, split_into_shards(list(range(15_625)), "cuda", None, actors=8)))[:2] == [128, 128]
    assert list(map(len, split_into_shards(cells, "cuda", 100, actors=8))) == [100, 100, 100]  # asked for
    assert split_into_shards([5, 6], "cpu", None, actors=4) == [[5], [6]]
