"""float32 against bf16 GEMM kernels on training-step shapes: `python bench/gemm_bf16.py`.

GFLOP/s on 2 threads, best of 5 timed loops of about 2 GFLOP each, random normal operands.
"""

import time

import numpy as np

from mnistfast import _core

SHAPES = [(128, 128, 784, False, False), (128, 784, 128, True, False), (128, 784, 128, False, True),
          (128, 1024, 784, False, False), (784, 1024, 128, True, False), (1024, 1024, 1024, False, False),
          (10816, 32, 288, False, False)]


def gflops(k, M, N, K, ta, tb, rng):
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32)
    c = np.empty((M, N), np.float32)
    reps = max(3, int(2e9 / (2 * M * N * K)))
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            k.gemm(a, b, c, ta, tb, 1.0, 0.0)
        best = min(best, (time.perf_counter() - t0) / reps)
    return 2 * M * N * K / best / 1e9


def main():
    names = [n for n in ("avx512", "avx2") if n in _core.available_gemm_kernels()][:1] + \
        [n for n in _core.available_bf16_gemm_kernels() if n != "generic-bf16"]
    kernels = {n: _core.Kernels(2, n, "auto") for n in names}
    rng = np.random.default_rng(0)
    print("| M x N x K (op) | " + " | ".join(names) + " |")
    for M, N, K, ta, tb in SHAPES:
        op = ", A^T" if ta else (", B^T" if tb else "")
        row = [f"{gflops(k, M, N, K, ta, tb, rng):.0f}" for k in kernels.values()]
        print(f"| {M} x {N} x {K}{op} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
