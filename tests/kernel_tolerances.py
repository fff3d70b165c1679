"""How far each component may move between two float32 scorings of a cell that differ only in
the arithmetic (convolution kernel, thread count, machine), and why: the tolerances that the
reproducibility and reference tests share. docs/history.md ("Where kernels differ") has the
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

Tolerances are the largest difference measured on 10 NB201 and 2 NB101 cells, ×10 and
rounded up to a power of ten, because flips are chance events: another CPU can flip other
inputs. The float32 ones of gradient scores are loose by nature; the tight check of the
definitions is the float64 one (``FLOAT64``, and its stored reference).
"""

from __future__ import annotations

ROUNDING = "float32 rounding of forward sums"
FLIPS = "ReLU inputs within rounding of 0 flip between kernels (a property of the network)"
EXACT = "integer-valued or float64 throughout"

# component -> (largest relative difference allowed, cause); components not listed: DEFAULT.
# Measured (10 NB201 + 2 NB101 cells; docs/history.md): the largest of either space.
FLOAT32 = {
    "L": (0.0, EXACT), "o_zero_tensors": (0.0, EXACT), "gradalign_classes": (0.0, EXACT),
    "params": (0.0, EXACT), "flops": (0.0, EXACT),
    "synflow": (1e-12, EXACT), "synflow_log": (1e-12, EXACT),  # measured 3.5e-16
    "gamma": (1e-4, ROUNDING),  # 8.7e-6 (the native kernel's forward is the less accurate)
    "gradalign_2": (1e-5, ROUNDING),  # 9.2e-7
    "naswot": (1e-6, ROUNDING),  # 9.6e-8
    "zen": (1e-5, ROUNDING), "zen_bn": (1e-5, ROUNDING),  # 4.1e-7, 4.0e-7
    "zen_expressivity": (1e-4, ROUNDING),  # 7.8e-6
    "intrain": (1e-1, FLIPS), "o": (1e-1, FLIPS),  # 2.6e-3 (NB101), 6.4e-4 (NB201)
    "gradalign_1": (1e-2, FLIPS), "gradalign_1_per_param": (1e-2, FLIPS),  # 2.2e-4
    "grad_norm": (1e-1, FLIPS), "snip": (1e-1, FLIPS), "fisher": (1e-1, FLIPS),  # 1.2e-3, 1.6e-3, 6.3e-3
    "jacob_cov": (1e-3, FLIPS),  # 8.5e-5
    "grasp": (1.0, FLIPS + "; GraSP sums signed Hessian-gradient terms that nearly cancel "
                           "(7.5e-2 between thread counts on NB101): it has no reproducible digits beyond the first"),
    "zico": (1e-1, FLIPS + "; ZiCo's mean/σ over two batches amplifies them where the batches nearly agree"),  # 2.9e-3
    # The field's proxies (10 NB201 cells, 0:15625:1563; docs/history.md)
    "az_expressivity": (1e-6, ROUNDING),  # 8.5e-8
    "az_progressivity": (1e-3, ROUNDING + "; a difference of two entropies"),  # 3.1e-5
    "az_trainability": (1e-2, FLIPS),  # 1.0e-4
    "meco": (1e-4, ROUNDING), "meco_opt": (1e-4, ROUNDING),  # 0 (kernels), 9.9e-14 (threads)
    "gradsign": (1e-2, FLIPS + "; a gradient within rounding of 0 changes sign"),  # 3.1e-4
    "gradsign_mean": (1e-2, FLIPS + "; a gradient within rounding of 0 changes sign"),  # 3.1e-4
    "te_nas_ntk": (1e-1, FLIPS + "; a condition number amplifies them"),  # 5.1e-3
    "te_nas_lr": (1e-1, FLIPS + "; a count of distinct patterns, which a flip could change by one"),  # 0
    "vkdnw_dim": (0.0, EXACT),
    "vkdnw_entropy": (1e-2, FLIPS + "; the quantiles of a spectrum that spans many orders of magnitude"),  # 1.2e-3
    "vkdnw_single": (1e-5, FLIPS),  # 6.7e-7 (ℵ, exact, dominates)
}
DEFAULT = (1e-4, ROUNDING)

# precision="float64": no ReLU flips (the window is 1e-16), so every component agrees to
# 1e-9 on any CPU, but for the signs GradAlign takes of rounding noise. A gradient whose
# exact value is 0 (a BN shift a later per-sample BN removes) holds noise in float64 too, only
# smaller, and its sign is a coin flip that differs between CPU models; GradAlign's noise_tol,
# which would count it as zero, is off by default (raynas/proxies/gradalign.py's doc).
# Measured: cell 2000, an Intel Xeon against the reference written on an AMD EPYC
# (2026-12-02): GA-I and GA-I/P 2.6e-5, GA-II 1.8e-8; every other component ≤ 1e-10.
NOISE_SIGNS = "signs of rounding noise in gradients whose exact value is 0 (GradAlign's noise_tol is off by default)"
FLOAT64_DEFAULT = (1e-9, "float64: no flips, rounding ~1e-16")
FLOAT64 = {"gradalign_1": (1e-3, NOISE_SIGNS), "gradalign_1_per_param": (1e-3, NOISE_SIGNS),
           "gradalign_2": (1e-6, NOISE_SIGNS)}


def tolerance(column: str, precision: str = "float32") -> tuple[float, str]:
    """(relative tolerance, cause) of a component column (a label prefix ignored) between two
    scorings that differ only in the arithmetic, at ``precision``."""
    name = column.rpartition("__")[2]
    if precision == "float64":
        return FLOAT64.get(name, FLOAT64_DEFAULT)
    return FLOAT32.get(name, DEFAULT)
