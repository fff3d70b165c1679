"""The peers' baseline proxies against values worked by hand on tiny networks, plus the
properties that pin their conventions (signs, invariances, BN removal, shared pass)."""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies import fisher, grad_norm, grasp, jacob_cov, naswot, snip, synflow, zen, zico
from raynas.proxies.base import DegenerateNetwork, ProxyContext
from raynas.proxies.gradient_pass import WEIGHT_GRADS, gradient_pass
from raynas.proxies.registry import BASELINES, PROXIES, parse_proxies
from raynas.scoring import CellScorer

X = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [0.5, -1.5], [2.0, 1.0]], dtype=torch.float64)
Y = torch.tensor([0, 1, 1, 0])
W = torch.tensor([[0.5, -1.0], [1.5, 0.25]], dtype=torch.float64)


def ctx(seed: int = 0) -> ProxyContext:
    return ProxyContext(torch.device("cpu"), 2, seed)


def linear(weight: torch.Tensor = W) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(2, 2, bias=False)).double()
    with torch.no_grad():
        net[0].weight.copy_(weight)
    return net


def ce_gradient(weight: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∂ mean CE / ∂W for logits = W x, by the textbook formula (softmax − one-hot) xᵀ / N."""
    logits = x @ weight.T
    p = torch.exp(logits - logits.logsumexp(1, keepdim=True))
    return (p - F.one_hot(y, 2).double()).T @ x / len(x)


def test_registry_lists_every_baseline_once():
    assert set(BASELINES) <= set(PROXIES)
    assert len(parse_proxies(list(BASELINES))) == len(BASELINES)
    assert [cp.label for cp in parse_proxies("all")] == list(PROXIES)
    assert [cp.label for cp in parse_proxies("intrain;baselines")] == ["intrain", *BASELINES]


def test_grad_norm_and_snip_hand_values():
    g = ce_gradient(W, X, Y)
    batch = ProbeBatch(X, Y)
    assert grad_norm.compute(linear(), batch, grad_norm.GradNormOptions(), ctx())["grad_norm"] == pytest.approx(
        float(torch.sqrt((g**2).sum())), rel=1e-10)
    assert snip.compute(linear(), batch, snip.SnipOptions(), ctx())["snip"] == pytest.approx(
        float((g * W).abs().sum()), rel=1e-10)


def test_snip_scales_with_weights_grad_norm_does_not_see_sign():
    # Flipping the sign of every weight flips logits; for a zero-bias linear layer with
    # symmetric inputs (x and −x both present) the gradient magnitudes are unchanged.
    x = torch.cat([X, -X])
    y = torch.cat([Y, Y])
    batch = ProbeBatch(x, y)
    a = snip.compute(linear(W), batch, snip.SnipOptions(), ctx())["snip"]
    b = snip.compute(linear(-W), batch, snip.SnipOptions(), ctx())["snip"]
    assert a == pytest.approx(b, rel=1e-10)


def test_fisher_hand_value():
    # a = W x (N, 2); ∂CE/∂a = (p − y)/N; F_k = ½ mean_n (a_nk ∂a_nk)²; broadcast over the
    # 2 input weights of channel k.
    a = X @ W.T
    p = torch.softmax(a, 1)
    da = (p - F.one_hot(Y, 2).double()) / len(X)
    expected = float(0.5 * (a * da).pow(2).mean(0).sum() * 2)
    got = fisher.compute(linear(), ProbeBatch(X, Y), fisher.FisherOptions(), ctx())["fisher"]
    assert got == pytest.approx(expected, rel=1e-10)


def test_grasp_equals_minus_w_hessian_gradient():
    # Independent route: the full 4×4 Hessian of the loss in the flattened weights.
    def loss(flat: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(X @ flat.view(2, 2).T, Y)

    hessian = torch.autograd.functional.hessian(loss, W.flatten().clone())
    g = ce_gradient(W, X, Y).flatten()
    expected = float(-(W.flatten() * (hessian @ g)).sum())
    got = grasp.compute(linear(), ProbeBatch(X, Y), grasp.GraspOptions(), ctx())["grasp"]
    assert got == pytest.approx(expected, rel=1e-8)


def test_jacob_cov_of_input_independent_jacobian():
    # logits = W x: every sample's Jacobian is Wᵀ1, so corrcoef = all-ones (N×N) with
    # eigenvalues N, 0, …, 0 → score = −[log(N+k) + 1/(N+k)] − (N−1)[log k + 1/k].
    n, k = len(X), jacob_cov.K
    expected = -(math.log(n + k) + 1 / (n + k)) - (n - 1) * (math.log(k) + 1 / k)
    got = jacob_cov.compute(linear(), ProbeBatch(X, Y), jacob_cov.JacobCovOptions(), ctx())["jacob_cov"]
    assert got == pytest.approx(expected, rel=1e-6)


def test_jacob_cov_is_scale_invariant_and_rejects_constant_jacobians():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    net = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    scaled = copy.deepcopy(net)
    with torch.no_grad():
        scaled[2].weight.mul_(7.0)
        scaled[2].bias.mul_(7.0)
    batch = ProbeBatch(x, torch.zeros(6, dtype=torch.long))
    a = jacob_cov.compute(net, batch, jacob_cov.JacobCovOptions(), ctx())["jacob_cov"]
    b = jacob_cov.compute(scaled, batch, jacob_cov.JacobCovOptions(), ctx())["jacob_cov"]
    assert a == pytest.approx(b, rel=1e-9)
    with pytest.raises(DegenerateNetwork):
        jacob_cov.jacobian_score(torch.ones(4, 3))


def test_synflow_of_a_linear_chain_is_depth_times_flow():
    # Bias-free chain f = W2 W1 x on |W|: R = 1ᵀ|W2||W1|1 is homogeneous of degree 1 in each
    # layer, so Σ |W_l ⊙ ∂R/∂W_l| = R for each layer and synflow = 2R.
    w1 = torch.tensor([[1.0, -2.0], [0.5, 3.0], [-1.0, 1.0]])
    w2 = torch.tensor([[2.0, -1.0, 0.5]])
    net = nn.Sequential(nn.Linear(2, 3, bias=False), nn.Linear(3, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(w1)
        net[1].weight.copy_(w2)
    r = float(w2.abs().sum(0) @ w1.abs().sum(1))
    ones = ProbeBatch(torch.ones(1, 2), torch.zeros(1, dtype=torch.long))
    out = synflow.compute(net, ones, synflow.SynflowOptions(), ctx())
    assert out["synflow"] == pytest.approx(2 * r, rel=1e-12)
    assert out["synflow_log"] == pytest.approx(math.log(2 * r), rel=1e-12)
    assert torch.equal(net[0].weight, w1), "synflow must not modify the caller's network"


def test_synflow_ignores_batchnorm_and_signs():
    gen = torch.Generator().manual_seed(3)
    base = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))
    with_bn = nn.Sequential(base[0], nn.BatchNorm2d(4), base[1], base[2])
    flipped = copy.deepcopy(base)
    with torch.no_grad():
        for p in flipped.parameters():
            p.mul_(torch.where(torch.rand(p.shape, generator=gen) < 0.5, -1.0, 1.0))
    ones = ProbeBatch(torch.ones(1, 3, 5, 5), torch.zeros(1, dtype=torch.long))
    values = [synflow.compute(n, ones, synflow.SynflowOptions(), ctx())["synflow"] for n in (base, with_bn, flipped)]
    assert values[1] == pytest.approx(values[0], rel=1e-12)
    assert values[2] == pytest.approx(values[0], rel=1e-12)


class _TwoBranch(nn.Module):
    """Linear → ReLU → Linear, plus a ReLU branch the output never uses."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2, bias=False)
        self.relu = nn.ReLU()
        self.dead = nn.ReLU()
        self.head = nn.Linear(2, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.eye(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        self.dead(-h)  # computed, never used: NASWOT's backward never visits it
        return self.head(self.relu(h))


def test_naswot_hand_kernel():
    # codes of x = (1, 1), (1, −1), (−1, −1) through identity + ReLU: 11, 10, 00.
    # K = agreements = [[2, 1, 0], [1, 2, 1], [0, 1, 2]], det = 4.
    x = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    out = naswot.compute(_TwoBranch(), ProbeBatch(x, torch.zeros(3, dtype=torch.long)), naswot.NaswotOptions(), ctx())
    assert out["naswot"] == pytest.approx(math.log(4.0), rel=1e-12)


def test_naswot_can_count_dead_end_relus_like_naslib():
    # The dead branch sees −x: codes 00, 01, 11 → K adds [[2,1,0],[1,2,1],[0,1,2]]; total
    # [[4,2,0],[2,4,2],[0,2,4]], det = 4·(16−4) − 2·8 = 32.
    x = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    batch = ProbeBatch(x, torch.zeros(3, dtype=torch.long))
    out = naswot.compute(_TwoBranch(), batch, naswot.NaswotOptions(relus="all"), ctx())
    assert out["naswot"] == pytest.approx(math.log(32.0), rel=1e-12)


def test_naswot_kernel_counts_agreements():
    codes = [torch.tensor([[1, 0, 1], [1, 1, 0]]), torch.tensor([[0], [0]])]
    assert torch.equal(naswot.code_kernel(codes), torch.tensor([[4.0, 2.0], [2.0, 4.0]], dtype=torch.float64))


class _BNFeatures(nn.Module):
    """forward_features = BN(x): no weights to re-initialise, so Zen is hand-computable."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(2)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x)


def test_zen_hand_value_including_running_variance_quirk():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(8, 2, 3, 3, generator=gen)
    c = ctx(seed=11)
    out = zen.compute(_BNFeatures(), ProbeBatch(x, torch.zeros(8, dtype=torch.long)), zen.ZenOptions(), c)
    # Replay with numpy: the same generator gives ε; BN normalises with biased batch
    # variance, running_var follows momentum 0.1 with the unbiased one.
    from raynas.seeding import generator

    eps = torch.randn(x.shape, generator=generator(c.seed)).numpy().astype(np.float64)
    xa = x.numpy().astype(np.float64)
    xb = xa + 0.01 * eps

    def bn(a):
        mean = a.mean(axis=(0, 2, 3), keepdims=True)
        var = a.var(axis=(0, 2, 3), keepdims=True)
        return (a - mean) / np.sqrt(var + 1e-5)

    delta = np.abs(bn(xa) - bn(xb)).reshape(8, -1).sum(1).mean()
    running = 0.9 * (0.9 * 1.0 + 0.1 * xa.var(axis=(0, 2, 3), ddof=1)) + 0.1 * xb.var(axis=(0, 2, 3), ddof=1)
    assert out["zen_expressivity"] == pytest.approx(math.log(delta), rel=1e-4)
    assert out["zen_bn"] == pytest.approx(math.log(math.sqrt(running.mean())), rel=1e-5)
    assert out["zen"] == pytest.approx(out["zen_expressivity"] + out["zen_bn"], rel=1e-12)


def test_zen_reinit_comes_from_the_cell_seed_and_leaves_the_model_alone():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    net.forward_features = net.forward
    before = {k: v.clone() for k, v in net.state_dict().items()}
    batch = ProbeBatch(torch.randn(4, 3, 6, 6, generator=torch.Generator().manual_seed(0)), torch.zeros(4, dtype=torch.long))
    a = zen.compute(net, batch, zen.ZenOptions(), ctx(seed=1))
    b = zen.compute(net, batch, zen.ZenOptions(), ctx(seed=1))
    c = zen.compute(net, batch, zen.ZenOptions(), ctx(seed=2))
    assert a == b and a != c
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_zico_hand_value():
    # Two batches (even and odd rows) → per element μ = mean|g|, σ = |g1 − g2| / 2;
    # one layer → zico = log Σ μ/σ.
    g1 = ce_gradient(W, X[0::2], Y[0::2])
    g2 = ce_gradient(W, X[1::2], Y[1::2])
    mu, sigma = (g1.abs() + g2.abs()) / 2, (g1 - g2).abs() / 2
    for options in (zico.ZicoOptions(), zico.ZicoOptions(noise_tol=0.0)):
        kept = sigma > options.noise_tol * mu
        expected = math.log(float((mu / sigma)[kept].sum()))
        got = zico.compute(linear(), ProbeBatch(X, Y), options, ctx())["zico"]
        assert got == pytest.approx(expected, rel=1e-10)


def test_zico_skips_constant_elements_and_dead_layers():
    same = [torch.tensor([1.0, 2.0])]
    assert zico.zico_from_gradients([same, same]) == 0.0  # σ = 0 everywhere → layer skipped
    a, b = [torch.tensor([1.0, 3.0])], [torch.tensor([1.0, 1.0])]
    assert zico.zico_from_gradients([a, b]) == pytest.approx(math.log(2.0 / 1.0))


def test_zico_noise_tol_skips_elements_whose_batches_coincide_to_rounding():
    """Two batches whose gradients agree to 1e-6: μ/σ ≈ 1e6 is a ratio of rounding
    differences. noise_tol=1e-3 skips it like σ = 0; noise_tol=0 (the official rule) keeps it."""
    a = [torch.tensor([1.0, 3.0, 2.0], dtype=torch.float64)]
    b = [torch.tensor([1.0 + 2e-6, 1.0, 2.0], dtype=torch.float64)]
    assert zico.zico_from_gradients([a, b], noise_tol=1e-3) == pytest.approx(math.log(2.0))
    assert zico.zico_from_gradients([a, b], noise_tol=0.0) == pytest.approx(math.log(2.0 + (1 + 1e-6) / 1e-6))


def test_shared_pass_is_computed_once_per_batch():
    batch = ProbeBatch(X, Y)
    c = ProxyContext(torch.device("cpu"), 2, 0, shared={}, shared_needs=frozenset({"weight_grads", "fisher"}))
    first = gradient_pass(linear(), batch, c, frozenset({WEIGHT_GRADS}))
    assert first.fisher is not None, "the first call computes every product the cell needs"
    assert gradient_pass(linear(), batch, c, frozenset({WEIGHT_GRADS})) is first


def test_proxies_together_equal_proxies_alone_on_nb201(shared_data):
    cell = 13714
    names = ["grad_norm", "snip", "grasp", "fisher", "jacob_cov", "zico", "naswot"]
    together = CellScorer("nb201", names, measure_memory=False).score(cell)
    for name in names:
        alone = CellScorer("nb201", [name], measure_memory=False).score(cell)
        assert alone[name] == together[name], name
    assert together["status"] == "ok" and all(np.isfinite(together[n]) for n in names)


def test_baselines_on_a_degenerate_cell_are_nan_with_status(shared_data):
    from raynas.spaces import get_space

    space = get_space("nb201")
    cell = next(i for i in range(len(space)) if space.is_degenerate(i))
    row = CellScorer("nb201", list(BASELINES), measure_memory=False).score(cell)
    assert row["status"] == "degenerate"
    assert all(math.isnan(row[c]) for c in ("grad_norm", "snip", "jacob_cov", "synflow", "naswot", "zen", "zico"))
    assert row["params"] > 0 and row["flops"] > 0


def test_baselines_are_deterministic_per_cell(shared_data):
    scorer = CellScorer("nb201", ["synflow", "zen", "naswot"], measure_memory=False)
    a = scorer.score(100)
    scorer.score(2000)  # scoring another cell in between must not change cell 100
    b = scorer.score(100)
    assert all(a[c] == b[c] for c in ("synflow", "synflow_log", "zen", "naswot"))
