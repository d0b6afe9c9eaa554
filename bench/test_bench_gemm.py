"""sgemm: cpp against NumPy's OpenBLAS. Run: pytest bench/ --benchmark-group-by=group"""

import time

import pytest

from mnistfast.bench.cpu import GEMM_SHAPES, SETTLE_S, gemm_flops, gemm_runner


@pytest.mark.parametrize("impl", ["numpy", "cpp"])
@pytest.mark.parametrize("shape", list(GEMM_SHAPES))
def test_sgemm(benchmark, shape, impl, peak_gflops):
    M, N, K, ta, tb = GEMM_SHAPES[shape]
    benchmark.group = f"sgemm {shape}"
    fn = gemm_runner(impl, M, N, K, ta, tb)
    time.sleep(SETTLE_S)  # let the other runtime's spinning threads go idle
    benchmark.pedantic(fn, rounds=5 if M * N * K > 1e8 else 200, warmup_rounds=2)
    gflops = gemm_flops(M, N, K) / benchmark.stats.stats.median / 1e9
    benchmark.extra_info.update(gflops=round(gflops, 1),
                                fraction_of_peak=round(gflops / peak_gflops, 3) if peak_gflops else None)
