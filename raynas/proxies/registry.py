"""The proxy registry: an explicit table built from each proxy module's ``PROXY``, open to
proxies that live elsewhere.

Proxies are requested by name, optionally with options and a label:
``"intrain"``, ``"intrain:resolution=64"``, ``"in64=intrain:resolution=64"`` (columns of a
labelled proxy are prefixed ``in64__``). A name is a built-in, else an entry point of an
installed package (group ``raynas.proxies``), else an import path to a :class:`ProxyDef`
(``"mine=my_pkg.zc.PROXY:batch_size=32"``; a module path means its ``PROXY``).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable

from raynas.proxies import (
    az_nas,
    fisher,
    flops,
    grad_norm,
    gradalign,
    gradsign,
    grasp,
    intrain,
    jacob_cov,
    meco,
    naswot,
    params,
    snip,
    swap,
    synflow,
    te_nas,
    vkdnw,
    zen,
    zico,
)
from raynas.plugins import PROXY_GROUP, find_plugin
from raynas.proxies.base import ConfiguredProxy, ProxyDef, absent_values

BASELINE_PROXIES = (  # the peers' baselines, in the order their columns appear
    grad_norm.PROXY, snip.PROXY, grasp.PROXY, fisher.PROXY, jacob_cov.PROXY, synflow.PROXY,
    naswot.PROXY, zen.PROXY, zico.PROXY, params.PROXY, flops.PROXY,
)
FIELD_PROXIES = (az_nas.PROXY, vkdnw.PROXY, meco.PROXY, swap.PROXY, gradsign.PROXY, te_nas.PROXY)  # the field's newer proxies that the seed papers compare against
PROXIES: dict[str, ProxyDef] = {p.name: p for p in (intrain.PROXY, gradalign.PROXY, *BASELINE_PROXIES, *FIELD_PROXIES)}
BASELINES = tuple(p.name for p in BASELINE_PROXIES)
FIELD = tuple(p.name for p in FIELD_PROXIES)


def get_proxy(name: str) -> ProxyDef:
    """A proxy by name, entry point or import path (see the module doc)."""
    return find_proxy(name)[0]


def proxies_giving(columns: Iterable[str], where: str = "columns") -> list[str]:
    """The built-in proxies whose components are ``columns``, each named once, in order
    (what a search scores when asked only for its fitness columns)."""
    names = []
    for column in columns:
        owner = next((p.name for p in PROXIES.values() if column in p.components), None)
        if owner is None:
            raise ValueError(f"{where}: no built-in proxy gives column {column!r}; name the proxies with --proxies")
        names.append(owner)
    return list(dict.fromkeys(names))


def find_proxy(name: str) -> tuple[ProxyDef, dict | None]:
    """(the proxy, where it comes from: None for a built-in, else import path, package and
    version for the run to record)."""
    if name in PROXIES:
        return PROXIES[name], None
    obj, source = find_plugin(PROXY_GROUP, name, "proxy", sorted(PROXIES), "my_pkg.module.PROXY")
    return _as_proxy(obj, name), source


def _as_proxy(obj: object, name: str) -> ProxyDef:
    if not isinstance(obj, ProxyDef):
        obj = getattr(obj, "PROXY", obj)  # a module that declares one
    if not isinstance(obj, ProxyDef):
        raise ValueError(f"proxy {name!r} is a {type(obj).__name__}, not a raynas.proxies.base.ProxyDef")
    return obj


def proxy_from_config(config: dict) -> ConfiguredProxy:
    """The configured proxy a run recorded (:meth:`ConfiguredProxy.config_dict`): what the
    workers build, so that they compute exactly what the run says."""
    config = dict(config)
    name, label, source = config.pop("proxy"), config.pop("label"), config.pop("source", None)
    proxy, found_source = find_proxy(source["import"] if source else name)
    config = {**absent_values(proxy.options_cls), **config}  # a record from before an option existed
    if source and found_source and found_source.get("version") != source.get("version"):
        raise ValueError(f"proxy {label!r}: the run used {source.get('package')} {source.get('version')}, "
                         f"this worker has {found_source.get('version')}")
    return ConfiguredProxy(proxy, proxy.options_cls(**config), label, source)


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
    proxy, source = find_proxy(name.strip())
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
    return ConfiguredProxy(proxy, proxy.options_cls(**values), label.strip() or proxy.name, source)


GROUPS = {"all": tuple(PROXIES), "baselines": BASELINES, "field": FIELD}  # built-ins only: plugins are asked for by name


def parse_proxies(requests: str | Iterable[str | ConfiguredProxy]) -> list[ConfiguredProxy]:
    """Several requests (a list, or one string separated by ';' or by ',' between names).
    ``all``, ``baselines`` and ``field`` stand for every registered proxy / the peers'
    baselines / the field's newer proxies (AZ-NAS, ...)."""
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
