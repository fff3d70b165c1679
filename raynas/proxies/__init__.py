"""Training-free proxies: one module per proxy, each exposing a ``PROXY`` declaration; the
table of them lives in :mod:`raynas.proxies.registry`."""

from raynas.proxies.base import ConfiguredProxy, DegenerateNetwork, ProbeSpec, ProxyContext, ProxyDef
from raynas.proxies.registry import PROXIES, get_proxy, parse_proxies, parse_proxy

__all__ = [
    "ConfiguredProxy", "DegenerateNetwork", "ProbeSpec", "ProxyContext", "ProxyDef",
    "PROXIES", "get_proxy", "parse_proxies", "parse_proxy",
]
