import math

import pytest
import torch
from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies.base import DegenerateNetwork, ProxyContext
from raynas.proxies.intrain import InTrainOptions, compute, gradient_resilience, participation_ratio

SIGNS = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
CTX = ProxyContext(torch.device("cpu"), 2, 0)


def test_pr_hand_values():
    # Cov = I → PR = 2; Cov = diag(1, 4) → PR = 25/17; identical channels → PR = 1.
    assert participation_ratio(SIGNS) == pytest.approx(2.0, rel=1e-8)
    assert participation_ratio(SIGNS * torch.tensor([1.0, 2.0])) == pytest.approx(25 / 17, rel=1e-8)
    assert participation_ratio(SIGNS[:, :1].repeat(1, 3)) == pytest.approx(1.0, rel=1e-8)


def test_pr_conv_layout_uses_channels():
    # (N, C, H, W) → rows over N·H·W: 3 independent equal-variance channels → PR ≈ 3.
    gen = torch.Generator().manual_seed(0)
    act = torch.randn(64, 3, 8, 8, generator=gen)
    assert participation_ratio(act) == pytest.approx(3.0, rel=0.02)


def test_pr_bounds_and_scale_invariance():
    gen = torch.Generator().manual_seed(1)
    for channels in (1, 2, 7, 32):
        a = torch.randn(200, channels, generator=gen) @ torch.randn(channels, channels, generator=gen)
        pr = float(participation_ratio(a))
        assert 1.0 - 1e-9 <= pr <= channels + 1e-9
        assert float(participation_ratio(a * 1e3)) == pytest.approx(pr, rel=1e-6)


def test_dead_layers_count_as_collapsed():
    assert participation_ratio(torch.zeros(16, 8, 4, 4)) == 1.0
    assert participation_ratio(torch.full((16, 8), 3.5)) == 1.0  # constant: no variance
    # A tiny but real signal is not dead: the threshold is relative to the activation scale.
    assert participation_ratio(SIGNS * 1e-6) == pytest.approx(2.0, rel=1e-3)


def test_gradient_resilience_hand_values():
    def r(*values: float) -> float:
        return float(gradient_resilience([torch.tensor(values)])[0])

    assert r(1.0, -1.0, 1.0, -1.0) == pytest.approx(1.0)
    # mean 1, population std √3, max 4 → √3 / 4
    assert r(0.0, 0.0, 0.0, 4.0) == pytest.approx(math.sqrt(3) / 4)
    assert r(0.0, 0.0, 0.0, 0.0, 0.0) == 0.0
    assert math.isnan(r(1.0, float("nan")))
    assert math.isnan(r(float("inf"), 1.0))


def test_noise_level_tensors_count_as_zero():
    """A tensor whose max|g| is at most noise_tol times the largest of all adds 0 (its
    std/max of rounding noise would be an arbitrary number in [0, 1]); the rest are
    untouched, and noise_tol=0 keeps everything that is not exactly zero."""
    g = torch.Generator().manual_seed(1)
    real, tiny = torch.randn(50, generator=g), torch.randn(20, generator=g) * 1e-9
    alone = [float(gradient_resilience([t])[0]) for t in (real, tiny)]
    for batched in (False, True):
        kept = gradient_resilience([real, tiny], batched=batched, noise_tol=1e-8).tolist()
        assert kept == pytest.approx([alone[0], 0.0], rel=1e-12)
        assert gradient_resilience([real, tiny], batched=batched, noise_tol=0.0).tolist() == pytest.approx(alone, rel=1e-12)
        assert math.isnan(float(gradient_resilience([real, torch.tensor([1.0, float("nan")])], batched=batched,
                                                    noise_tol=1e-8)[1]))


