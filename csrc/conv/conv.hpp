// 2-D convolution on channels-last (NHWC) images: the geometry, the entry points that choose an
// algorithm (conv.cpp), and the chunking every algorithm shares.
//
// Every algorithm processes the batch in chunks of images whose working set fits in cache;
// threads take whole chunks (each chunk's GEMMs run on one thread). Weight gradients accumulate
// over a fixed number of chunk groups (for_chunk_groups), summed in group order, so results do not
// depend on the thread count.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/context.hpp"
#include "core/parallel.hpp"

namespace mf {

// Runs body(k) for chunks k = 0 .. chunks-1 spread over the threads.
template <typename Body>
void for_each_chunk(int chunks, Body body) {
    MF_PARALLEL_FOR_IF(chunks > 1)(int k = 0; k < chunks; ++k) body(k);
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
    MF_PARALLEL_FOR_IF(groups > 1)(int gi = 0; gi < groups; ++gi) {
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

// The convolution entry points. Each picks, for geometry g under the settings ctx, the algorithm
// that computes it (conv.cpp): Winograd (conv/winograd), the direct kernel for one input channel
// (conv/direct) or im2col + GEMM (im2col.hpp).
//
// out = relu?(conv(x, w) + bias). bias may be null.
void conv2d_forward(const Context& ctx, const float* x, const float* w, const float* bias, float* out,
                    const ConvGeom& g, bool relu);

// dw = cols(x)^T dy, db = column sums of dy (if db is not null), dx = col2im(dy w^T) (if dx is not
// null: the first layer needs no input gradient).
void conv2d_backward(const Context& ctx, const float* dy, const float* x, const float* w, float* dw, float* db,
                     float* dx, const ConvGeom& g);

// The convolution fused with the pool x pool max pool after it: out and argmax are the pooled map
// and the winners' offsets within each (OH, OW, F) image. They return false, having written nothing
// the caller keeps, where no fused kernel applies (the caller then runs the two kernels); the
// backward pass sets *bad_argmax to the number of argmax entries outside their image.
bool conv2d_maxpool_forward(const Context& ctx, const float* x, const float* w, const float* bias, float* out,
                            int32_t* argmax, const ConvGeom& g, bool relu, int pool);
bool conv2d_maxpool_backward(const Context& ctx, const float* dy, const int32_t* argmax, const float* out,
                             bool relu_mask, const float* x, const float* w, float* dw, float* db, float* dx,
                             const ConvGeom& g, int pool, long* bad_argmax);

const char* conv_algorithm_name(ConvAlgorithm a);
ConvAlgorithm parse_conv_algorithm(const char* name);  // throws std::invalid_argument

}  // namespace mf
