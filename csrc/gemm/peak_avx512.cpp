// The AVX-512 peak (compiled with -mavx512f; called only where the CPU has it).
#include <immintrin.h>

#include "gemm/peak.hpp"

namespace mf {

double fma_peak_gflops_avx512(long iters) {
    return peak_gflops<__m512, 16>(
        iters, _mm512_set1_ps(0.999999f), _mm512_set1_ps(1e-7f),
        [](__m512 a, __m512 x, __m512 y) { return _mm512_fmadd_ps(a, x, y); },
        [](int c) { return _mm512_set1_ps(static_cast<float>(c)); }, [](__m512 v) { return _mm512_cvtss_f32(v); });
}

}  // namespace mf
