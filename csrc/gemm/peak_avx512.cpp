// The AVX-512 peak (compiled with -mavx512f; called only where the CPU has it).
#include <immintrin.h>

#include "gemm/peak.hpp"

namespace mf {

double fma_peak_gflops_avx512(long iters) {
    return fma_peak_gflops<__m512, 16>(
        iters, [](__m512 a, __m512 x, __m512 y) { return _mm512_fmadd_ps(a, x, y); },
        [](float v) { return _mm512_set1_ps(v); }, [](__m512 v) { return _mm512_cvtss_f32(v); });
}

}  // namespace mf
