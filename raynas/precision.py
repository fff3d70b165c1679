"""The arithmetic a run scores in: its networks and probe batches, float32 or float64.

float32 is the default every run before this option had. float64 is the exact
alternative: in float32 a ReLU input within rounding of 0 can land on either side under
another convolution kernel, which moves gradient-based scores by ~1e-4 (docs/history.md,
"Where kernels differ"); in float64 that window is 1e-16 and nothing flips, at ~4x the
CPU time (oneDNN has no float64 convolutions). Torch-free, so that the CLI can name the
choices without importing torch.
"""

from __future__ import annotations

PRECISIONS = ("float32", "float64")
DEFAULT_PRECISION = "float32"


def check_precision(precision: str) -> str:
    """``precision`` itself, or a one-line error naming it."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision
