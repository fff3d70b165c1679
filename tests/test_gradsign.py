"""GradSign (raynas.proxies.gradsign) against values worked by hand."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies import gradsign
from raynas.proxies.base import ProxyContext

X = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [0.5, -1.5], [2.0, 1.0], [-0.5, -2.0]])
Y = torch.tensor([0, 1, 1, 0, 2])


def linear(bias: bool = False) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 3, bias=bias))


def by_hand(weight: torch.Tensor) -> float:
    """Per sample, ∂CE/∂W = (softmax − one-hot) xᵀ; then Σ_j |Σ_i sign|."""
    signs = torch.zeros_like(weight)
    for x, y in zip(X, Y):
        p = torch.softmax(weight @ x, 0)
        signs += torch.outer(p - F.one_hot(y, 3).float(), x).sign()
    return float(signs.abs().sum())


def test_gradsign_by_hand_batched_and_looped():
    net = linear()
    want = by_hand(net[0].weight.detach())
    batch = ProbeBatch(X, Y)
    got = gradsign.compute(net, batch, gradsign.GradSignOptions(), ProxyContext(torch.device("cpu"), 3, 0))
    assert got["gradsign"] == want and got["gradsign_mean"] == pytest.approx(want / 6)
    assert gradsign.agreement_looped(net, batch, [net[0].weight]) == want


class WithDeadEnd(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net, self.dead = net, nn.Linear(2, 2, bias=False)

    def forward(self, x):
        self.dead(x)  # runs, but the loss does not depend on it
        return self.net(x)


def test_gradsign_reads_weights_only_and_counts_unreached_ones_as_zero():
    net = linear(bias=True)
    with torch.no_grad():
        net[0].bias.zero_()
    want = by_hand(net[0].weight.detach())
    # A dead-end layer: its weights are counted (mean over 6 + 4) but add no agreement.
    model = WithDeadEnd(net)
    got = gradsign.compute(model, ProbeBatch(X, Y), gradsign.GradSignOptions(), ProxyContext(torch.device("cpu"), 3, 0))
    assert got["gradsign"] == want and got["gradsign_mean"] == pytest.approx(want / 10)


def test_gradsign_of_a_network_that_ignores_its_input_is_degenerate():
    from raynas.proxies.base import DegenerateNetwork

    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3))
    with torch.no_grad():
        net[0].weight.zero_()
    with pytest.raises(DegenerateNetwork):
        gradsign.compute(net, ProbeBatch(X, Y), gradsign.GradSignOptions(), ProxyContext(torch.device("cpu"), 3, 0))
