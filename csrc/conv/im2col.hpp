// Convolution as im2col + the packed GEMM, the general path (any kernel size, stride, padding).
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

#include "conv/conv.hpp"

namespace mf {

// Patch matrix of images [n0, n0 + count): (count*OH*OW) x patch.
void im2col(const float* x, const ConvGeom& g, int n0, int count, float* cols);
// dx for images [n0, n0 + count) = every patch row's entries put back where im2col took them.
void col2im(const float* cols, const ConvGeom& g, int n0, int count, float* dx);

// conv2d_forward and conv2d_backward (conv.hpp) by this algorithm, with GEMM kernel `kernel`.
void im2col_forward(GemmKernel kernel, const float* x, const float* w, const float* bias, float* out,
                    const ConvGeom& g, bool relu);
void im2col_backward(GemmKernel kernel, const float* dy, const float* x, const float* w, float* dw, float* db,
                     float* dx, const ConvGeom& g);

}  // namespace mf
