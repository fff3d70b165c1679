"""TE-NAS (raynas.proxies.te_nas) against values worked by hand."""

import numpy as np
import pytest
import torch
from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies import te_nas
from raynas.proxies.base import ProxyContext

X = torch.tensor([[1.0, 2.0, 0.0, 1.0], [-1.0, 0.5, 1.0, 0.0], [0.5, -1.5, 2.0, 1.0]], dtype=torch.float64)  # full rank


def test_ntk_of_a_linear_model_is_c_times_the_input_gram():
    # f_i = Σ_c (W x_i)_c: ∂f_i/∂W = 1_C x_iᵀ, so Θ = C · X Xᵀ and κ is that of X Xᵀ.
    net = nn.Sequential(nn.Linear(4, 5, bias=False)).double()
    eigenvalues = np.linalg.eigvalsh(5 * (X @ X.T).numpy())
    assert te_nas.ntk_condition(net, X) == pytest.approx(eigenvalues[-1] / eigenvalues[0], rel=1e-9)


def test_ntk_reads_weights_by_name_and_ignores_biases():
    net = nn.Sequential(nn.Linear(4, 5, bias=True)).double()
    eigenvalues = np.linalg.eigvalsh((X @ X.T).numpy())  # a bias would add 1 to every entry
    assert te_nas.ntk_condition(net, X) == pytest.approx(eigenvalues[-1] / eigenvalues[0], rel=1e-9)


def test_linear_regions_count_distinct_relu_patterns():
    conv = nn.Conv2d(1, 2, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).reshape(2, 1, 1, 1))
    net = nn.Sequential(conv, nn.ReLU())
    # Each sample is one pixel x: the pattern is (x > 0, −x > 0). Samples 1, 2 and 4 share
    # (1, 0); 3 has (0, 1); 5 (x = 0) has (0, 0): three distinct patterns.
    x = torch.tensor([1.0, 2.0, -1.0, 0.5, 0.0]).reshape(5, 1, 1, 1)
    assert te_nas.activation_patterns(net, x) == 3
    # A ReLU on a 2-D input is not counted (the official hook looks at 4-D inputs only).
    flat = nn.Sequential(nn.Flatten(), nn.ReLU())
    assert te_nas.activation_patterns(flat, x) == 0


def test_te_nas_components_and_their_signs():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 16, 3))
    batch = ProbeBatch(torch.randn(6, 3, 4, 4), torch.zeros(6, dtype=torch.long))
    got = te_nas.compute(net, batch, te_nas.TeNasOptions(), ProxyContext(torch.device("cpu"), 3, seed=1))
    assert got["te_nas_ntk"] == pytest.approx(-te_nas.ntk_condition(net, batch.inputs))
    assert got["te_nas_ntk"] <= -1.0 and 1 <= got["te_nas_lr"] <= 6
