"""Locate the project's benchmark data (``shared/data``) without hard-coding a path.

Resolution order: the ``RAYNAS_DATA_DIR`` environment variable, then a ``shared/data``
folder beside the working directory or beside the source checkout. Every caller gets a
clear ``FileNotFoundError`` that says how to point raynas at the data.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "RAYNAS_DATA_DIR"


def _candidates() -> list[Path]:
    found: list[Path] = []
    if os.environ.get(ENV_VAR):
        found.append(Path(os.environ[ENV_VAR]))
    for base in (Path.cwd(), Path(__file__).resolve().parent.parent):
        for parent in (base, *base.parents[:2]):
            found.append(parent / "shared" / "data")
    return found


def data_dir(required: bool = True) -> Path | None:
    """The benchmark data folder, or None (``required=False``) when there is none."""
    for candidate in _candidates():
        if candidate.is_dir():
            return candidate
    if required:
        raise FileNotFoundError(
            "raynas benchmark data not found: set RAYNAS_DATA_DIR to the folder holding "
            "nb201/, nb101/ and cifar/ (looked in: "
            + ", ".join(str(c) for c in _candidates()) + ")"
        )
    return None


def data_file(relative: str) -> Path:
    """A file under the data folder, with an error naming it when it is missing."""
    path = data_dir() / relative
    if not path.is_file():
        raise FileNotFoundError(f"raynas data file missing: {path}")
    return path
