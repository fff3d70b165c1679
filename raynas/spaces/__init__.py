"""Search spaces by name. Spaces are created on request; nothing registers itself on import."""

from __future__ import annotations

from raynas.spaces.base import SearchSpace

SPACE_NAMES = ("nb201", "nb101")


def get_space(name: str | SearchSpace) -> SearchSpace:
    """The search space called ``name`` (``"nb201"`` or ``"nb101"``)."""
    if not isinstance(name, str):
        return name
    key = name.lower().replace("-", "").replace("_", "")
    if key in ("nb201", "nasbench201", "natsbenchtss"):
        from raynas.spaces.nb201 import NB201Space

        return NB201Space()
    if key in ("nb101", "nasbench101"):
        from raynas.spaces.nb101 import NB101Space

        return NB101Space()
    raise ValueError(f"unknown search space {name!r}; known: {', '.join(SPACE_NAMES)}")


__all__ = ["SearchSpace", "get_space", "SPACE_NAMES"]
