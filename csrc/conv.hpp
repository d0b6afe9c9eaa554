// 2-D convolution on channels-last (NHWC) images, as im2col + the packed GEMM (a single input
// channel at stride 1 goes to the direct kernel of conv_direct.hpp instead).
//
//   cols[(n, oy, ox), (ky, kx, c)] = x[n, oy*SH - PH + ky, ox*SW - PW + kx, c]   (0 outside)
//   out[(n, oy, ox), f]            = cols @ w + bias          (w is (KH*KW*C, F))
//
// Channels-last makes each patch row KH*KW runs of C contiguous floats and makes the GEMM's
// output the next layer's NHWC input with no transpose; bias and ReLU ride in the GEMM epilogue.
//
// The batch is processed in chunks of images whose patch matrix fits in cache (COLS_CHUNK_FLOATS):
// the patch matrix is built, multiplied and dropped while still in cache, never written to memory
// for the whole batch. Threads take whole chunks (each GEMM runs on one thread). The weight
// gradient accumulates over a fixed number of chunk groups (for_chunk_groups), summed in group
// order, so results do not depend on the thread count.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include "gemm.hpp"
#include "parallel.hpp"

namespace mf {

// Runs body(k) for chunks k = 0 .. chunks-1 spread over the threads, each thread with the
// caller's GEMM kernel (the choice is per thread, gemm.hpp).
template <typename Body>
void for_each_chunk(int chunks, Body body) {
    const GemmKernel kernel = gemm_kernel();
    MF_PARALLEL_FOR_IF(chunks > 1)(int k = 0; k < chunks; ++k) {
        use_gemm_kernel(kernel);
        body(k);
    }
}

// Partial weight gradients a backward pass keeps: one per group of consecutive chunks, whatever
// the thread count. A partial per chunk cost a serial sum of ~40 of them per step (0.4 ms of
// the basic CNN's second layer, by im2col); 8 groups still feed 8 threads.
constexpr int GRADIENT_GROUPS = 8;

inline int gradient_groups(int chunks) { return std::min(chunks, GRADIENT_GROUPS); }

// Runs body(k, group, first) for every chunk k: the groups (gradient_groups(chunks) of them) are
// spread over the threads, and each group's chunks run in order on one thread, `first` set for
// the group's first chunk, so the body can accumulate a group's gradient in place (GEMM beta 1)
// in an order that does not depend on the thread count.
template <typename Body>
void for_chunk_groups(int chunks, Body body) {
    const int groups = gradient_groups(chunks);
    const GemmKernel kernel = gemm_kernel();
    MF_PARALLEL_FOR_IF(groups > 1)(int gi = 0; gi < groups; ++gi) {
        use_gemm_kernel(kernel);
        const int k0 = static_cast<int>(static_cast<long>(chunks) * gi / groups);
        const int k1 = static_cast<int>(static_cast<long>(chunks) * (gi + 1) / groups);
        for (int k = k0; k < k1; ++k) body(k, gi, k == k0);
    }
}

// acc += parts[0] + parts[1] + ... + parts[count - 1], each part n floats (stored one after
// another), added in that order: the in-order sum of per-group or per-chunk partial gradients.
inline void add_partials(float* acc, const float* parts, int count, std::size_t n) {
    for (int k = 0; k < count; ++k, parts += n)
        for (std::size_t i = 0; i < n; ++i) acc[i] += parts[i];
}

// A per-thread work buffer that only grows: a training loop's calls reuse it, allocating nothing.
inline float* grown(std::vector<float>& buf, std::size_t n) {
    if (buf.size() < n) buf.resize(n);
    return buf.data();
}

struct ConvGeom {
    int N, H, W, C;       // input
    int KH, KW, SH, SW;   // kernel and stride
    int PH, PW;           // zero rows / columns added before the first input row / column
    int OH, OW, F;        // output
    long rows() const { return static_cast<long>(N) * OH * OW; }
    int patch() const { return KH * KW * C; }
    // A 1x1, stride-1, unpadded convolution is a plain GEMM on x: no patch matrix needed.
    bool pointwise() const { return KH == 1 && KW == 1 && SH == 1 && SW == 1 && PH == 0 && PW == 0 && OH == H && OW == W; }
};

// Patch matrix of images [n0, n0 + count): (count*OH*OW) x patch.
void im2col(const float* x, const ConvGeom& g, int n0, int count, float* cols);
// dx for images [n0, n0 + count) = every patch row's entries put back where im2col took them.
void col2im(const float* cols, const ConvGeom& g, int n0, int count, float* dx);

// out = relu?(conv(x, w) + bias). bias may be null.
void conv2d_forward(const float* x, const float* w, const float* bias, float* out, const ConvGeom& g, bool relu);

// dw = cols(x)^T dy, db = column sums of dy (if db is not null), dx = col2im(dy w^T) (if dx is not
// null: the first layer needs no input gradient).
void conv2d_backward(const float* dy, const float* x, const float* w, float* dw, float* db, float* dx, const ConvGeom& g);

}  // namespace mf
