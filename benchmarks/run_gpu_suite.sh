#!/usr/bin/env bash
# The GPU suite as one device command (benchmarks/README.md). Prepare here first:
#   for ref in bda6610; do mkdir -p .baseline/$ref && git archive $ref raynas | tar -x -C .baseline/$ref; done
#   ../shared/tools/device-kit
# then run this on the GPU machine with carry [".devicekit", ".baseline"], e.g. timeout 560:
#   bash benchmarks/run_gpu_suite.sh            # results under $OUT/suite (or ./gpu-suite-out)
# Environment: BASELINES="bda6610 488ab11" (the .baseline/ folders swept beside this checkout),
# BUDGET_S (the suite's limit), FUSED_KS="1,8,32,128" (first, the fused pass's launches, time and
# agreement beside the per-cell path: benchmarks/overhead.py --fused; FUSED_GA_KS: GradAlign's; FUSED_REAL_KS: InTrain on its own probe), RESUME_WHOLE=data/scores/partial/nb201_cifar10_gpu (resume that
# whole-space run instead of starting one, with the one --whole DATASET=PROXIES it was scored with; it
# comes back compacted beside the suite's folder),
# NB101_CELLS=8 (then: NB101 InTrain's achieved FLOP/s against the GPU's peak in fp32, TF32 and
# bf16 autocast, and the whole space's price at that rate: benchmarks/nb101_flops.py).
# Further arguments go to benchmarks/gpu_suite.py.
set -euo pipefail
root=${OUT:-$PWD/gpu-suite-out}
out=$root/suite
mkdir -p /tmp/site "$root"
tar -xJf .devicekit/site-cp312.tar.xz -C /tmp/site
python3 -m compileall -q -j0 /tmp/site >/dev/null 2>&1 || true   # workers start from bytecode
export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/site/bin:$PATH PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
args=()
for ref in ${BASELINES:-bda6610}; do args+=(--baseline-dir "$ref=.baseline/$ref"); done
if [ -n "${RESUME_WHOLE:-}" ]; then
    whole=/tmp/raynas-whole/$(basename "$RESUME_WHOLE")
    rm -rf "$whole" && mkdir -p "$(dirname "$whole")" && cp -r "$RESUME_WHOLE" "$whole"
    args+=(--whole-dir "$whole")
fi
if [ -n "${FUSED_KS:-}" ]; then   # issue 25: the fused pass on this GPU beside the per-cell one (never blocks the suite)
    timeout "${FUSED_TIMEOUT_S:-120}" python3 benchmarks/overhead.py --fused "$FUSED_KS" --device cuda \
        --json "$root/overhead_fused.json" 2>&1 | tee "$root/overhead_fused.log" || true
fi
if [ -n "${FUSED_REAL_KS:-}" ]; then   # the same on InTrain's own probe (batch 64 at 32×32): cells/s against K
    timeout "${FUSED_REAL_TIMEOUT_S:-60}" python3 benchmarks/overhead.py --fused "$FUSED_REAL_KS" --fused-real \
        --device cuda --json "$root/overhead_fused_real.json" 2>&1 | tee "$root/overhead_fused_real.log" || true
fi
if [ -n "${FUSED_GA_KS:-}" ]; then   # the same for GradAlign's fused pass
    timeout "${FUSED_GA_TIMEOUT_S:-60}" python3 benchmarks/overhead.py --fused "$FUSED_GA_KS" --fused-proxy gradalign \
        --device cuda --json "$root/overhead_fused_gradalign.json" 2>&1 | tee "$root/overhead_fused_gradalign.log" || true
fi
# issue 25, item 5: GradAlign's ±1 sign Gram in fp16 / bf16 / int8 against float64 (seconds)
timeout 30 python3 benchmarks/sign_gram_precision.py --device cuda --json "$root/sign_gram.json" 2>&1 \
    | tee "$root/sign_gram.log" || true
if [ -n "${NB101_CELLS:-}" ]; then   # issue 25, item 6 (never blocks the suite)
    timeout "${NB101_TIMEOUT_S:-150}" python3 benchmarks/nb101_flops.py --device cuda --cells "$NB101_CELLS" \
        --json "$root/nb101_flops.json" 2>&1 | tee "$root/nb101_flops.log" || true
fi
status=0
python3 benchmarks/gpu_suite.py --out "$out" "${args[@]}" --budget-s "${BUDGET_S:-480}" "$@" 2>&1 | tee "$out.log" || status=$?
if [ -n "${RESUME_WHOLE:-}" ] && [ -f "$whole/_raynas_run.json" ]; then   # what was scored comes back, whatever failed
    python3 benchmarks/compact_run.py "$whole" "$root/$(basename "$RESUME_WHOLE")"
fi
exit $status
