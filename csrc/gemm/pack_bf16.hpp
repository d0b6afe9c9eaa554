// Packing GEMM operands as bf16 pairs (the layout of VDPBF16PS, see gemm_blocked.cpp).
//
// A pair packer fills a W-wide sliver of slots from a strided float32 view v(k, x) =
// src[k * k_stride + x * x_stride], k < kc, x < n:
//   slot (p, x) = dst[p * W + x] holds bf16(v(2p, x)) in its low half and bf16(v(2p + 1, x)) in
//   its high half, for p < ceil(kc / 2) and x < W; values past kc or n are zero.
// With sums, sums[x] += v(k, x) for x < n, in k order and in float32 (the bias gradient's column
// sums come from the unrounded values). Every packer rounds as to_bf16 does, so they are
// interchangeable bit for bit.
#pragma once

#include <cstddef>

namespace mf {

using PairPacker = void (*)(const float* src, std::ptrdiff_t k_stride, std::ptrdiff_t x_stride, int kc, int n, int W,
                            float* dst, float* sums);

// Runs anywhere: one value at a time.
void pack_pairs_generic(const float* src, std::ptrdiff_t k_stride, std::ptrdiff_t x_stride, int kc, int n, int W,
                        float* dst, float* sums);
#if defined(__x86_64__) || defined(_M_X64)
// AVX512-BF16: 16 values per conversion (W <= 32).
void pack_pairs_avx512bf16(const float* src, std::ptrdiff_t k_stride, std::ptrdiff_t x_stride, int kc, int n, int W,
                           float* dst, float* sums);
#endif

}  // namespace mf
