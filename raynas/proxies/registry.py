"""The proxy registry: an explicit table built from each proxy module's ``PROXY``.

Proxies are requested by name, optionally with options and a label:
``"intrain"``, ``"intrain:resolution=64"``, ``"in64=intrain:resolution=64"`` (columns of a
labelled proxy are prefixed ``in64__``).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable

from raynas.proxies import (
    fisher,
    flops,
    grad_norm,
    gradalign,
    grasp,
    intrain,
    jacob_cov,
    naswot,
    params,
    snip,
    synflow,
    zen,
    zico,
)
from raynas.proxies.base import ConfiguredProxy, ProxyDef

BASELINE_PROXIES = (  # the peers' baselines, in the order their columns appear
    grad_norm.PROXY, snip.PROXY, grasp.PROXY, fisher.PROXY, jacob_cov.PROXY, synflow.PROXY,
    naswot.PROXY, zen.PROXY, zico.PROXY, params.PROXY, flops.PROXY,
)
PROXIES: dict[str, ProxyDef] = {p.name: p for p in (intrain.PROXY, gradalign.PROXY, *BASELINE_PROXIES)}
BASELINES = tuple(p.name for p in BASELINE_PROXIES)


def get_proxy(name: str) -> ProxyDef:
    if name not in PROXIES:
        raise ValueError(f"unknown proxy {name!r}; available: {', '.join(sorted(PROXIES))}")
    return PROXIES[name]


def _coerce(raw: str, annotation: object, where: str) -> object:
    text = raw.strip()
    kinds = typing.get_args(annotation) or (annotation,)
    if text.lower() == "none" and type(None) in kinds:
        return None
    for kind in kinds:
        if kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                continue
        if kind is bool:
            if text.lower() in ("true", "1", "yes", "false", "0", "no"):
                return text.lower() in ("true", "1", "yes")
        if kind is str:
            return text
    raise ValueError(f"{where}: cannot read {raw!r} as {annotation}")


def parse_proxy(request: str | ConfiguredProxy) -> ConfiguredProxy:
    """``[label=]name[:key=value[,key=value...]]`` → ConfiguredProxy, with errors naming the request."""
    if isinstance(request, ConfiguredProxy):
        return request
    head, _, opts = request.partition(":")
    label, _, name = head.rpartition("=")
    proxy = get_proxy(name.strip())
    fields = {f.name: f for f in dataclasses.fields(proxy.options_cls)}
    hints = typing.get_type_hints(proxy.options_cls)
    values: dict[str, object] = {}
    for item in filter(None, (s.strip() for s in opts.split(","))):
        key, eq, raw = item.partition("=")
        if not eq or key.strip() not in fields:
            raise ValueError(
                f"proxy request {request!r}: bad option {item!r}; {proxy.name} options: {', '.join(fields) or 'none'}"
            )
        values[key.strip()] = _coerce(raw, hints[key.strip()], f"proxy request {request!r}")
    return ConfiguredProxy(proxy, proxy.options_cls(**values), label.strip() or proxy.name)


GROUPS = {"all": tuple(PROXIES), "baselines": BASELINES}


def parse_proxies(requests: str | Iterable[str | ConfiguredProxy]) -> list[ConfiguredProxy]:
    """Several requests (a list, or one string separated by ';' or by ',' between names).
    ``all`` and ``baselines`` stand for every registered proxy / the peers' baselines."""
    if isinstance(requests, str):
        requests = split_proxy_requests(requests)
    expanded = [name for r in requests for name in (GROUPS.get(r, (r,)) if isinstance(r, str) else (r,))]
    configured = [parse_proxy(r) for r in expanded]
    if not configured:
        raise ValueError("no proxies requested")
    seen: dict[str, str] = {}
    for cp in configured:
        for column in cp.columns:
            if column in seen:
                raise ValueError(f"proxies {seen[column]!r} and {cp.label!r} both produce column {column!r}; label one")
            seen[column] = cp.label
    return configured


def split_proxy_requests(text: str) -> list[str]:
    """Split on ';'; a chunk without options may also list names with ','.

    'intrain,gradalign' → two; 'in64=intrain:resolution=64,batch_size=32;gradalign' → two.
    """
    parts: list[str] = []
    for chunk in (c.strip() for c in text.split(";")):
        if ":" in chunk:
            parts.append(chunk)
        else:
            parts.extend(name.strip() for name in chunk.split(",") if name.strip())
    return parts
