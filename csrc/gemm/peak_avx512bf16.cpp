// The AVX512-BF16 dot-product peak (compiled with -mavx512bf16; called only where the CPU has it).
// Each VDPBF16PS is 32 multiply-adds. The pairs are (1, -1) times (0.5, 0.5): every product is a
// normal number and each instruction adds exactly zero, so the chains never overflow.
#include <immintrin.h>

#include "gemm/peak.hpp"

namespace mf {

double dot_peak_gflops_avx512bf16(long iters) {
    constexpr int ONE_MINUS_ONE = 0xbf803f80, HALF_HALF = 0x3f003f00;  // (hi, lo) bf16 pairs
    return peak_gflops<__m512, 32>(
        iters, _mm512_castsi512_ps(_mm512_set1_epi32(ONE_MINUS_ONE)), _mm512_castsi512_ps(_mm512_set1_epi32(HALF_HALF)),
        [](__m512 a, __m512 x, __m512 y) { return _mm512_dpbf16_ps(a, (__m512bh)_mm512_castps_si512(x), (__m512bh)_mm512_castps_si512(y)); },
        [](int c) { return _mm512_set1_ps(static_cast<float>(c)); }, [](__m512 v) { return _mm512_cvtss_f32(v); });
}

}  // namespace mf
