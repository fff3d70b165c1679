"""What a proxy is: a function of (network, probe batch, options, context) returning named
components, plus a declaration of what it needs. No global state, no registration on import."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from raynas.probes import ProbeBatch


class DegenerateNetwork(Exception):
    """The network's output does not depend on its input; scores are undefined (NaN)."""


@dataclass(frozen=True)
class ProbeSpec:
    """The batch a proxy needs. ``kind``: gaussian | real | ones (all-ones images, synflow) |
    none. ``resolution`` None = the dataset's native size."""

    kind: str
    batch_size: int = 0
    resolution: int | None = None


@dataclass(frozen=True)
class ProxyContext:
    """Per-call facts a proxy may use: device, classes, and a seed private to (cell, proxy).

    ``shared`` is a per-cell store for work several proxies can reuse (one gradient pass
    over the same batch and the same initial weights); ``shared_needs`` names every product
    the cell's proxies will ask of that pass, so the first caller computes them all.
    """

    device: torch.device
    num_classes: int
    seed: int
    shared: dict = field(default_factory=dict, compare=False, repr=False)
    shared_needs: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ProxyDef:
    """A proxy's declaration.

    ``compute(model, batch, options, ctx) -> {component: float}`` must return every name in
    ``components``. ``probe(options)`` says which batch it needs. ``higher_is_better`` is the
    sign of the headline component's correlation with accuracy, set from measurement
    (docs/results.md). ``structural`` proxies depend on the architecture alone (still defined
    for degenerate cells). ``needs_real_data`` / ``per_sample_grads`` / ``bn_mode`` document
    requirements for users and the scheduler. ``shares`` names the products of the shared
    cross-entropy gradient pass (:mod:`raynas.proxies.gradient_pass`) the proxy reads.
    """

    name: str
    compute: Callable[[nn.Module, ProbeBatch | None, Any, ProxyContext], dict[str, float]]
    options_cls: type
    components: tuple[str, ...]
    headline: str
    probe: Callable[[Any], ProbeSpec]
    higher_is_better: bool = True
    structural: bool = False
    per_sample_grads: bool = False
    bn_mode: str = "train"
    shares: frozenset[str] = frozenset()
    description: str = ""

    @property
    def needs_real_data(self) -> bool:
        return self.probe(self.options_cls()).kind == "real"


@dataclass(frozen=True)
class ConfiguredProxy:
    """A proxy with its options and the label its columns carry."""

    proxy: ProxyDef
    options: Any
    label: str

    @property
    def columns(self) -> tuple[str, ...]:
        if self.label == self.proxy.name:
            return self.proxy.components
        return tuple(f"{self.label}__{c}" for c in self.proxy.components)

    def config_dict(self) -> dict[str, Any]:
        return {"proxy": self.proxy.name, "label": self.label, **dataclasses.asdict(self.options)}

    def probe_spec(self) -> ProbeSpec:
        return self.proxy.probe(self.options)


def forward_logits(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Logits of a forward pass, raising DegenerateNetwork when they ignore the input."""
    logits = model(inputs)
    if logits.shape[0] > 1 and bool((logits.detach() == logits.detach()[:1]).all()):
        raise DegenerateNetwork("network output is identical for every input")
    return logits


@contextmanager
def forward_hooks(modules: Iterable[nn.Module], hook: Callable) -> Iterator[None]:
    """``hook`` on every module's forward for the duration of the block, then removed:
    proxies observe layers without patching their forward."""
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