def test_o_zero_tensors_counts_the_shift_a_later_bn_removes():
    """conv-BN-conv1x1-BN-ReLU-pool-linear: the first BN's shift reaches the second, train-mode
    BN as a per-channel constant and is removed, so its exact gradient is zero and its float32
    gradient rounding noise; it is the one tensor that counts as zero."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.Conv2d(6, 6, 1, bias=False),
                          nn.BatchNorm2d(6), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))
    batch = ProbeBatch(torch.randn(16, 3, 8, 8), torch.arange(16) % 3)
    ctx = ProxyContext(torch.device("cpu"), 3, 0)
    out = compute(model, batch, InTrainOptions(noise_tol=1e-6), ctx)  # its noise: 1.4e-8 of the largest |g|
    assert out["o_zero_tensors"] == 1.0
    model.zero_grad()
    old = compute(model, batch, InTrainOptions(noise_tol=0.0), ctx)
    assert old["o_zero_tensors"] == 0.0 and old["gamma"] == out["gamma"]
    assert 0.0 < old["o"] - out["o"] <= 1.0  # the noise tensor's arbitrary ratio, gone


def test_gradient_resilience_segments_are_independent(monkeypatch):
    """All tensors at once (one concatenated vector, the GPU path) equals each tensor alone
    (the CPU path), whatever the shapes and scales of its neighbours."""
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(3, 4, generator=g) * 1e3, torch.zeros(7), torch.randn(5, generator=g).abs(), torch.ones(1) * 2,
             torch.tensor([1.0, float("nan")])]
    alone = torch.cat([gradient_resilience([t], batched=False) for t in grads])
    together = gradient_resilience(grads, batched=True)
    assert torch.allclose(together, alone, rtol=1e-12, equal_nan=True)
    assert torch.allclose(gradient_resilience(grads), alone, rtol=1e-12, equal_nan=True)  # CPU default
    assert alone[1] == 0.0 and alone[3] == 0.0 and alone[4].isnan()  # all-zero; one element: std 0
    assert gradient_resilience([]).numel() == 0


def test_intrain_on_identity_linear_layer():
    # logits = x for x ∈ {±1}², labels 0: activation Cov = I → γ = log 2, L = 1. The weight
    # gradient is [[a, −a], [−a, a]] (worked by hand), so r = std/max = 1 and o = 1:
    # I = γ (1 + o) / log(L + 1) = log 2 · 2 / log 2 = 2.
    net = nn.Sequential(nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(2))
    out = compute(net, ProbeBatch(SIGNS, torch.zeros(4, dtype=torch.long)), InTrainOptions(), CTX)
    assert out["gamma"] == pytest.approx(math.log(2), rel=1e-8)
    assert out["L"] == 1.0
    assert out["o"] == pytest.approx(1.0, rel=1e-6)
    assert out["intrain"] == pytest.approx(2.0, rel=1e-6)
    g = net[0].weight.grad
    a = float(g[0, 0])
    assert a > 0 and torch.allclose(g, torch.tensor([[a, -a], [-a, a]]))


def test_intrain_grad_param_choices():
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2))
    batch = ProbeBatch(SIGNS, torch.tensor([0, 1, 0, 1]))
    o_multi = compute(net, batch, InTrainOptions(grad_params="multi_element"), CTX)["o"]
    net.zero_grad()
    o_weights = compute(net, batch, InTrainOptions(grad_params="weights"), CTX)["o"]
    # Every tensor has > 1 element here; "weights" drops the two bias vectors.
    assert 0 < o_weights < o_multi <= 4


def test_intrain_raises_on_input_independent_output():
    net = nn.Sequential(nn.Linear(2, 2))
    with torch.no_grad():
        net[0].weight.zero_()
    with pytest.raises(DegenerateNetwork):
        compute(net, ProbeBatch(SIGNS, torch.zeros(4, dtype=torch.long)), InTrainOptions(), CTX)


def test_batched_participation_ratios_equal_one_at_a_time(monkeypatch):
    """Layers of one shape are stacked (and split into groups by memory); each PR is the one
    computed alone, in the layers' order, collapsed layers included."""
    from raynas.proxies import intrain
    from raynas.proxies.intrain import participation_ratios

    gen = torch.Generator().manual_seed(2)
    acts = [torch.randn(4, 3, 5, 5, generator=gen), torch.randn(6, 8, generator=gen), torch.zeros(4, 3, 5, 5),
            torch.randn(4, 3, 5, 5, generator=gen) * 1e3, torch.randn(6, 8, generator=gen)]
    alone = torch.stack([participation_ratio(a) for a in acts])
    assert torch.allclose(participation_ratios(acts), alone, rtol=1e-12, atol=0)
    assert participation_ratios(acts)[2] == 1.0
    monkeypatch.setattr(intrain, "GROUP_BYTES", {"cpu": 2**30})  # stacked, as on a GPU
    assert torch.allclose(participation_ratios(acts), alone, rtol=1e-12, atol=0)
    monkeypatch.setattr(intrain, "GROUP_BYTES", {"cpu": 8 * 300 * 2})  # two 4×3×5×5 layers per group
    assert torch.allclose(participation_ratios(acts), alone, rtol=1e-12, atol=0)
