// 3x3 stride-1 convolution by Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray, 2016).
//
// Each 2x2 block of outputs (a tile) is computed from the 4x4 input block under it as
//
//   Y = A^T [ U ⊙ V ] A,   U = G w G^T (per input/output channel pair),   V = B^T d B (per channel),
//
// so a tile costs 16 multiplies per channel pair instead of 36. Summed over input channels, the
// 16 elementwise products become 16 independent GEMMs over the tiles: M[xi] = V[xi] @ U[xi] with
// V[xi] (tiles x C) and U[xi] (C x F), on the packed GEMM. The backward pass is the transpose of
// the same linear maps, dM = A dY A^T per tile, then
//
//   dU[xi] = V[xi]^T @ dM[xi]   ->  dw = G^T dU G        (16 GEMMs over the tiles)
//   dV[xi] = dM[xi] @ U[xi]^T   ->  dx += B dV B^T       (tiles overlap by 2: summed)
//
// which is the exact gradient of the forward arithmetic. As in conv.hpp, the batch runs in chunks
// of images whose tile matrices fit in L2, one chunk per thread at a time; the weight gradient is
// summed over per-chunk partials in chunk order, so results do not depend on the thread count.
#pragma once

#include <cstdint>

#include "conv/conv.hpp"

namespace mf {

// Each entry point takes the GEMM kernel its tile GEMMs run with (its ISA also picks the tile
// transforms). The dispatcher (conv/conv.cpp) decides where Winograd is used.
void winograd_forward(GemmKernel kernel, const float* x, const float* w, const float* bias, float* out,
                      const ConvGeom& g, bool relu);
void winograd_backward(GemmKernel kernel, const float* dy, const float* x, const float* w, float* dw, float* db,
                       float* dx, const ConvGeom& g);

// The convolution fused with the 2x2 max pool after it (maxpool_forward/backward of pool.hpp), as
// conv2d_maxpool_* define it: each tile is a pooling window, so the full-resolution map is never
// stored, and the outputs no window reads (the last row and column of an odd-sized map) are never
// computed nor given a gradient. dx may be null. Both return false, having written nothing the
// caller keeps, where they do not apply (another pool size); the backward pass also where an argmax
// entry lies outside its window, which the caller's general path handles.
bool winograd_pool_forward(GemmKernel kernel, const float* x, const float* w, const float* bias, float* out,
                           int32_t* argmax, const ConvGeom& g, bool relu, int pool);
bool winograd_pool_backward(GemmKernel kernel, const float* dy, const int32_t* argmax, const float* out,
                            bool relu_mask, const float* x, const float* w, float* dw, float* db, float* dx,
                            const ConvGeom& g, int pool);

}  // namespace mf
