// Direct convolution for a single input channel (the first layer of an MNIST net), stride 1.
//
//   out[n, oy, ox, f] = bias[f] + sum_{ky, kx} xp[n, oy + ky, ox + kx] * w[ky, kx, f]
//   dw[ky, kx, f]     = sum_{n, oy, ox} xp[n, oy + ky, ox + kx] * dy[n, oy, ox, f]
//
// (xp: the image with its zero padding.) With one channel a patch row has only KH*KW floats, so
// im2col + GEMM spends its time building the patch matrix and packing it; here each output pixel
// is KH*KW broadcasts times a vector of F weights, with a block of pixels in registers. The code is
// C++ with GCC vector types along F, compiled once per ISA (conv_direct_<isa>.cpp) and picked with
// the GEMM kernel passed in (the naive kernel, a test oracle, gets none). Each entry point returns
// false for a geometry it does not handle; the caller then takes the im2col path.
#pragma once

#include <cstdint>

#include "conv/conv.hpp"

namespace mf {

bool conv1ch_forward(GemmKernel kernel, const float* x, const float* w, const float* bias, float* out,
                     const ConvGeom& g, bool relu);
bool conv1ch_backward(GemmKernel kernel, const float* dy, const float* x, float* dw, float* db, const ConvGeom& g);

// The same convolution fused with the P x P max pool after it (maxpool_forward/backward of pool.hpp
// on its output): out and argmax are the pooled map and the winners' offsets within each
// (OH, OW, F) image; the full-resolution map stays in a per-image (per-chunk) cache-sized buffer.
// The backward pass sets *bad_argmax to the number of argmax entries outside their image.
bool conv1ch_pool_forward(GemmKernel kernel, const float* x, const float* w, const float* bias, float* out,
                          int32_t* argmax, const ConvGeom& g, bool relu, int P);
bool conv1ch_pool_backward(GemmKernel kernel, const float* dy, const int32_t* argmax, const float* out,
                           bool relu_mask, const float* x, float* dw, float* db, const ConvGeom& g, int P,
                           long* bad_argmax);

// One set per ISA, declared for the dispatcher (conv_direct.cpp).
#define MF_DECLARE_CONV1CH(isa)                                                                                   \
    namespace isa {                                                                                               \
    bool conv1ch_forward(const float* x, const float* w, const float* bias, float* out, const ConvGeom& g,       \
                         bool relu);                                                                              \
    bool conv1ch_backward(const float* dy, const float* x, float* dw, float* db, const ConvGeom& g);              \
    bool conv1ch_pool_forward(const float* x, const float* w, const float* bias, float* out, int32_t* argmax,     \
                              const ConvGeom& g, bool relu, int P);                                               \
    bool conv1ch_pool_backward(const float* dy, const int32_t* argmax, const float* out, bool relu_mask,          \
                               const float* x, float* dw, float* db, const ConvGeom& g, int P, long* bad_argmax); \
    }
MF_DECLARE_CONV1CH(generic)
MF_DECLARE_CONV1CH(avx2)
MF_DECLARE_CONV1CH(avx512)
#undef MF_DECLARE_CONV1CH

}  // namespace mf
