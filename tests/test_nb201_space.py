import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F

from raynas.spaces import get_space
from raynas.spaces.nb201 import NUM_CELLS, format_arch, has_input_output_path, parse_arch

SPACE = get_space("nb201")
ARCH_13714 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"


def n_params(index: int, classes: int) -> int:
    return sum(p.numel() for p in SPACE.build(index, classes).parameters())


def test_size_and_round_trip():
    assert len(SPACE) == NUM_CELLS == 15_625
    for i in (0, 1, 777, 13714, 15624):
        assert SPACE.index_of(SPACE.arch_str(i)) == i
    assert SPACE.index_of(ARCH_13714) == 13714
    assert format_arch(parse_arch(ARCH_13714)) == ARCH_13714


def test_index_mapping_matches_ground_truth(shared_data):
    gt = pq.read_table(shared_data / "nb201" / "ground_truth.parquet", columns=["index", "arch"]).to_pydict()
    assert [SPACE.arch_str(i) for i in range(NUM_CELLS)] == gt["arch"]


@pytest.mark.parametrize("bad", [
    "", "|none~0|", "|none~0|+|none~0|none~1|", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
])
def test_malformed_arch_strings_name_the_input(bad):
    with pytest.raises(ValueError, match="arch"):
        SPACE.index_of(bad)


@pytest.mark.parametrize("bad", [-1, 15_625, 10**9, 2.5, True])
def test_out_of_range_index(bad):
    with pytest.raises(ValueError, match="NB201 index"):
        SPACE.index_of(bad)


def test_param_counts_hand_checked():
    # Numbers from the official API printout for arch 13714 (C10 / C100 / ImageNet16-120).
    assert n_params(13714, 10) == 1_073_466
    assert n_params(13714, 100) == 1_079_316
    assert n_params(13714, 120) == 1_080_616
    assert n_params(3558, 10) == 858_426


def check_param_counts(indices, gt):
    """Exact equality with the benchmark's params_mb; 199 cells in the NATS export carry a
    mean over 3 records of which one holds another cell's cost — for those, ours must be the
    2-of-3 majority record (3·v − 2·ours is itself the count of some cell)."""
    mb = np.asarray(gt["params_mb"]) * 1e6
    all_counts = None
    for i in indices:
        ours = n_params(i, 10)
        if abs(mb[i] - round(mb[i])) < 1e-3:
            assert ours == round(mb[i]), (i, ours, mb[i])
        else:
            if all_counts is None:
                integral = np.abs(mb - np.round(mb)) < 1e-3
                all_counts = set(np.round(mb[integral]).astype(int).tolist())
            assert round(3 * mb[i] - 2 * ours) in all_counts, (i, ours, mb[i])


def test_param_counts_match_benchmark_sample(shared_data):
    gt = pq.read_table(shared_data / "nb201" / "ground_truth.parquet", columns=["params_mb"]).to_pydict()
    check_param_counts(range(0, NUM_CELLS, 53), gt)  # ~300 cells


@pytest.mark.slow
def test_param_counts_match_benchmark_all(shared_data):
    gt = pq.read_table(shared_data / "nb201" / "ground_truth.parquet", columns=["params_mb"]).to_pydict()
    check_param_counts(range(NUM_CELLS), gt)


def test_degenerate_cells_are_the_341_without_a_path():
    degenerate = [i for i in range(NUM_CELLS) if SPACE.is_degenerate(i)]
    assert len(degenerate) == 341
    assert not has_input_output_path(("none",) * 6)
    assert has_input_output_path(("none", "none", "none", "skip_connect", "none", "none"))
    assert not has_input_output_path(("skip_connect", "none", "none", "none", "none", "nor_conv_3x3"))


def test_degenerate_cells_have_constant_output_and_others_do_not():
    import torch

    x = torch.randn(4, 3, 16, 16)
    degenerate = [i for i in range(0, NUM_CELLS, 7) if SPACE.is_degenerate(i)][:5]
    alive = [i for i in range(0, NUM_CELLS, 7) if not SPACE.is_degenerate(i)][:5]
    for i in degenerate + alive:
        out = SPACE.build(i, 10).train()(x).detach()
        assert bool((out == out[:1]).all()) == (i in degenerate), i


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-6), (torch.float64, 1e-14)])
@pytest.mark.parametrize("shape", [(4, 16, 32, 32), (3, 5, 8, 8), (2, 3, 2, 2), (2, 3, 1, 5), (1, 2, 1, 1)])
def test_avg_pool_3x3_is_torch_s_pool_without_padding_counted(dtype, tol, shape):
    from raynas.spaces.nb201_network import AvgPool3x3, avg_pool_3x3

    x = torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(3), requires_grad=True)
    cotangent = torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(4))
    ours, torchs = avg_pool_3x3(x), F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    (g_ours,) = torch.autograd.grad(ours, x, cotangent)
    (g_torch,) = torch.autograd.grad(torchs, x, cotangent)
    assert ours.dtype == dtype and ours.shape == x.shape
    assert ((ours - torchs).abs().max() / torchs.abs().max()).item() <= tol
    assert ((g_ours - g_torch).abs().max() / g_torch.abs().max()).item() <= tol
    # a corner's mean is over its 4 in-map neighbours, an edge's over 6 (a 2×2 map: all 4 everywhere)
    ones = torch.ones(1, 1, 4, 4, dtype=dtype)
    x4 = torch.arange(16, dtype=dtype).reshape(1, 1, 4, 4)
    assert torch.equal(avg_pool_3x3(ones), ones)
    assert avg_pool_3x3(x4)[0, 0, 0, 0].item() == pytest.approx((0 + 1 + 4 + 5) / 4)
    assert avg_pool_3x3(x4)[0, 0, 0, 1].item() == pytest.approx((0 + 1 + 2 + 4 + 5 + 6) / 6)
    assert isinstance(AvgPool3x3(), torch.nn.AvgPool2d)  # what the fused path recognises a pool edge by
