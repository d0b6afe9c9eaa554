// Single-precision GEMM with a fused epilogue:
//
//   C[M,N] = epilogue(alpha * op(A) @ op(B) + beta * C)
//
// op(X) is X or X^T. Row-major storage; lda/ldb/ldc are row strides in elements.
// beta == 0 never reads C, so C may hold garbage (even NaN) on entry.
#pragma once

#include <cstddef>

namespace mf {

// What happens to each element of the product before it is stored. Applied in this order:
// + bias[j], then max(0, .), then zeroed where mask[i, j] <= 0 (the ReLU derivative of a
// forward activation, so the backward pass needs no second sweep over the matrix).
struct Epilogue {
    const float* bias = nullptr;
    bool relu = false;
    const float* mask = nullptr;
    std::ptrdiff_t ldmask = 0;

    bool empty() const { return bias == nullptr && !relu && mask == nullptr; }
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
};

// Plain triple loop: the oracle the fast kernel is tested against.
void sgemm_naive(const GemmArgs& g);

// The production entry point.
void sgemm(const GemmArgs& g);

// Applies the epilogue to one row segment C[i, j0:j1) that already holds alpha*AB + beta*C.
inline void apply_epilogue_row(const Epilogue& ep, int i, int j0, int j1, float* crow) {
    if (ep.empty()) return;
    const float* mrow = ep.mask ? ep.mask + i * ep.ldmask : nullptr;
    for (int j = j0; j < j1; ++j) {
        float v = crow[j];
        if (ep.bias) v += ep.bias[j];
        if (ep.relu) v = v > 0.0f ? v : 0.0f;
        if (mrow && !(mrow[j] > 0.0f)) v = 0.0f;
        crow[j] = v;
    }
}

}  // namespace mf
