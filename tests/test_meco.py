"""MeCo (raynas.proxies.meco) against values worked by hand."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies import meco
from raynas.proxies.base import ProxyContext


def test_smallest_eigenvalue_of_two_channels_is_one_minus_their_correlation():
    x0, x1 = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 5.0])
    r = np.corrcoef(x0, x1)[0, 1]
    feature = torch.tensor(np.stack([x0, x1]), dtype=torch.float32)
    assert meco.smallest_correlation_eigenvalue(feature) == pytest.approx(1 - abs(r), rel=1e-6)
    # A constant channel's NaN row and column become 0: eigenvalues {1, 0}.
    assert meco.smallest_correlation_eigenvalue(torch.tensor([[1.0, 2.0, 4.0], [3.0, 3.0, 3.0]])) == 0.0
    # One value per channel: every entry NaN, the zero matrix.
    assert meco.smallest_correlation_eigenvalue(torch.ones(5, 1)) == 0.0


def identity_conv_relu() -> nn.Sequential:
    conv = nn.Conv2d(2, 2, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(2).reshape(2, 2, 1, 1))
    return nn.Sequential(conv, nn.ReLU())


def test_meco_sums_every_module_that_returns_a_tensor_by_hand():
    x0, x1 = np.array([1.0, -2.0, 3.0, 4.0]), np.array([1.0, 3.0, -2.0, 5.0])
    image = torch.tensor(np.stack([x0, x1]), dtype=torch.float32).reshape(1, 2, 2, 2)
    r_conv = np.corrcoef(x0, x1)[0, 1]
    r_relu = np.corrcoef(np.maximum(x0, 0), np.maximum(x1, 0))[0, 1]
    # Hooks: the conv (its output is the input), the ReLU, and the Sequential returning the
    # ReLU's output again: (1 − |r_conv|) + 2 (1 − |r_relu|). With C = 2 every channel is
    # among meco_opt's 8, so it is the same scaled by C/8.
    want = (1 - abs(r_conv)) + 2 * (1 - abs(r_relu))
    got = meco.compute(identity_conv_relu(), ProbeBatch(image, torch.zeros(1, dtype=torch.long)),
                       meco.MecoOptions(), ProxyContext(torch.device("cpu"), 2, seed=0))
    assert got["meco"] == pytest.approx(want, rel=1e-6)
    assert got["meco_opt"] == pytest.approx(want * 2 / 8, rel=1e-6)


def test_meco_reads_the_first_sample_only():
    image = torch.randn(1, 2, 3, 3)
    batch = torch.cat([image, torch.randn(3, 2, 3, 3)])
    net = identity_conv_relu()
    ctx = ProxyContext(torch.device("cpu"), 2, seed=0)
    one = meco.compute(net, ProbeBatch(image, torch.zeros(1, dtype=torch.long)), meco.MecoOptions(), ctx)
    four = meco.compute(net, ProbeBatch(batch, torch.zeros(4, dtype=torch.long)), meco.MecoOptions(), ctx)
    assert one == four and math.isfinite(one["meco"])


def test_meco_opt_draws_its_channels_from_the_cell_seed():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3))
    batch = ProbeBatch(torch.randn(1, 3, 9, 9), torch.zeros(1, dtype=torch.long))
    score = lambda seed: meco.compute(net, batch, meco.MecoOptions(), ProxyContext(torch.device("cpu"), 2, seed))  # noqa: E731
    assert score(5) == score(5)
    assert score(5)["meco"] == score(6)["meco"] and score(5)["meco_opt"] != score(6)["meco_opt"]
