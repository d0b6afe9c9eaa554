// The register-blocked heart of the packed GEMM: one MR x NR tile of C from packed slivers.
//
// Sliver layouts: a[r * a_rs + p * a_cs] = op(A)[i0 + r, p0 + p] for r < MR and
//                  b[p * b_step + c] = op(B)[p0 + p, j0 + c] for c < NR.
// Packed slivers (zero-padded to full MR / NR) have a_rs = 1, a_cs = MR and b_step = NR. A full
// sliver of A can also be read where it lies: op(A) = A^T has a_rs = 1, a_cs = lda (MR values
// together per k), op(A) = A has a_rs = lda, a_cs = 1 (MR row streams).
#pragma once

#include <cstddef>

#include "gemm/gemm.hpp"
#include "gemm/pack_bf16.hpp"

namespace mf {

// Tile shapes, sized to the register file: MR rows x NR columns of accumulators, plus the B
// vectors and one broadcast A value.
constexpr int MR_YMM = 6;   // generic and AVX2: 6 x 2 ymm accumulators + 2 B + 1 A = 15 of 16 ymm
constexpr int NR_YMM = 16;
constexpr int MR_ZMM = 12;  // AVX-512: 12 x 2 zmm accumulators + 2 B + 1 A = 27 of 32 zmm
constexpr int NR_ZMM = 32;

// Where a computed tile goes and what happens on the way.
struct TileStore {
    float* C;            // top-left element of the tile in C
    std::ptrdiff_t ldc;
    int mr, nr;          // valid rows / columns (< MR / NR on the matrix edges)
    int i0, j0;          // tile position in C, for the epilogue's bias and mask
    float alpha, beta;
    bool first_k;        // first K block: C = alpha*acc + beta*C; later ones: C += alpha*acc
    bool last_k;         // last K block: apply the epilogue
    const Epilogue* ep;
};

// Merges a finished accumulator (row-major, NR per row) into C, element by element.
template <int NR>
static inline void store_tile_scalar(const float* acc, const TileStore& st) {
    for (int r = 0; r < st.mr; ++r) {
        float* crow = st.C + r * st.ldc;
        for (int c = 0; c < st.nr; ++c) {
            const float v = st.alpha * acc[r * NR + c];
            if (!st.first_k) crow[c] += v;
            else if (st.beta == 0.0f) crow[c] = v;  // C is never read: it may hold NaN
            else crow[c] = v + st.beta * crow[c];
        }
        if (st.last_k) apply_epilogue_row(*st.ep, st.i0 + r, st.j0, st.nr, crow);
    }
}

using MicroKernel = void (*)(int kc, const float* a, std::ptrdiff_t a_rs, std::ptrdiff_t a_cs, const float* b,
                             std::ptrdiff_t b_step, const TileStore& st);

// Cache blocking around a micro-kernel (see gemm_blocked.cpp): an MC x KC block of A in L2, a
// KC x NR sliver of B in L1 (L2 for AVX-512), a KC x NC panel of B in L3.
struct Blocking {
    int mc, kc, nc;
};

// The blocked driver for an MR x NR micro-kernel (instantiated for the two tile shapes above), on
// float32 operands or (BF16) on operands rounded to bf16 and packed in pairs by `pack` (unused for
// float32): the kernel's kc and strides then count slots of two bf16 values.
template <int MR, int NR, bool BF16>
void sgemm_blocked(const GemmArgs& g, MicroKernel kernel, const Blocking& blk, PairPacker pack);

void micro_kernel_generic(int kc, const float* a, std::ptrdiff_t a_rs, std::ptrdiff_t a_cs, const float* b,
                          std::ptrdiff_t b_step, const TileStore& st);
void micro_kernel_generic_bf16(int slots, const float* a, std::ptrdiff_t a_rs, std::ptrdiff_t a_cs, const float* b,
                               std::ptrdiff_t b_step, const TileStore& st);
#if defined(__x86_64__) || defined(_M_X64)
void micro_kernel_avx2(int kc, const float* a, std::ptrdiff_t a_rs, std::ptrdiff_t a_cs, const float* b,
                       std::ptrdiff_t b_step, const TileStore& st);
void micro_kernel_avx512(int kc, const float* a, std::ptrdiff_t a_rs, std::ptrdiff_t a_cs, const float* b,
                         std::ptrdiff_t b_step, const TileStore& st);
void micro_kernel_avx512bf16(int slots, const float* a, std::ptrdiff_t a_rs, std::ptrdiff_t a_cs, const float* b,
                             std::ptrdiff_t b_step, const TileStore& st);
#endif

}  // namespace mf
