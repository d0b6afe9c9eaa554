// Storing a 12 x 32 tile of zmm accumulators: shared by the AVX-512 kernels (float32 and bf16
// operands). Included only by files compiled with -mavx512f; everything here has internal linkage,
// so no AVX-512 code can reach another file through the linker.
#pragma once

#include <immintrin.h>

#include "gemm/gemm_kernel.hpp"

namespace mf {
namespace {

// The first n of 16 lanes (n clamped to 0..16), for masked loads and stores on the tile's edge.
inline __mmask16 lanes_mask(int n) {
    n = n < 0 ? 0 : (n > 16 ? 16 : n);
    return static_cast<__mmask16>((1u << n) - 1u);
}

// One row of a tile: alpha/beta and the epilogue on whole vectors, straight from the accumulators.
// Masked lanes are never read or written, so edge tiles touch no memory past the matrix.
inline void store_row(__m512 lo, __m512 hi, float* c, int i, const TileStore& st, __mmask16 mlo, __mmask16 mhi) {
    const __m512 alpha = _mm512_set1_ps(st.alpha);
    lo = _mm512_mul_ps(lo, alpha);
    hi = _mm512_mul_ps(hi, alpha);
    if (!st.first_k) {
        lo = _mm512_add_ps(lo, _mm512_maskz_loadu_ps(mlo, c));
        hi = _mm512_add_ps(hi, _mm512_maskz_loadu_ps(mhi, c + 16));
    } else if (st.beta != 0.0f) {
        const __m512 beta = _mm512_set1_ps(st.beta);
        lo = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(mlo, c), lo);
        hi = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(mhi, c + 16), hi);
    }
    if (st.last_k) {
        const Epilogue& ep = *st.ep;
        if (ep.bias) {
            lo = _mm512_add_ps(lo, _mm512_maskz_loadu_ps(mlo, ep.bias + st.j0));
            hi = _mm512_add_ps(hi, _mm512_maskz_loadu_ps(mhi, ep.bias + st.j0 + 16));
        }
        const __m512 zero = _mm512_setzero_ps();
        if (ep.relu) {
            // maxps returns its second operand (0) for a NaN, like the scalar `v > 0 ? v : 0`.
            lo = _mm512_max_ps(lo, zero);
            hi = _mm512_max_ps(hi, zero);
        }
        if (ep.mask) {
            const float* m = ep.mask + i * ep.ldmask + st.j0;
            lo = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(mlo, m), zero, _CMP_GT_OQ), lo);
            hi = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(mhi, m + 16), zero, _CMP_GT_OQ), hi);
        }
    }
    _mm512_mask_storeu_ps(c, mlo, lo);
    _mm512_mask_storeu_ps(c + 16, mhi, hi);
}

// C is touched only after the K loop; fetching its rows first keeps the store from stalling.
inline void prefetch_tile(const TileStore& st) {
    for (int r = 0; r < st.mr; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(st.C + r * st.ldc), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(st.C + r * st.ldc + NR_ZMM - 1), _MM_HINT_T0);
    }
}

// The tile's valid rows and columns, from accumulators lo[r] (columns 0-15) and hi[r] (16-31).
inline void store_tile(const __m512 (&lo)[MR_ZMM], const __m512 (&hi)[MR_ZMM], const TileStore& st) {
    const __mmask16 mlo = lanes_mask(st.nr), mhi = lanes_mask(st.nr - 16);
    const int rows = st.mr;
#pragma GCC unroll 12
    for (int r = 0; r < MR_ZMM; ++r)
        if (r < rows) store_row(lo[r], hi[r], st.C + r * st.ldc, st.i0 + r, st, mlo, mhi);
}

}  // namespace
}  // namespace mf
