"""What a proxy is: a function of (network, probe batch, options, context) returning named
components, plus a declaration of what it needs. No global state, no registration on import."""

from __future__ import annotations

import dataclasses
import json
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
    ``components``. Components listed in ``diagnostics`` describe the computation (a layer
    count, a number of classes) and are not scores; the rest are scores, and
    ``higher_is_better`` says which way they rank (set from measurement, docs/history.md;
    analysis and the report read it). ``headline`` is the score that stands for the proxy.
    ``probe(options)`` says which batch it needs. ``structural`` proxies depend on the
    architecture alone (still defined for degenerate cells). ``per_sample_grads`` /
    ``bn_mode`` tell users what the proxy asks of a network (``raynas info`` shows them).
    ``shares`` names the products of the shared cross-entropy gradient pass
    (:mod:`raynas.proxies.gradient_pass`) the proxy reads. ``class_outputs``: the proxy reads
    the output as class logits (a softmax), so a regression or dense task refuses it.
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
    class_outputs: bool = False
    description: str = ""
    diagnostics: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.components or len(set(self.components)) != len(self.components):
            raise ValueError(f"proxy {self.name!r}: components must be distinct names, got {self.components!r}")
        if unknown := [c for c in (self.headline, *self.diagnostics) if c not in self.components]:
            raise ValueError(f"proxy {self.name!r}: {unknown} are not among its components {self.components!r}")
        if self.headline in self.diagnostics:
            raise ValueError(f"proxy {self.name!r}: its headline {self.headline!r} is declared a diagnostic")

    @property
    def scores(self) -> tuple[str, ...]:
        return tuple(c for c in self.components if c not in self.diagnostics)


@dataclass(frozen=True)
class ConfiguredProxy:
    """A proxy with its options and the label its columns carry. ``source`` says where a
    proxy from outside raynas comes from (``{"import", "package", "version"}``; None for
    a built-in); it is recorded so that every worker loads the same one."""

    proxy: ProxyDef
    options: Any
    label: str
    source: dict[str, Any] | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.column(c) for c in self.proxy.components)

    def column(self, component: str) -> str:
        return component if self.label == self.proxy.name else f"{self.label}__{component}"

    def column_roles(self) -> dict[str, dict[str, str]]:
        """Each column's role (score or diagnostic) and, for scores, which way is better."""
        better = "higher" if self.proxy.higher_is_better else "lower"
        return {self.column(c): ({"role": "diagnostic"} if c in self.proxy.diagnostics else
                                 {"role": "score", "better": better, "proxy": self.label})
                for c in self.proxy.components}

    @property
    def needs_real_data(self) -> bool:
        """Whether this proxy, with these options, draws real images (the run then records
        which probe file they come from)."""
        return self.probe_spec().kind == "real"

    @property
    def seed_key(self) -> str:
        """What the proxy's private seed is derived from: the proxy and its options, never
        its label (``z2=zen`` and ``zen`` score the same). Default options give the bare
        name, the key used before options took part. Options added later (those that name
        an ``absent`` value, :func:`absent_values`) only set thresholds of the arithmetic
        and never take part, so a cell draws the same numbers under either definition."""
        options = dataclasses.asdict(self.options)
        later = absent_values(self.proxy.options_cls)
        defaults = dataclasses.asdict(self.proxy.options_cls())
        changed = {k: v for k, v in options.items() if k not in later and v != defaults.get(k)}
        return self.proxy.name + (f":{json.dumps(changed, sort_keys=True)}" if changed else "")

    def config_dict(self) -> dict[str, Any]:
        """The options as a run records them. An option added after runs were recorded is
        left out where it holds the value its absence means, so an old run's record and a
        request for the old definition are the same config (and resume each other)."""
        later = absent_values(self.proxy.options_cls)
        options = {k: v for k, v in dataclasses.asdict(self.options).items() if k not in later or v != later[k]}
        config = {"proxy": self.proxy.name, "label": self.label, **options}
        if self.source is not None:
            config["source"] = dict(self.source)
        return config

    def probe_spec(self) -> ProbeSpec:
        return self.proxy.probe(self.options)


def absent_values(options_cls: type) -> dict[str, Any]:
    """Options added after runs were recorded, with the value a record without them means
    (declared as ``field(default=..., metadata={"absent": value})``)."""
    return {f.name: f.metadata["absent"] for f in dataclasses.fields(options_cls) if "absent" in f.metadata}


def forward_logits(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Logits of a forward pass, raising DegenerateNetwork when they ignore the input."""
    logits = model(inputs)
    if logits.shape[0] > 1 and bool((logits.detach() == logits.detach()[:1]).all()):
        raise DegenerateNetwork("network output is identical for every input")
    return logits


def probe_loss(outputs: torch.Tensor, batch: ProbeBatch) -> torch.Tensor:
    """The loss a proxy differentiates: cross-entropy against the batch's labels, or, where
    the batch has a float target (a regression or dense task), the mean squared error
    against it (InTrain's rule for dense outputs)."""
    if batch.targets is None:
        return nn.functional.cross_entropy(outputs, batch.labels)
    return nn.functional.mse_loss(outputs, batch.targets)


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
