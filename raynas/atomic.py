"""Atomic file replacement: a reader sees the old file or the whole new one, never a part."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_PREFIX = ".tmp-"  # hidden: Parquet readers skip it, and results.clean_temporaries removes strays


@contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """A hidden temporary path beside ``path`` to write; renamed onto ``path`` when the block
    succeeds, removed when it fails."""
    tmp = path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
