"""Per-cell seeds derived by hashing, so a cell's score never depends on what a worker
scored before it (the peers seed once per process and draw from shared RNG state)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import torch


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any printable parts, stable across processes and machines."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's global CPU (and CUDA) RNG inside the block, restoring it afterwards.

    Needed because ``nn.Module`` constructors draw their init from the global RNG.
    """
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A private generator, for draws that must not touch the global RNG."""
    return torch.Generator(device=device).manual_seed(seed)
