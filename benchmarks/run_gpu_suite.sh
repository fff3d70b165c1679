#!/usr/bin/env bash
# The GPU suite as one device command (docs/gpu.md). Prepare here first:
#   mkdir -p .baseline/bda6610 && git archive bda6610 raynas | tar -x -C .baseline/bda6610
#   ../shared/tools/device-kit
# then run this on the GPU machine with carry [".devicekit", ".baseline"], e.g. timeout 560:
#   bash benchmarks/run_gpu_suite.sh            # results under $OUT/suite (or ./gpu-suite-out)
set -euo pipefail
out=${OUT:-$PWD/gpu-suite-out}/suite
mkdir -p /tmp/site "$(dirname "$out")"
tar -xJf .devicekit/site-cp312.tar.xz -C /tmp/site
python3 -m compileall -q -j0 /tmp/site >/dev/null 2>&1 || true   # workers start from bytecode
export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/site/bin:$PATH PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 benchmarks/gpu_suite.py --out "$out" --baseline-dir .baseline/bda6610 --budget-s "${BUDGET_S:-480}" 2>&1 \
    | tee "$out.log"
