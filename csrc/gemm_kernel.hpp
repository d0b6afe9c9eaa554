// The register-blocked heart of the packed GEMM: one MR x NR tile of C from packed slivers.
//
// Sliver layouts: a[p * a_step + r] = op(A)[i0 + r, p0 + p] for r < MR and
//                  b[p * b_step + c] = op(B)[p0 + p, j0 + c] for c < NR.
// Packed slivers (zero-padded to full MR / NR) have a_step = MR, b_step = NR. A full sliver
// whose MR (NR) values already lie together in memory is read in place, a_step = lda (ldb):
// op(A) = A^T and op(B) = B need no packing.
#pragma once

#include <cstddef>

#include "gemm.hpp"

namespace mf {

constexpr int MR = 6;   // rows of C per micro-kernel: 6 x 2 AVX2 accumulators + 2 B + 1 A = 15 of 16 ymm
constexpr int NR = 16;  // columns of C per micro-kernel: two 8-float vectors

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

// Merges a finished MR x NR accumulator (row-major) into C, element by element.
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

using MicroKernel = void (*)(int kc, const float* a, std::ptrdiff_t a_step, const float* b, std::ptrdiff_t b_step,
                             const TileStore& st);

void micro_kernel_generic(int kc, const float* a, std::ptrdiff_t a_step, const float* b, std::ptrdiff_t b_step,
                          const TileStore& st);
#if defined(__x86_64__) || defined(_M_X64)
void micro_kernel_avx2(int kc, const float* a, std::ptrdiff_t a_step, const float* b, std::ptrdiff_t b_step,
                       const TileStore& st);
#endif

}  // namespace mf
