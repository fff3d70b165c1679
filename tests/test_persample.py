"""Closed-form per-sample gradients (raynas.proxies.persample) against vmap ∘ grad, the
definition: every layer kind, both BN modes, a layer used twice, an in-place ReLU, the
layers it refuses, and real NB201 / NB101 cells."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies import gradalign, persample


def as_matrix(grads: dict[str, torch.Tensor], model: nn.Module) -> torch.Tensor:
    """vmap's {name: (N, *shape)} in GradientMatrix's layout: parameters in order, conv
    weights as (kh, kw, out, in)."""
    blocks = []
    for name, _ in model.named_parameters():
        g = grads[name]
        blocks.append((g.permute(0, 3, 4, 1, 2) if g.dim() == 5 else g).reshape(len(g), -1))
    return torch.cat(blocks, dim=1)


def assert_matches_vmap(model: nn.Module, batch: ProbeBatch, bn: str, rel: float = 1e-5) -> torch.Tensor:
    expected = as_matrix(gradalign.per_sample_gradients(model, batch, bn), model)
    got = persample.per_sample_gradients(model, batch.inputs, batch.labels, bn)
    assert got is not None and got.shape == expected.shape
    scale = expected.abs().max()
    assert scale > 0
    torch.testing.assert_close(got, expected, rtol=0, atol=rel * float(scale))
    return got


class EveryLayer(nn.Module):
    """Padded, dilated, strided, 1×1 and biased convolutions, affine and plain BN, an
    in-place ReLU after BN, a convolution used twice, a Linear with bias, and an unused
    parameter."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1, bias=True)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)
        self.dilated = nn.Conv2d(4, 4, 3, padding=2, dilation=2, bias=False)
        self.twice = nn.Conv2d(4, 4, 1, bias=False)
        self.plain_bn = nn.BatchNorm2d(4, affine=False)
        self.strided = nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=True)
        self.wide = nn.Conv2d(6, 6, (1, 3), padding=(0, 1), bias=False)
        self.head = nn.Linear(6, 3)
        self.unused = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.bn(self.stem(x)))
        h = self.plain_bn(self.dilated(h))
        h = self.twice(self.twice(h)) + h
        h = self.wide(self.strided(h))
        return self.head(h.mean((2, 3)))


def random_batch(n: int = 6, size: int = 7, classes: int = 3, seed: int = 0) -> ProbeBatch:
    gen = torch.Generator().manual_seed(seed)
    return ProbeBatch(torch.randn(n, 3, size, size, generator=gen), torch.arange(n) % classes)


@pytest.mark.parametrize("bn", ["per_sample", "eval"])
def test_every_layer_kind_equals_vmap(bn):
    torch.manual_seed(0)
    model = EveryLayer()
    with torch.no_grad():  # non-trivial BN parameters and running statistics
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                if m.affine:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.5, 0.5)
    got = assert_matches_vmap(model, random_batch(), bn)
    unused = sum(p.numel() for p in model.unused.parameters())
    assert torch.count_nonzero(got[:, -unused:]) == 0  # the loss never reaches it
    assert torch.count_nonzero(got[:, :-unused]) > 0


def test_the_model_is_left_as_it_was():
    torch.manual_seed(0)
    model = EveryLayer().train()
    model.head.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    kinds = [type(m) for m in model.modules()]
    for bn in ("per_sample", "eval"):
        batch = random_batch()
        persample.per_sample_gradients(model, batch.inputs, batch.labels, bn)
    assert [type(m) for m in model.modules()] == kinds
    assert model.training and not model.head.training and model.stem.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())  # no parameter gradient formed
    assert all(not m._forward_hooks for m in model.modules())


def test_no_activation_outlives_the_call():
    """The gradient hooks are removed: nothing of the batched pass stays alive (a leak of
    ~1 GB per NB201 cell at batch 128 before they were)."""
    torch.manual_seed(0)
    model = EveryLayer()
    seen = []
    model.head.register_forward_hook(lambda module, args, output: seen.extend(map(weakref.ref, (args[0], output))))
    batch = random_batch()
    assert persample.per_sample_gradients(model, batch.inputs, batch.labels, "per_sample") is not None
    gc.collect()
    assert len(seen) == 2 and all(ref() is None for ref in seen)


@pytest.mark.parametrize("layer", [nn.Conv2d(3, 4, 3, groups=1, padding="same"), nn.Conv2d(3, 3, 3, groups=3),
                                   nn.GroupNorm(1, 3)], ids=["padding-same", "grouped", "groupnorm"])
def test_other_layers_are_refused_and_gradalign_falls_back_to_vmap(layer):
    torch.manual_seed(0)
    model = nn.Sequential(layer, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LazyLinear(3))
    batch = random_batch()
    model(batch.inputs)  # materialise the lazy layer
    assert not persample.supports(model)
    assert persample.per_sample_gradients(model, batch.inputs, batch.labels, "per_sample") is None
    auto = gradalign.model_alignment(model, batch, "per_sample", max_rows=6)
    assert auto == gradalign.model_alignment(model, batch, "per_sample", max_rows=6, closed_form=False)


@pytest.mark.parametrize("space,cell,batch_size", [("nb201", 9000, 20), ("nb101", "020d47975f503b9f1e24e6c4e647f2da", 8)])
@pytest.mark.parametrize("bn", ["per_sample", "eval"])
def test_real_cells_equal_vmap(space, cell, batch_size, bn, shared_data):
    """Relative 1e-4 of the largest gradient: fp32 rounding of two summation orders,
    amplified by per-sample BN on small maps; a formula error is of order 1."""
    from raynas.scoring import CellScorer
    from raynas.seeding import derive_seed, seeded

    scorer = CellScorer(space, f"gradalign:batch_size={batch_size}", measure_memory=False, threads=1)
    index = scorer.space.index_of(cell)
    with seeded(derive_seed(0, space, index)):
        model = scorer.space.build(index, 10)
    (batch,) = scorer._probes.values()
    assert persample.supports(model)
    assert_matches_vmap(model, batch, bn, rel=1e-4)
