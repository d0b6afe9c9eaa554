// The per-tile transforms of the Winograd convolution (conv_winograd.hpp), over all tiles of a
// chunk of images. They are elementwise along the channels, so they are compiled once per ISA
// (conv_winograd_tiles_<isa>.cpp) for full-width vectors and picked with the GEMM kernel, like
// the direct convolution.
//
// A tile matrix has one row per tile (tiles of image n0 first, row-major within an image), the
// row holding the 16 transformed positions xi of n channels at [xi * n + channel], rows `stride`
// floats apart. `scratch` is winograd::scratch_floats(g) floats of the caller's.
#pragma once

#include <cstdint>

#include "conv/conv.hpp"

namespace mf {

namespace winograd {
constexpr int TILE = 2;            // outputs per tile side: F(2x2, 3x3)
constexpr int ALPHA = TILE + 2;    // transformed tile side
constexpr int XI = ALPHA * ALPHA;  // transformed positions: one GEMM each
inline int tile_rows(const ConvGeom& g) { return (g.OH + TILE - 1) / TILE; }
inline int tile_cols(const ConvGeom& g) { return (g.OW + TILE - 1) / TILE; }
inline long scratch_floats(const ConvGeom& g) { return (g.C > g.F ? g.C : g.F) + g.F + static_cast<long>(XI) * g.C; }
}  // namespace winograd

#define MF_DECLARE_WINOGRAD_TILES(isa)                                                                             \
    namespace isa {                                                                                                \
    /* v = B^T d B for each tile's 4x4 input block d (zero outside the image) */                                   \
    void winograd_input_tiles(const float* x, const ConvGeom& g, int n0, int count, float* v, long sv,            \
                              float* scratch);                                                                     \
    /* out = relu?(A^T m A + bias) for each tile's 2x2 outputs (those inside the image); bias may be null */       \
    void winograd_output_tiles(const float* m, long sm, const ConvGeom& g, int n0, int count, const float* bias,  \
                               bool relu, float* out, float* scratch);                                             \
    /* dm = A dy A^T for each tile's 2x2 output gradients (zero outside the image) */                              \
    void winograd_output_grad_tiles(const float* dy, const ConvGeom& g, int n0, int count, float* dm, long sm,    \
                                    float* scratch);                                                               \
    /* dx = the sum over tiles of B dv B^T on each tile's 4x4 input block (dx's images are overwritten) */         \
    void winograd_input_grad_tiles(const float* dv, long sv, const ConvGeom& g, int n0, int count, float* dx,     \
                                   float* scratch);                                                                \
    /* With a 2x2 max pool after the convolution, each tile is one pooling window, (OH/2) x (OW/2) of them  */     \
    /* per image: out and argmax (N, OH/2, OW/2, F) get the window's maximum of relu?(A^T m A + bias) and its */   \
    /* offset in the (OH, OW, F) map, as maxpool_forward would */                                                  \
    void winograd_pool_output_tiles(const float* m, long sm, const ConvGeom& g, int n0, int count,                \
                                    const float* bias, bool relu, float* out, int32_t* argmax, float* scratch);   \
    /* dm = A dy' A^T with dy' the pooled gradient at the window's argmax (0 where relu_mask and out <= 0), */     \
    /* db (F floats) = the chunk's sum of dy'; returns how many argmax entries are not in their window */          \
    long winograd_pool_output_grad_tiles(const float* dy, const int32_t* argmax, const float* out,                \
                                         bool relu_mask, const ConvGeom& g, int n0, int count, float* dm, long sm, \
                                         float* db);                                                               \
    }
MF_DECLARE_WINOGRAD_TILES(generic)
MF_DECLARE_WINOGRAD_TILES(avx2)
MF_DECLARE_WINOGRAD_TILES(avx512)
#undef MF_DECLARE_WINOGRAD_TILES

}  // namespace mf
