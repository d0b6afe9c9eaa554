#!/usr/bin/env bash
# The one command for a session that has a GPU (an H100 with PyTorch, CuPy and numba-cuda, and
# nothing to download): the cuda kernel suite at full sizes, then every GPU measurement of
# `mnistfast bench --backend cuda`, held under 6 minutes by its timeouts (150 s + 200 s; it has
# not yet run on a GPU). Everything lands in $OUT (default
# ./gpu_check_out): suite.txt, bench.txt, gpu_check.json (rewritten after each section, so a run
# cut short keeps what it measured), env.txt.
#
#   bash bench/gpu_check.sh                 # on the GPU machine
#   GPU_CHECK_SIMULATE=1 bash bench/gpu_check.sh   # anywhere: the same steps in Numba's CUDA
#                                           # simulator, on tiny sizes (timings meaningless)
#
# Runs from the source tree without building the C++ extension (the cuda backend needs none).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_check_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
failed=0

if [ "${GPU_CHECK_SIMULATE:-0}" = 1 ]; then
  export NUMBA_ENABLE_CUDASIM=1
  suite=(tests/test_cuda_launches.py)
  bench=(--quick)
else
  unset NUMBA_ENABLE_CUDASIM
  suite=(tests/test_kernels.py tests/test_layer_kernels.py -k cuda tests/test_cuda.py tests/test_cuda_launches.py)
  bench=(--rounds 3)
fi

{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || true
  "$PY" -c "import sys, numpy, numba, numba.cuda; print(sys.version.split()[0], 'numpy', numpy.__version__, 'numba', numba.__version__)"
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" 2>&1 || true
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# 1. The kernel suite on the cuda backend against the numpy reference; on a GPU nothing is too
#    large, so a skip here is a finding (-rs lists them).
MNISTFAST_TEST_BACKENDS=numpy,cuda timeout 150 "$PY" -m pytest -q -rs -p no:cacheprovider "${suite[@]}" \
  > "$OUT/suite.txt" 2>&1 || failed=1
tail -n 25 "$OUT/suite.txt"

# 2. The measurements.
timeout 200 "$PY" -m mnistfast bench --backend cuda "${bench[@]}" --out "$OUT/gpu_check.json" 2>&1 \
  | tee "$OUT/bench.txt"
[ "${PIPESTATUS[0]}" = 0 ] || failed=1

echo "gpu_check: $([ $failed = 0 ] && echo passed || echo FAILED); results in $OUT"
exit $failed
