"""How far each component may move between two float32 scorings of a cell that differ only in
the arithmetic (convolution kernel, thread count, machine), and why: the tolerances that the
reproducibility and reference tests share. docs/results.md ("Where kernels differ") has the
measurements (``benchmarks/kernel_agreement.py``, ``benchmarks/kernel_trace.py``).

Two mechanisms, found layer by layer:

- **rounding**: a float32 sum in another order differs by ~1e-7 relative. Forward-only
  components (γ, NASWOT, Zen, GA-II's log-determinant) move by about that much.
- **ReLU flips**: a ReLU input within rounding of 0 (|x| ~ 1e-6 of the layer's scale) lands
  on the other side of 0 under another kernel; ~70 of NB201's 3·10⁷ ReLU inputs do between
  oneDNN and the native kernel. Each flip switches one element's gradient on or off, which
  moves every gradient upstream of it by ~1/(N·H·W) ≈ 1e-4..1e-3 relative. This is a
  property of the network (ReLU has no derivative at 0), not of a proxy's definition, so
  every component that differentiates moves with it. The exact alternative is
  ``precision="float64"``, where the window is 1e-16 and nothing flips (``FLOAT64``).

Tolerances are the largest difference measured on 10 NB201 and 2 NB101 cells, rounded up
to the next power of ten and then ×10, because flips are chance events: another CPU can
flip other inputs.
"""

from __future__ import annotations

ROUNDING = "float32 rounding of forward sums"
FLIPS = "ReLU inputs within rounding of 0 flip between kernels (a property of the network)"
EXACT = "integer-valued or float64 throughout"

# component -> (largest relative difference allowed, cause); components not listed: DEFAULT
FLOAT32 = {
    "L": (0.0, EXACT), "o_zero_tensors": (0.0, EXACT), "gradalign_classes": (0.0, EXACT),
    "params": (0.0, EXACT), "flops": (0.0, EXACT),
    "synflow": (1e-12, EXACT), "synflow_log": (1e-12, EXACT),
    "gamma": (1e-6, ROUNDING), "gradalign_2": (1e-6, ROUNDING), "naswot": (1e-6, ROUNDING),
    "zen": (1e-6, ROUNDING), "zen_bn": (1e-6, ROUNDING), "zen_expressivity": (1e-4, ROUNDING),
    "intrain": (1e-2, FLIPS), "o": (1e-2, FLIPS),
    "gradalign_1": (1e-2, FLIPS), "gradalign_1_per_param": (1e-2, FLIPS),
    "grad_norm": (1e-2, FLIPS), "snip": (1e-2, FLIPS), "fisher": (1e-2, FLIPS),
    "jacob_cov": (1e-3, FLIPS), "grasp": (1e-1, FLIPS + "; GraSP's Hessian product amplifies them"),
    "zico": (1e-2, FLIPS),
}
DEFAULT = (1e-4, ROUNDING)
FLOAT64 = (1e-9, "float64: no flips, rounding ~1e-16")  # every component, precision="float64"


def tolerance(column: str) -> tuple[float, str]:
    """(relative tolerance, cause) of a float32 component column (a label prefix ignored)."""
    return FLOAT32.get(column.rpartition("__")[2], DEFAULT)
