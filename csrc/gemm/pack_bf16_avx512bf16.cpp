// The AVX512-BF16 pair packer (pack_bf16.hpp): VCVTNEPS2BF16 rounds 16 values at a time, as
// to_bf16 does (nearest even, NaN kept quiet, denormals to a zero of their sign). The two layouts
// an operand comes in get their own loop:
//   - contiguous along x (op(A) = A^T, op(B) = B): rows k and k + 1 are two vector loads, their
//     roundings interleaved into 16 slots;
//   - contiguous along k (op(A) = A, op(B) = B^T): 32 consecutive values of one x are already 16
//     pairs in order; they go to their slots, W apart, by one scatter.
// This file alone is compiled with -mavx512bf16; it only runs after the run-time CPU check.
#include <immintrin.h>

#include <cstdint>

#include "gemm/pack_bf16.hpp"
#include "gemm/store_zmm.hpp"

namespace mf {

namespace {

constexpr int LANES = 16;  // floats per zmm, slots per zmm

// 16 slots from rows k (low halves) and k + 1 (high halves).
inline __m512i interleave_pairs(__m512 even, __m512 odd) {
    const __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(even));
    const __m512i hi = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(odd));
    return _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
}

void pack_along_x(const float* src, std::ptrdiff_t k_stride, int kc, int n, int W, float* dst, float* sums) {
    const int slots = (kc + 1) / 2;
    for (int x0 = 0; x0 < W; x0 += LANES) {
        const __mmask16 load = lanes_mask(n - x0), store = lanes_mask(W - x0);
        __m512 sum = sums ? _mm512_maskz_loadu_ps(load, sums + x0) : _mm512_setzero_ps();
        for (int p = 0; p < slots; ++p) {
            const float* even = src + 2 * p * k_stride + x0;
            const __m512 v0 = _mm512_maskz_loadu_ps(load, even);
            const __m512 v1 = 2 * p + 1 < kc ? _mm512_maskz_loadu_ps(load, even + k_stride) : _mm512_setzero_ps();
            if (sums) sum = _mm512_add_ps(_mm512_add_ps(sum, v0), v1);  // k order, per lane
            _mm512_mask_storeu_epi32(dst + p * W + x0, store, interleave_pairs(v0, v1));
        }
        if (sums) _mm512_mask_storeu_ps(sums + x0, load, sum);
    }
}

void pack_along_k(const float* src, std::ptrdiff_t x_stride, int kc, int n, int W, float* dst, float* sums) {
    const int slots = (kc + 1) / 2;
    const __m512i slot_offsets = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                                    _mm512_set1_epi32(W));
    for (int x = 0; x < n; ++x) {
        const float* row = src + x * x_stride;
        for (int p0 = 0; p0 < slots; p0 += LANES) {
            const int k0 = 2 * p0;
            const __m512 lo = _mm512_maskz_loadu_ps(lanes_mask(kc - k0), row + k0);
            const __m512 hi = _mm512_maskz_loadu_ps(lanes_mask(kc - k0 - LANES), row + k0 + LANES);
            const __m512i pairs = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
            _mm512_mask_i32scatter_epi32(dst + p0 * W + x, lanes_mask(slots - p0), slot_offsets, pairs, 4);
        }
        if (sums) {
            float s = sums[x];  // one value at a time, in k order, as every packer sums
            for (int k = 0; k < kc; ++k) s += row[k];
            sums[x] = s;
        }
    }
    for (int p = 0; p < slots; ++p)
        for (int x = n; x < W; ++x) reinterpret_cast<uint32_t*>(dst)[p * W + x] = 0;
}

}  // namespace

void pack_pairs_avx512bf16(const float* src, std::ptrdiff_t k_stride, std::ptrdiff_t x_stride, int kc, int n, int W,
                           float* dst, float* sums) {
    if (x_stride == 1) return pack_along_x(src, k_stride, kc, n, W, dst, sums);
    if (k_stride == 1) return pack_along_k(src, x_stride, kc, n, W, dst, sums);
    pack_pairs_generic(src, k_stride, x_stride, kc, n, W, dst, sums);
}

}  // namespace mf
