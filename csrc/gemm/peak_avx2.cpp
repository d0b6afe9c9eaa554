// The AVX2 + FMA peak (compiled with -mavx2 -mfma; called only where the CPU has both).
#include <immintrin.h>

#include "gemm/peak.hpp"

namespace mf {

double fma_peak_gflops_avx2(long iters) {
    return peak_gflops<__m256, 8>(
        iters, _mm256_set1_ps(0.999999f), _mm256_set1_ps(1e-7f),
        [](__m256 a, __m256 x, __m256 y) { return _mm256_fmadd_ps(a, x, y); },
        [](int c) { return _mm256_set1_ps(static_cast<float>(c)); }, [](__m256 v) { return _mm256_cvtss_f32(v); });
}

}  // namespace mf
