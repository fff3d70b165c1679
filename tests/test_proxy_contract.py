"""The contract every registered proxy keeps (timm-style, over the whole registry, plus the
worked example of examples/): it returns exactly its declared components, leaves the
caller's weights and batch unchanged, gives the same numbers twice, and a degenerate cell
gets NaN plus a status, never a number. (A train-mode forward moves BatchNorm's running
statistics inside the kernel; those buffers are the scorer's to restore between proxies,
raynas.scoring.InitialState, so the contract is on parameters.)"""

import math
import sys
from pathlib import Path

import pytest
import torch

from raynas.proxies.base import ProxyContext
from raynas.proxies.registry import PROXIES, parse_proxy
from raynas.scoring import CellScorer
from raynas.seeding import seeded
from raynas.spaces import get_space

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import input_sensitivity  # noqa: E402 — the README's worked example

CONTRACT = {**PROXIES, "input_sensitivity": input_sensitivity.PROXY}
# Small options so the whole registry runs in seconds; each is a real option of its proxy.
SMALL = {"intrain": "batch_size=8,resolution=16", "gradalign": "batch_size=20", "naswot": "batch_size=16",
         "zen": "batch_size=8", "zico": "batch_size=8", "jacob_cov": "batch_size=8", "input_sensitivity": "batch_size=4",
         "az_nas": "batch_size=8", "vkdnw": "batch_size=4", "gradsign": "batch_size=8", "te_nas": "batch_size=8",
         "swap": "batch_size=8,repeats=2"}
CELL = 9_000  # an NB201 cell with convolutions, pooling and skips


def request(name: str) -> str:
    target = "input_sensitivity.PROXY" if name == "input_sensitivity" else name
    options = [o for o in SMALL.get(name, "").split(",") if o and o.split("=")[0] in _fields(name)]
    return target + (":" + ",".join(options) if options else "")


def _fields(name: str) -> set[str]:
    import dataclasses

    return {f.name for f in dataclasses.fields(CONTRACT[name].options_cls)}


def snapshot(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_proxy_contract(name):
    configured = parse_proxy(request(name))
    proxy = configured.proxy
    assert set(proxy.scores) | set(proxy.diagnostics) == set(proxy.components)
    scorer = CellScorer("nb201", [configured], threads=1)
    batch = scorer._probes[configured.probe_spec()]
    space = get_space("nb201")

    def run_once() -> tuple[dict, list[torch.Tensor], list[torch.Tensor]]:
        with seeded(1234):
            model = space.build(CELL, scorer.dataset.num_classes)
        before = snapshot(model)
        inputs_before = batch.inputs.clone() if batch is not None else None
        ctx = ProxyContext(torch.device("cpu"), scorer.dataset.num_classes, seed=99,
                           shared_needs=scorer._shared_needs[configured.probe_spec()])
        with seeded(ctx.seed):
            values = proxy.compute(model, batch, configured.options, ctx)
        if inputs_before is not None:
            assert torch.equal(batch.inputs, inputs_before), f"{name} changed the probe batch"
        return values, before, snapshot(model)

    values, before, after = run_once()
    assert set(values) == set(proxy.components), f"{name} returned {sorted(values)}"
    assert all(isinstance(v, float) and math.isfinite(v) for v in values.values()), values
    for b, a in zip(before, after):
        assert torch.equal(b, a), f"{name} changed the caller's weights"
    again, _, _ = run_once()
    assert again == values, f"{name} is not deterministic"


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_degenerate_cell_gives_nan_and_a_status(name):
    space = get_space("nb201")
    degenerate = next(i for i in range(len(space)) if space.is_degenerate(i))
    configured = parse_proxy(request(name))
    row = CellScorer("nb201", [configured], threads=1).score(degenerate)
    assert row["status"] == "degenerate"
    values = [row[c] for c in configured.columns]
    if configured.proxy.structural:
        assert all(math.isfinite(v) for v in values)  # depends on the architecture alone
    else:
        assert all(math.isnan(v) for v in values), values
