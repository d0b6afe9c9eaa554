// Single-precision GEMM with a fused epilogue:
//
//   C[M,N] = epilogue(alpha * op(A) @ op(B) + beta * C)
//
// op(X) is X or X^T. Row-major storage; lda/ldb/ldc are row strides in elements.
// beta == 0 never reads C, so C may hold garbage (even NaN) on entry.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "core/context.hpp"

namespace mf {

// What happens to each element of the product before it is stored. Applied in this order:
// + bias[j], then max(0, .), then zeroed where mask[i, j] <= 0 (the ReLU derivative of a
// forward activation, so the backward pass needs no second sweep over the matrix).
struct Epilogue {
    const float* bias = nullptr;
    bool relu = false;
    const float* mask = nullptr;
    std::ptrdiff_t ldmask = 0;
};

struct GemmArgs {
    bool trans_a = false, trans_b = false;
    int M = 0, N = 0, K = 0;
    float alpha = 1.0f;
    const float* A = nullptr;
    std::ptrdiff_t lda = 0;
    const float* B = nullptr;
    std::ptrdiff_t ldb = 0;
    float beta = 0.0f;
    float* C = nullptr;
    std::ptrdiff_t ldc = 0;
    Epilogue ep;
    // When not null: b_colsum[j] = alpha * sum_k op(B)[k, j] + beta * b_colsum[j] (beta == 0 never
    // reads it), summed in k order. For dW = x^T dy (op(A) = x^T, op(B) = dy) it is the bias
    // gradient, or with alpha = -lr and beta = 1 the bias's SGD step, beside the weights' own: the
    // sums ride on the packing of B, which reads every element of dy anyway.
    float* b_colsum = nullptr;
    bool single_thread = false;  // set by callers that already run one GEMM per thread
};

// Plain triple loop: the oracle the fast kernel is tested against.
void sgemm_naive(const GemmArgs& g);

// g.b_colsum alone, by a plain loop over k (the oracle's, and the packed GEMM's when M == 0).
void b_column_sums(const GemmArgs& g);

// The production entry point: the packed, blocked GEMM with the given micro-kernel (or the naive
// oracle, for tests).
void sgemm(const GemmArgs& g, GemmKernel kernel);

// The kernels this CPU runs; the best of them is the default, and tests check every one. The
// float32 and bf16 kernels are listed apart: bf16 is a precision the caller asks for.
const char* gemm_kernel_name(GemmKernel k);
std::vector<GemmKernel> available_gemm_kernels();
std::vector<GemmKernel> available_bf16_gemm_kernels();
GemmKernel best_gemm_kernel();
// The float32 kernel of the same instruction set: what the code beside the GEMMs (the direct
// convolutions, the Winograd transforms) is built for. The bf16 kernels' is AVX-512 or generic.
GemmKernel float_kernel(GemmKernel k);
GemmKernel parse_gemm_kernel(const std::string& name);  // "auto" or a name; throws std::invalid_argument

// Applies the epilogue to C[i, j0 : j0 + n), stored at c[0 : n), which already holds
// alpha * AB + beta * C. Static: each file gets its own copy, so the -mavx2 file cannot lend
// AVX2 code to the others through the linker.
// One pass per stage, so that each loop vectorizes (the K split adds whole rows through it).
static inline void apply_epilogue_row(const Epilogue& ep, int i, int j0, int n, float* c) {
    if (ep.bias) {
        const float* bias = ep.bias + j0;
        for (int k = 0; k < n; ++k) c[k] += bias[k];
    }
    if (ep.relu)
        for (int k = 0; k < n; ++k) c[k] = c[k] > 0.0f ? c[k] : 0.0f;
    if (ep.mask) {
        const float* mrow = ep.mask + i * ep.ldmask + j0;
        for (int k = 0; k < n; ++k) c[k] = mrow[k] > 0.0f ? c[k] : 0.0f;
    }
}

}  // namespace mf
