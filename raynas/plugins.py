"""Proxies and spaces that live outside raynas: named by an import path
(``my_pkg.zc.PROXY``) or declared by an installed package as an entry point
(``[project.entry-points."raynas.proxies"] mine = "my_pkg.zc:PROXY"``).

Nothing is discovered or registered on import: an object is loaded when a request names it,
and the run records where it came from (import path, providing package and version), so
that every worker loads the same thing again.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
from dataclasses import dataclass
from typing import Any

PROXY_GROUP = "raynas.proxies"
SPACE_GROUP = "raynas.spaces"


class PluginError(ValueError):
    """A plugin that cannot be found or loaded; the message names it."""


@dataclass(frozen=True)
class Provenance:
    """Where a plugin object comes from: what a worker imports to get it again."""

    import_path: str  # "module.attr" (or "module:attr" as entry points write it)
    package: str | None  # the installed distribution providing the module, if any
    version: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"import": self.import_path, "package": self.package, "version": self.version}


def looks_like_import_path(name: str) -> bool:
    return "." in name or ":" in name


def load_object(path: str, what: str) -> Any:
    """``pkg.module.ATTR`` or ``pkg.module:ATTR`` → the object; errors name the module."""
    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise PluginError(f"{what} {path!r}: expected an import path like my_pkg.module.NAME")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginError(f"{what} {path!r}: cannot import module {module_name!r} ({exc})") from None
    try:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise PluginError(f"{what} {path!r}: module {module_name!r} has no {attr!r}") from None
    return obj


def provenance(path: str) -> Provenance:
    """The import path with the distribution that provides its top-level package."""
    top = path.replace(":", ".").split(".")[0]
    packages = metadata.packages_distributions().get(top, [])
    if not packages:
        return Provenance(path, None, None)
    try:
        return Provenance(path, packages[0], metadata.version(packages[0]))
    except metadata.PackageNotFoundError:
        return Provenance(path, packages[0], None)


def entry_points(group: str) -> dict[str, metadata.EntryPoint]:
    """Entry points of ``group`` by name, as installed packages declare them."""
    return {ep.name: ep for ep in metadata.entry_points(group=group)}


def from_entry_point(group: str, name: str, what: str) -> tuple[Any, Provenance] | None:
    """The object an installed package declares as ``name`` in ``group``, or None."""
    point = entry_points(group).get(name)
    if point is None:
        return None
    obj = load_object(point.value, f"{what} {name!r} (entry point of {point.dist.name if point.dist else '?'})")
    dist = point.dist
    return obj, Provenance(point.value, dist.name if dist else None, dist.version if dist else None)


def find_plugin(group: str, name: str, what: str, built_in: list[str], example: str) -> tuple[Any, dict]:
    """A plugin ``name`` that is not a built-in: an entry point of ``group``, else an import
    path; with where it comes from. Unknown names list the built-ins and installed plugins."""
    found = from_entry_point(group, name, what)
    if found is not None:
        return found[0], found[1].as_dict()
    if looks_like_import_path(name):
        return load_object(name, what), provenance(name).as_dict()
    plugins = sorted(entry_points(group))
    raise ValueError(f"unknown {what} {name!r}; built-in: {', '.join(built_in)}"
                     + (f"; installed plugins: {', '.join(plugins)}" if plugins else "")
                     + f"; or give an import path such as {example}")
