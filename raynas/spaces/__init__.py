"""Search spaces by name. Spaces are created on request; nothing registers itself on import.

A name is a built-in (``nb201``, ``nb101``, ``nb_macro``, ``darts``, ``tnb101_micro``, ``mbv2``), else an entry point of an installed package
(group ``raynas.spaces``), else an import path to a space object, or to a class or function
that makes one without arguments (``my_pkg.spaces.TINY``).
"""

from __future__ import annotations

from raynas.spaces.base import GroundTruth, SearchSpace

SPACE_NAMES = ("nb201", "nb101", "nb_macro", "darts", "tnb101_micro", "mbv2")


def get_space(name: str | SearchSpace) -> SearchSpace:
    """The search space called ``name`` (see the module doc)."""
    return find_space(name)[0]


def find_space(name: str | SearchSpace) -> tuple[SearchSpace, dict | None]:
    """(the space, where it comes from: None for a built-in or a space object passed in,
    else its import path, package and version for the run to record)."""
    from raynas.plugins import SPACE_GROUP, find_plugin

    if not isinstance(name, str):
        return name, None
    key = name.lower().replace("-", "").replace("_", "")
    if key in ("nb201", "nasbench201", "natsbenchtss"):
        from raynas.spaces.nb201 import NB201Space

        return NB201Space(), None
    if key in ("nb101", "nasbench101"):
        from raynas.spaces.nb101 import NB101Space

        return NB101Space(), None
    if key in ("nbmacro", "nasbenchmacro"):
        from raynas.spaces.nb_macro import NBMacroSpace

        return NBMacroSpace(), None
    if key in ("darts", "nb301", "nasbench301"):
        from raynas.spaces.darts import DartsSpace

        return DartsSpace(), None
    if key in ("tnb101micro", "transnasbench101micro", "tnb101"):
        from raynas.spaces.tnb101 import TNB101MicroSpace

        return TNB101MicroSpace(), None
    if key in ("mbv2", "mobilenetv2"):
        from raynas.spaces.mbv2 import MBV2Space

        return MBV2Space(), None
    obj, source = find_plugin(SPACE_GROUP, name, "search space", list(SPACE_NAMES), "my_pkg.spaces.SPACE")
    return _as_space(obj, name), source


def _as_space(obj: object, name: str) -> SearchSpace:
    if not isinstance(obj, SearchSpace) and callable(obj):
        obj = obj()  # a class or factory
    if not isinstance(obj, SearchSpace):
        raise ValueError(f"space {name!r} is a {type(obj).__name__}, not a search space "
                         "(raynas.spaces.SearchSpace: name, __len__, index_of, arch_str, is_degenerate, build, example)")
    return obj


def space_from_config(config: dict) -> SearchSpace:
    """The space a run recorded (its name, or its import path for a plugin)."""
    source = config.get("space_source")
    return find_space(source["import"] if source else config["space"])[0]


__all__ = ["GroundTruth", "SearchSpace", "get_space", "find_space", "space_from_config", "SPACE_NAMES"]
