// AVX-512 micro-kernel: a 12 x 32 tile of C in 24 zmm accumulators. This file alone is compiled
// with -mavx512f; it only runs after the run-time CPU check in gemm.cpp has seen AVX-512F.
#include <immintrin.h>

#include "gemm/gemm_kernel.hpp"
#include "gemm/store_zmm.hpp"

namespace mf {

namespace {

constexpr int MR = MR_ZMM, NR = NR_ZMM;

// The K loop, for A read from a packed sliver or a column of A^T (MR values together per k:
// RowStreams = false) or straight from MR rows of A (RowStreams = true).
template <bool RowStreams>
inline void k_loop(int kc, const float* a, std::ptrdiff_t a_rs, std::ptrdiff_t a_cs, const float* b,
                   std::ptrdiff_t b_step, __m512 (&lo)[MR], __m512 (&hi)[MR]) {
    const std::ptrdiff_t rs = RowStreams ? a_rs : 1;
#pragma GCC unroll 2
    for (int p = 0; p < kc; ++p, a += a_cs, b += b_step) {
        const __m512 b0 = _mm512_loadu_ps(b);  // unaligned: B may be read in place
        const __m512 b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 12
        for (int r = 0; r < MR; ++r) {
            const __m512 ar = _mm512_set1_ps(a[r * rs]);
            lo[r] = _mm512_fmadd_ps(ar, b0, lo[r]);
            hi[r] = _mm512_fmadd_ps(ar, b1, hi[r]);
        }
    }
}

}  // namespace

void micro_kernel_avx512(int kc, const float* a, std::ptrdiff_t a_rs, std::ptrdiff_t a_cs, const float* b,
                         std::ptrdiff_t b_step, const TileStore& st) {
    static_assert(MR == 12 && NR == 32, "the AVX-512 kernel is written for a 12 x 32 tile");
    __m512 lo[MR], hi[MR];
#pragma GCC unroll 12
    for (int r = 0; r < MR; ++r) lo[r] = hi[r] = _mm512_setzero_ps();

    prefetch_tile(st);
    if (a_rs == 1) k_loop<false>(kc, a, a_rs, a_cs, b, b_step, lo, hi);
    else k_loop<true>(kc, a, a_rs, a_cs, b, b_step, lo, hi);

    store_tile(lo, hi, st);
}

}  // namespace mf
