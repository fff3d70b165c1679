"""AZ-NAS (raynas.proxies.az_nas) against values worked by hand and against an independent
computation in the official code's own way (per-position outer products, numpy)."""

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies import az_nas
from raynas.proxies.base import ProxyContext
from raynas.proxies.reinit import kaiming_reinit
from raynas.seeding import generator


def test_spectral_entropy_of_orthogonal_channels_by_hand():
    # Two zero-mean orthogonal channels over 4 positions, variances a² and b²:
    # Σ = diag(a², b²), p = (a², b²)/(a² + b²).
    a, b = 1.0, 2.0
    c0 = torch.tensor([1.0, -1.0, 1.0, -1.0]) * a
    c1 = torch.tensor([1.0, 1.0, -1.0, -1.0]) * b
    feature = torch.stack([c0, c1]).reshape(1, 2, 2, 2)
    p = np.array([a * a, b * b]) / (a * a + b * b)
    assert az_nas.spectral_entropy(feature) == pytest.approx(float(-(p * np.log(p + 1e-8)).sum()), rel=1e-12)
    # Equal variances give the maximum, log 2; perfectly correlated channels give 0.
    assert az_nas.spectral_entropy(torch.stack([c0, c1 / b]).reshape(1, 2, 2, 2)) == pytest.approx(math.log(2), abs=1e-7)
    assert az_nas.spectral_entropy(torch.stack([c0, 3 * c0]).reshape(1, 2, 2, 2)) == pytest.approx(0.0, abs=1e-6)


def _pair(f_in: torch.Tensor, op) -> float:
    f_in = f_in.clone().requires_grad_(True)
    return az_nas.pair_trainability(f_in, op(f_in), generator(0))


def test_pair_trainability_by_hand():
    x = torch.randn(1, 1, 2, 2)
    # f_out = 3 f_in: g_in = 3 g_out, M = 3 Σ g² / 4 = 3 for ±1 entries, σ = 3.
    assert _pair(x, lambda f: 3 * f) == pytest.approx(-3 - 1 / (3 + 1e-6) + 2, rel=1e-12)
    # An identity cell: g_in == g_out exactly, −inf as in the official code.
    assert _pair(x, lambda f: f * 1.0) == -math.inf
    # f_out independent of f_in (the official Zero op's gradient is 0): σ = 0.
    assert _pair(x, lambda f: torch.zeros_like(f) + torch.ones(1)) == pytest.approx(-1 / 1e-6 + 2)
    # Across a reduction: f_out = 2·f_in at even positions; after pixel-unshuffle only the
    # (0, 0) phase channel carries 2·g_out, so M = (2, 0, 0, 0)ᵀ and σ = 2.
    x4 = torch.randn(1, 1, 4, 4)
    assert _pair(x4, lambda f: 2 * f[:, :, ::2, ::2]) == pytest.approx(-2 - 1 / (2 + 1e-6) + 2, rel=1e-12)


def test_kaiming_reinit_is_fan_in_normal_from_the_seed():
    net = nn.Sequential(nn.Conv2d(16, 32, 3), nn.BatchNorm2d(32), nn.Linear(8, 4))
    with torch.no_grad():
        net[1].weight.fill_(5.0)
        net[1].bias.fill_(5.0)
    kaiming_reinit(net, generator(3))
    std = float(net[0].weight.detach().std())
    assert std == pytest.approx(math.sqrt(2 / (16 * 9)), rel=0.05)
    assert float(net[0].bias.abs().max()) == 0.0 and float(net[2].bias.abs().max()) == 0.0
    assert torch.equal(net[1].weight, torch.ones(32)) and torch.equal(net[1].bias, torch.zeros(32))
    again = copy.deepcopy(net)
    kaiming_reinit(again, generator(3))
    assert torch.equal(again[0].weight, net[0].weight)


class TinyCells(nn.Module):
    """A stem and three cells, one a reduction: the shape of model AZ-NAS reads."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))
        self.cells = nn.Sequential(
            nn.Sequential(nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)),
            nn.Sequential(nn.ReLU(), nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8)),
            nn.Sequential(nn.ReLU(), nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8)),
        )
        self.classifier = nn.Linear(8, 3)

    def forward(self, x):
        return self.classifier(self.cells(self.stem(x)).mean((2, 3)))


def official_way(model: nn.Module, x: torch.Tensor, seed: int) -> dict[str, float]:
    """The official procedure, written independently: numpy covariance and eigenvalues,
    the per-position outer-product mean ("straight-forward way") for M, numpy SVD."""
    net = copy.deepcopy(model).train()
    gen = generator(seed)
    kaiming_reinit(net, gen)  # checked on its own above
    feats = [net.stem(x)]
    for cell in net.cells:
        feats.append(cell(feats[-1]))
    entropies = []
    for f in feats:
        b, c, h, w = f.shape
        m = f.detach().permute(0, 2, 3, 1).reshape(b * h * w, c).numpy().astype(np.float64)
        m = m - m.mean(0, keepdims=True)
        s = np.linalg.eigvalsh(m.T @ m / len(m))
        p = s / s.sum()
        entropies.append(float((-p * np.log(p + 1e-8)).sum()))
    scores = []
    for i in reversed(range(1, len(feats))):
        g_out = (torch.randint(0, 2, feats[i].shape, generator=gen) * 2 - 1).float()
        g_in = torch.autograd.grad(feats[i], feats[i - 1], g_out, retain_graph=True)[0]
        if g_in.shape[2] != g_out.shape[2]:
            g_in = nn.PixelUnshuffle(g_in.shape[2] // g_out.shape[2])(g_in)
        bo, co, ho, wo = g_out.shape
        go = g_out.permute(0, 2, 3, 1).reshape(-1, 1, co).double().numpy()
        gi = g_in.permute(0, 2, 3, 1).reshape(-1, g_in.shape[1], 1).double().numpy()
        mat = (gi @ go).mean(0)
        sigma = np.linalg.svd(mat, compute_uv=False).max()
        scores.append(-sigma - 1 / (sigma + 1e-6) + 2)
    return {"az_expressivity": sum(entropies),
            "az_progressivity": float(np.min(np.diff(entropies))),
            "az_trainability": float(np.mean(scores))}


def test_az_nas_equals_the_official_procedure_on_a_tiny_network():
    torch.manual_seed(0)
    model = TinyCells()
    x = torch.randn(6, 3, 8, 8)
    got = az_nas.compute(model, ProbeBatch(x, torch.zeros(6, dtype=torch.long)), az_nas.AzNasOptions(),
                         ProxyContext(torch.device("cpu"), 3, seed=11))
    want = official_way(model, x, 11)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


def test_az_nas_refuses_a_model_without_cells():
    with pytest.raises(TypeError, match="has no stem and chain of cells"):
        az_nas.compute(nn.Linear(3, 2), ProbeBatch(torch.randn(2, 3), torch.zeros(2, dtype=torch.long)),
                       az_nas.AzNasOptions(), ProxyContext(torch.device("cpu"), 2, seed=0))
