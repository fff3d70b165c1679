"""SWAP (raynas.proxies.swap) against values worked by hand."""

import pytest
import torch
from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies import swap
from raynas.proxies.base import ProxyContext


def identity_relu() -> nn.Sequential:
    conv = nn.Conv2d(1, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    return nn.Sequential(conv, nn.ReLU())


def test_distinct_patterns_by_hand():
    # 3 samples of one channel at 2×2: neuron (pixel) patterns across samples are the columns
    # of the sign matrix; pixels 0 and 3 share (1, 0, 1), pixel 1 is (0, 0, 0), pixel 2 (1, 1, 0).
    x = torch.tensor([[1.0, -1.0, 2.0, 3.0], [-1.0, -2.0, 1.0, -1.0], [4.0, -1.0, -2.0, 0.5]]).reshape(3, 1, 2, 2)
    assert swap.distinct_patterns(identity_relu(), x) == 3
    # The same count as the official unique over the transposed sign matrix.
    signs = torch.sign(torch.relu(x)).reshape(3, -1)
    assert torch.unique(signs.T, dim=0).shape[0] == 3


def test_swap_ignores_relus_on_flat_inputs_and_averages_over_reinits():
    x = torch.randn(4, 2, 3, 3)
    flat = nn.Sequential(nn.Flatten(), nn.ReLU())
    assert swap.distinct_patterns(flat, x) == 0
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU())
    ctx = ProxyContext(torch.device("cpu"), 2, seed=5)
    batch = ProbeBatch(x, torch.zeros(4, dtype=torch.long))
    one = swap.compute(net, batch, swap.SwapOptions(batch_size=4, repeats=1), ctx)["swap"]
    many = swap.compute(net, batch, swap.SwapOptions(batch_size=4, repeats=5), ctx)["swap"]
    assert one == float(int(one)) and 1 <= one <= 2 ** 4  # at most 16 patterns of 4 samples
    assert many == swap.compute(net, batch, swap.SwapOptions(batch_size=4, repeats=5), ctx)["swap"]  # seeded
    with pytest.raises(ValueError, match="batch_size must be in 2..62"):
        swap.SwapOptions(batch_size=100)


def test_regularised_swap_scales_each_count_by_the_size_factor():
    # Conv2d(2, 3, 3) with bias: 2·3·9 + 3 = 57 parameters = 0.057 thousand.
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU())
    x = torch.randn(4, 2, 3, 3)
    ctx = ProxyContext(torch.device("cpu"), 2, seed=5)
    batch = ProbeBatch(x, torch.zeros(4, dtype=torch.long))
    plain = swap.compute(net, batch, swap.SwapOptions(batch_size=4, repeats=3), ctx)["swap"]
    regular = swap.compute(net, batch, swap.SwapOptions(batch_size=4, repeats=3, mu=0.05, sigma=0.0001), ctx)["swap"]
    assert swap.size_factor(net, 0.05, 0.0001) == pytest.approx(0.6126, abs=1e-4)  # exp(-(0.007²)/1e-4)
    assert regular == pytest.approx(plain * 0.612626394, rel=1e-9)
    assert swap.size_factor(net, 0.057, 1.0) == 1.0  # at the preferred size
    with pytest.raises(ValueError, match="mu and sigma go together"):
        swap.SwapOptions(mu=500.0)
    with pytest.raises(ValueError, match="sigma must be positive"):
        swap.SwapOptions(mu=500.0, sigma=0.0)


def test_pattern_codes_put_sample_s_in_bit_s_for_every_batch_size():
    gen = torch.Generator().manual_seed(3)
    for samples in (2, 7, 8, 9, 16, 17, 62):
        signs = torch.rand(samples, 50, generator=gen) > 0.5
        expected = [sum(int(signs[s, n]) << s for s in range(samples)) for n in range(50)]
        assert swap.pattern_codes(signs).tolist() == expected
    # All 62 samples on: the top bit in use is 61, still a positive int64.
    assert swap.pattern_codes(torch.ones(62, 1, dtype=torch.bool)).item() == (1 << 62) - 1
