// AVX2 + FMA micro-kernel. This file alone is compiled with -mavx2 -mfma; it only runs after
// the run-time CPU check in gemm.cpp has seen both features.
#include <immintrin.h>

#include <cstdint>

#include "gemm/gemm_kernel.hpp"

namespace mf {

namespace {

constexpr int MR = MR_YMM, NR = NR_YMM;

// lanes_mask(n): the first n of 8 lanes on (n clamped to 0..8), for masked loads and stores.
inline __m256i lanes_mask(int n) {
    alignas(32) static const int32_t table[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    n = n < 0 ? 0 : (n > 8 ? 8 : n);
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(table + 8 - n));
}

// One row of a tile: alpha/beta and the epilogue on whole vectors, straight from the
// accumulators. Edge tiles (Masked) touch only their valid columns, never memory past them.
template <bool Masked>
inline __m256 load8(const float* p, __m256i m) {
    if constexpr (Masked) return _mm256_maskload_ps(p, m);
    else return _mm256_loadu_ps(p);
}

template <bool Masked>
inline void store_row(__m256 lo, __m256 hi, float* c, int i, const TileStore& st, __m256i mlo, __m256i mhi) {
    const __m256 alpha = _mm256_set1_ps(st.alpha);
    lo = _mm256_mul_ps(lo, alpha);
    hi = _mm256_mul_ps(hi, alpha);
    if (!st.first_k) {
        lo = _mm256_add_ps(lo, load8<Masked>(c, mlo));
        hi = _mm256_add_ps(hi, load8<Masked>(c + 8, mhi));
    } else if (st.beta != 0.0f) {
        const __m256 beta = _mm256_set1_ps(st.beta);
        lo = _mm256_fmadd_ps(beta, load8<Masked>(c, mlo), lo);
        hi = _mm256_fmadd_ps(beta, load8<Masked>(c + 8, mhi), hi);
    }
    if (st.last_k) {
        const Epilogue& ep = *st.ep;
        if (ep.bias) {
            lo = _mm256_add_ps(lo, load8<Masked>(ep.bias + st.j0, mlo));
            hi = _mm256_add_ps(hi, load8<Masked>(ep.bias + st.j0 + 8, mhi));
        }
        const __m256 zero = _mm256_setzero_ps();
        if (ep.relu) {
            // maxps returns its second operand (0) for a NaN, like the scalar `v > 0 ? v : 0`.
            lo = _mm256_max_ps(lo, zero);
            hi = _mm256_max_ps(hi, zero);
        }
        if (ep.mask) {
            const float* m = ep.mask + i * ep.ldmask + st.j0;
            lo = _mm256_and_ps(lo, _mm256_cmp_ps(load8<Masked>(m, mlo), zero, _CMP_GT_OQ));
            hi = _mm256_and_ps(hi, _mm256_cmp_ps(load8<Masked>(m + 8, mhi), zero, _CMP_GT_OQ));
        }
    }
    if constexpr (Masked) {
        _mm256_maskstore_ps(c, mlo, lo);
        _mm256_maskstore_ps(c + 8, mhi, hi);
    } else {
        _mm256_storeu_ps(c, lo);
        _mm256_storeu_ps(c + 8, hi);
    }
}

template <bool Masked>
inline void store_tile(const __m256 (&acc)[MR][2], const TileStore& st) {
    const __m256i mlo = lanes_mask(st.nr), mhi = lanes_mask(st.nr - 8);
    for (int r = 0; r < (Masked ? st.mr : MR); ++r)
        store_row<Masked>(acc[r][0], acc[r][1], st.C + r * st.ldc, st.i0 + r, st, mlo, mhi);
}

// The K loop, for A read from a packed sliver or a column of A^T (MR values together per k:
// RowStreams = false) or straight from MR rows of A (RowStreams = true).
template <bool RowStreams>
inline void k_loop(int kc, const float* a, std::ptrdiff_t a_rs, std::ptrdiff_t a_cs, const float* b,
                   std::ptrdiff_t b_step, __m256 (&acc)[MR][2]) {
    const std::ptrdiff_t rs = RowStreams ? a_rs : 1;
#pragma GCC unroll 4
    for (int p = 0; p < kc; ++p, a += a_cs, b += b_step) {
        const __m256 b0 = _mm256_loadu_ps(b);  // unaligned: B may be read in place
        const __m256 b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
        for (int r = 0; r < MR; ++r) {
            const __m256 ar = _mm256_broadcast_ss(a + r * rs);
            acc[r][0] = _mm256_fmadd_ps(ar, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(ar, b1, acc[r][1]);
        }
    }
}

}  // namespace

void micro_kernel_avx2(int kc, const float* a, std::ptrdiff_t a_rs, std::ptrdiff_t a_cs, const float* b,
                       std::ptrdiff_t b_step, const TileStore& st) {
    static_assert(MR == 6 && NR == 16, "the AVX2 kernel is written for a 6 x 16 tile");
    __m256 acc[MR][2];
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();

    // C is touched only after the K loop; start fetching its rows now so the store does not stall.
    for (int r = 0; r < st.mr; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(st.C + r * st.ldc), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(st.C + r * st.ldc + NR - 1), _MM_HINT_T0);
    }
    if (a_rs == 1) k_loop<false>(kc, a, a_rs, a_cs, b, b_step, acc);
    else k_loop<true>(kc, a, a_rs, a_cs, b, b_step, acc);

    if (st.mr == MR && st.nr == NR) store_tile<false>(acc, st);
    else store_tile<true>(acc, st);
}

}  // namespace mf
