"""GradAlign's sign Gram in reduced precision (issue 25, item 5): is [S; m][S; m]ᵀ of ±1/0
entries exact when the product runs in fp16 / bf16 (tensor cores, fp32 accumulation) or
int8, and how much faster is it than fp32?

The entries are exactly representable in every format, so each product term is exact; the
sums are integers of at most the column count, exact in an fp32 accumulator below 2²⁴.
Whether a device's kernels accumulate in fp32 (or split the sum into pieces that each stay
exact) is what this measures: every reduced-precision Gram is compared with the float64
one, element by element, on sign matrices of GradAlign's shapes (a class of the batch ×
a block of columns), and timed against fp32 in the same run.

    python benchmarks/sign_gram_precision.py --device cuda --json sign_gram.json
    python benchmarks/sign_gram_precision.py --device cpu --rows 16 --columns 4096   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def sign_matrix(classes: int, rows: int, columns: int, device: str, seed: int = 0) -> torch.Tensor:
    """(classes, rows + 1, columns) of −1, 0, 1 (a tenth zeros), as GradAlign's blocks hold:
    each class's signs with its mean sign as the last row."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    values = torch.randint(-1, 2, (classes, rows + 1, columns), generator=gen, dtype=torch.int8)
    return values.to(device)


def gram(signs: torch.Tensor, dtype: str) -> torch.Tensor:
    """The batched Gram in ``dtype``, as float64. '<half>_out32': half inputs, a float32
    result (``bmm(..., out_dtype=float32)``, where the device has it: a half result cannot
    hold integers past 2048 / 256 whatever the accumulator); 'int8': integer products."""
    if dtype == "int8":
        if signs.device.type == "cuda" and hasattr(torch, "_int_mm"):  # int8 × int8 → int32 (2-D only)
            return torch.stack([torch._int_mm(s, s.T.contiguous()) for s in signs]).double()
        s = signs.to(torch.int32)
        return torch.bmm(s, s.transpose(1, 2)).double()
    if dtype.endswith("_out32"):
        s = signs.to(DTYPES[dtype.removesuffix("_out32")])
        return torch.bmm(s, s.transpose(1, 2), out_dtype=torch.float32).double()
    s = signs.to(DTYPES[dtype])
    return torch.bmm(s, s.transpose(1, 2)).double()


def timed(fn, device: str, repeats: int) -> float:
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def measure(device: str, classes: int, rows: int, columns: int, repeats: int) -> dict:
    signs = sign_matrix(classes, rows, columns, device)
    exact = torch.bmm(signs.double(), signs.double().transpose(1, 2))
    result = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
              "shape": [classes, rows + 1, columns], "dtypes": {}}
    base = None
    for dtype in ("float32", "float16", "bfloat16", "float16_out32", "bfloat16_out32", "int8"):
        try:
            got = gram(signs, dtype)
        except (RuntimeError, NotImplementedError, TypeError) as exc:  # no kernel for it on this device
            result["dtypes"][dtype] = {"error": str(exc).splitlines()[0][:160]}
            continue
        seconds = timed(lambda: gram(signs, dtype), device, repeats)
        base = base or seconds  # float32 comes first
        result["dtypes"][dtype] = {"exact": bool(torch.equal(got, exact)),
                                   "max_abs_error": float((got - exact).abs().max()),
                                   "seconds": seconds, "speed_vs_float32": base / seconds}
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--rows", type=int, default=16, help="samples per class (CIFAR-10 batch 128: ~13)")
    ap.add_argument("--columns", type=int, default=1 << 20, help="columns per block (at most 2^24 for fp32 sums)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    result = measure(args.device, args.classes, args.rows, args.columns, args.repeats)
    print(f"sign Gram {tuple(result['shape'])} on {result['device']}:")
    for dtype, e in result["dtypes"].items():
        print(f"  {dtype:9s} " + (e["error"] if "error" in e else
              f"exact {e['exact']}, max |error| {e['max_abs_error']:g}, {e['seconds'] * 1e3:.2f} ms, "
              f"{e['speed_vs_float32']:.2f}× fp32"))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
