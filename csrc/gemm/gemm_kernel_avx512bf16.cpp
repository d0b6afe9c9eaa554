// AVX512-BF16 micro-kernel: a 12 x 32 tile of C in 24 zmm float32 accumulators, from slivers of
// bf16 pairs (gemm_blocked.cpp). Each VDPBF16PS adds, in each of 16 lanes, the products of one
// pair of A by one pair of B: 32 multiply-adds per instruction, twice the float32 FMA's. This file
// alone is compiled with -mavx512bf16; it only runs after the run-time CPU check in gemm.cpp.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "gemm/gemm_kernel.hpp"
#include "gemm/store_zmm.hpp"

namespace mf {

namespace {

constexpr int MR = MR_ZMM, NR = NR_ZMM;

// One slot of A (a bf16 pair) in every lane.
inline __m512bh broadcast_pair(const float* slot) {
    int32_t pair;
    std::memcpy(&pair, slot, sizeof pair);
    return (__m512bh)_mm512_set1_epi32(pair);
}

}  // namespace

void micro_kernel_avx512bf16(int slots, const float* a, std::ptrdiff_t a_rs, std::ptrdiff_t a_cs, const float* b,
                             std::ptrdiff_t b_step, const TileStore& st) {
    static_assert(MR == 12 && NR == 32, "the AVX512-BF16 kernel is written for a 12 x 32 tile");
    __m512 lo[MR], hi[MR];
#pragma GCC unroll 12
    for (int r = 0; r < MR; ++r) lo[r] = hi[r] = _mm512_setzero_ps();
    prefetch_tile(st);
#pragma GCC unroll 2
    for (int p = 0; p < slots; ++p, a += a_cs, b += b_step) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b);
        const __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + 16);
#pragma GCC unroll 12
        for (int r = 0; r < MR; ++r) {
            const __m512bh ar = broadcast_pair(a + r * a_rs);
            lo[r] = _mm512_dpbf16_ps(lo[r], ar, b0);
            hi[r] = _mm512_dpbf16_ps(hi[r], ar, b1);
        }
    }
    store_tile(lo, hi, st);
}

}  // namespace mf
