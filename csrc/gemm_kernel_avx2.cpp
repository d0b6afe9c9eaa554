// AVX2 + FMA micro-kernel. This file alone is compiled with -mavx2 -mfma; it only runs after
// the run-time CPU check in gemm.cpp has seen both features.
#include <immintrin.h>

#include "gemm_kernel.hpp"

namespace mf {

namespace {

// Full tiles: alpha/beta and the epilogue on whole vectors, straight from the accumulators.
inline void store_row(__m256 lo, __m256 hi, float* c, int i, int j0, const TileStore& st) {
    const __m256 alpha = _mm256_set1_ps(st.alpha);
    lo = _mm256_mul_ps(lo, alpha);
    hi = _mm256_mul_ps(hi, alpha);
    if (!st.first_k) {
        lo = _mm256_add_ps(lo, _mm256_loadu_ps(c));
        hi = _mm256_add_ps(hi, _mm256_loadu_ps(c + 8));
    } else if (st.beta != 0.0f) {
        const __m256 beta = _mm256_set1_ps(st.beta);
        lo = _mm256_fmadd_ps(beta, _mm256_loadu_ps(c), lo);
        hi = _mm256_fmadd_ps(beta, _mm256_loadu_ps(c + 8), hi);
    }
    if (st.last_k) {
        const Epilogue& ep = *st.ep;
        if (ep.bias) {
            lo = _mm256_add_ps(lo, _mm256_loadu_ps(ep.bias + j0));
            hi = _mm256_add_ps(hi, _mm256_loadu_ps(ep.bias + j0 + 8));
        }
        const __m256 zero = _mm256_setzero_ps();
        if (ep.relu) {
            // maxps returns its second operand (0) for a NaN, like the scalar `v > 0 ? v : 0`.
            lo = _mm256_max_ps(lo, zero);
            hi = _mm256_max_ps(hi, zero);
        }
        if (ep.mask) {
            const float* m = ep.mask + i * ep.ldmask + j0;
            lo = _mm256_and_ps(lo, _mm256_cmp_ps(_mm256_loadu_ps(m), zero, _CMP_GT_OQ));
            hi = _mm256_and_ps(hi, _mm256_cmp_ps(_mm256_loadu_ps(m + 8), zero, _CMP_GT_OQ));
        }
    }
    _mm256_storeu_ps(c, lo);
    _mm256_storeu_ps(c + 8, hi);
}

}  // namespace

void micro_kernel_avx2(int kc, const float* a, const float* b, const TileStore& st) {
    static_assert(MR == 6 && NR == 16, "the AVX2 kernel is written for a 6 x 16 tile");
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();

    // C is touched only after the K loop; start fetching its rows now so the store does not stall.
    for (int r = 0; r < st.mr; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(st.C + r * st.ldc), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(st.C + r * st.ldc + NR - 1), _MM_HINT_T0);
    }

#pragma GCC unroll 4
    for (int p = 0; p < kc; ++p, a += MR, b += NR) {
        const __m256 b0 = _mm256_load_ps(b);
        const __m256 b1 = _mm256_load_ps(b + 8);
        __m256 ar;
        ar = _mm256_broadcast_ss(a + 0);
        c00 = _mm256_fmadd_ps(ar, b0, c00);
        c01 = _mm256_fmadd_ps(ar, b1, c01);
        ar = _mm256_broadcast_ss(a + 1);
        c10 = _mm256_fmadd_ps(ar, b0, c10);
        c11 = _mm256_fmadd_ps(ar, b1, c11);
        ar = _mm256_broadcast_ss(a + 2);
        c20 = _mm256_fmadd_ps(ar, b0, c20);
        c21 = _mm256_fmadd_ps(ar, b1, c21);
        ar = _mm256_broadcast_ss(a + 3);
        c30 = _mm256_fmadd_ps(ar, b0, c30);
        c31 = _mm256_fmadd_ps(ar, b1, c31);
        ar = _mm256_broadcast_ss(a + 4);
        c40 = _mm256_fmadd_ps(ar, b0, c40);
        c41 = _mm256_fmadd_ps(ar, b1, c41);
        ar = _mm256_broadcast_ss(a + 5);
        c50 = _mm256_fmadd_ps(ar, b0, c50);
        c51 = _mm256_fmadd_ps(ar, b1, c51);
    }

    if (st.mr == MR && st.nr == NR) {
        float* c = st.C;
        store_row(c00, c01, c + 0 * st.ldc, st.i0 + 0, st.j0, st);
        store_row(c10, c11, c + 1 * st.ldc, st.i0 + 1, st.j0, st);
        store_row(c20, c21, c + 2 * st.ldc, st.i0 + 2, st.j0, st);
        store_row(c30, c31, c + 3 * st.ldc, st.i0 + 3, st.j0, st);
        store_row(c40, c41, c + 4 * st.ldc, st.i0 + 4, st.j0, st);
        store_row(c50, c51, c + 5 * st.ldc, st.i0 + 5, st.j0, st);
        return;
    }
    alignas(32) float acc[MR * NR];
    const __m256 rows[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    for (int r = 0; r < MR; ++r) {
        _mm256_store_ps(acc + r * NR, rows[r][0]);
        _mm256_store_ps(acc + r * NR + 8, rows[r][1]);
    }
    store_tile_scalar(acc, st);
}

}  // namespace mf
