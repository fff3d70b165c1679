"""VKDNW (raynas.proxies.vkdnw) against values worked by hand and the official jacrev path."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies import vkdnw
from raynas.proxies.base import ProxyContext


def test_covariance_factor_reproduces_the_smoothed_softmax_covariance():
    logits = torch.randn(5, 7, dtype=torch.float64)
    p = F.softmax(logits, 1) * (1 - vkdnw.SMOOTHING) + vkdnw.SMOOTHING / 7
    factor = vkdnw.covariance_factor(logits)
    assert torch.allclose(factor @ factor.transpose(1, 2), torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1), atol=1e-12)
    assert torch.equal(factor, torch.tril(factor))
    assert vkdnw.SMOOTHING == 0.0499877929687500  # 0.05 as a float16, as the official code stores it


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, stride=2, padding=1, bias=True)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3, 4)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


def test_closed_form_jacobian_equals_the_official_jacrev():
    torch.manual_seed(0)
    net = Small().double().eval()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-1, 1)
        net.bn.running_var.uniform_(0.5, 2)
    x = torch.randn(5, 2, 6, 6, dtype=torch.float64)
    closed, official = vkdnw.closed_form_jacobian(net, x), vkdnw.autograd_jacobian(net, x)
    assert closed.shape == official.shape == (5, 4, 6)
    assert torch.allclose(closed, official, atol=1e-12)


def test_vkdnw_of_a_linear_model_by_hand():
    # logits = W x + b: the first elements are W[0, 0] and b[0], ∂logits/∂W00 = x_0 e_0 and
    # ∂logits/∂b0 = e_0, so A_n = L_n [x_n0 e_0, e_0] and F = mean_n A_nᵀ A_n (2 × 2).
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(3, 4)).double()
    x = torch.randn(6, 3, dtype=torch.float64)
    got = vkdnw.compute(net, ProbeBatch(x, torch.zeros(6, dtype=torch.long)), vkdnw.VkdnwOptions(),
                        ProxyContext(torch.device("cpu"), 4, seed=3))
    reinit = nn.Sequential(nn.Linear(3, 4)).double()
    reinit.load_state_dict(net.state_dict())
    from raynas.proxies.reinit import kaiming_reinit
    from raynas.seeding import generator

    kaiming_reinit(reinit, generator(3))
    logits = reinit(x).detach()
    fisher = np.zeros((2, 2))
    for n in range(6):
        j = np.zeros((4, 2))
        j[0] = [x[n, 0].item(), 1.0]
        a = vkdnw.covariance_factor(logits[n : n + 1])[0].numpy() @ j
        fisher += a.T @ a / 6
    lam = np.sort(np.linalg.svd(fisher, compute_uv=False))
    q = np.quantile(lam, np.arange(0.1, 1.0, 0.1, dtype=np.float32).astype(np.float64))  # linear, as torch
    t = q / (np.abs(q).sum() + 1e-10)
    entropy = -(t * np.log(t + 1e-10)).sum()
    assert got["vkdnw_entropy"] == pytest.approx(entropy, rel=1e-9)
    assert got["vkdnw_dim"] == 2.0
    assert got["vkdnw_single"] == pytest.approx(2 + entropy / (2 * math.log(9)))


def test_vkdnw_single_orders_by_tensor_count_first():
    # ℵ + H / (2 log 9): any H in [0, log 9] keeps one more tensor ahead.
    assert 3 + 0.0 / vkdnw.SINGLE_SCALE > 2 + math.log(9) / vkdnw.SINGLE_SCALE
