// The Winograd tile transforms (see conv_winograd_tiles.hpp), written once.
// conv_winograd_tiles_<isa>.cpp includes it with MF_ISA set to its namespace and compiles it with
// that ISA's flags. Everything here but the six entry points has internal linkage (pool_image.hpp's
// helpers are static), and nothing instantiates a library template, so no ISA-specific copy of an
// inline function can reach the other files through the linker.
#ifndef MF_ISA
#error "define MF_ISA (the namespace for this ISA) before including conv_winograd_tiles_impl.hpp"
#endif

#include "conv/winograd/conv_winograd_tiles.hpp"
#include "pool/pool_image.hpp"

namespace mf {
namespace MF_ISA {
namespace {

using winograd::ALPHA;
using winograd::TILE;
using winograd::XI;

// std::max's rule (b unless a < b), kept in this file.
inline float max(float a, float b) { return a < b ? b : a; }

inline const float* pixel_or(const float* img, const ConvGeom& g, int iy, int ix, const float* outside) {
    if (iy < 0 || iy >= g.H || ix < 0 || ix >= g.W) return outside;
    return img + (static_cast<long>(iy) * g.W + ix) * g.C;
}

// v[xi][c] = (B^T d B)[xi] for the 4x4 input block at (iy0, ix0), zero outside the image;
// B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
void input_transform(const float* img, const ConvGeom& g, int iy0, int ix0, const float* zeros,
                     float* __restrict v) {
    const float* d[ALPHA][ALPHA];
    for (int i = 0; i < ALPHA; ++i)
        for (int j = 0; j < ALPHA; ++j) d[i][j] = pixel_or(img, g, iy0 + i, ix0 + j, zeros);
    const int C = g.C;
#pragma GCC ivdep
    for (int c = 0; c < C; ++c) {
        float t[ALPHA][ALPHA];
        for (int j = 0; j < ALPHA; ++j) {  // t = B^T d
            t[0][j] = d[0][j][c] - d[2][j][c];
            t[1][j] = d[1][j][c] + d[2][j][c];
            t[2][j] = d[2][j][c] - d[1][j][c];
            t[3][j] = d[1][j][c] - d[3][j][c];
        }
        for (int i = 0; i < ALPHA; ++i) {  // v = t B
            v[(i * 4 + 0) * C + c] = t[i][0] - t[i][2];
            v[(i * 4 + 1) * C + c] = t[i][1] + t[i][2];
            v[(i * 4 + 2) * C + c] = t[i][2] - t[i][1];
            v[(i * 4 + 3) * C + c] = t[i][1] - t[i][3];
        }
    }
}

// The transpose of input_transform: adds (B dv B^T) into the 4x4 block of dx at (iy0, ix0),
// dropping what falls outside the image. Built in `block` first so the adds are plain runs.
void input_grad_transform(const float* __restrict dv, const ConvGeom& g, int iy0, int ix0, float* dx_img,
                          float* __restrict block) {
    const int C = g.C;
#pragma GCC ivdep
    for (int c = 0; c < C; ++c) {
        float d[ALPHA][ALPHA], t[ALPHA][ALPHA];
        for (int xi = 0; xi < XI; ++xi) d[xi / 4][xi % 4] = dv[xi * C + c];
        for (int j = 0; j < ALPHA; ++j) {  // t = B d
            t[0][j] = d[0][j];
            t[1][j] = d[1][j] - d[2][j] + d[3][j];
            t[2][j] = d[2][j] - d[0][j] + d[1][j];
            t[3][j] = -d[3][j];
        }
        for (int i = 0; i < ALPHA; ++i) {  // block = t B^T
            block[(i * 4 + 0) * C + c] = t[i][0];
            block[(i * 4 + 1) * C + c] = t[i][1] - t[i][2] + t[i][3];
            block[(i * 4 + 2) * C + c] = t[i][2] - t[i][0] + t[i][1];
            block[(i * 4 + 3) * C + c] = -t[i][3];
        }
    }
    for (int i = 0; i < ALPHA; ++i) {
        const int iy = iy0 + i;
        if (iy < 0 || iy >= g.H) continue;
        for (int j = 0; j < ALPHA; ++j) {
            const int ix = ix0 + j;
            if (ix < 0 || ix >= g.W) continue;
            float* __restrict dst = dx_img + (static_cast<long>(iy) * g.W + ix) * C;
            const float* src = block + (i * 4 + j) * C;
#pragma GCC ivdep
            for (int c = 0; c < C; ++c) dst[c] += src[c];
        }
    }
}

// The 2x2 outputs of channel f of a tile, relu?(A^T m A + b) with A^T = [1 1 1 0; 0 1 -1 -1], in
// row-major order. The ReLU is max(y, floor) with floor 0 or -inf, branch-free so loops over f
// vectorize (max(NaN, floor) is NaN: max returns its first argument unless the second is greater).
inline void tile_outputs(const float* __restrict m, int F, int f, float b, float floor, float y[4]) {
    float t[TILE][ALPHA];
    for (int j = 0; j < ALPHA; ++j) {  // t = A^T m
        t[0][j] = m[(0 + j) * F + f] + m[(4 + j) * F + f] + m[(8 + j) * F + f];
        t[1][j] = m[(4 + j) * F + f] - m[(8 + j) * F + f] - m[(12 + j) * F + f];
    }
    y[0] = max(t[0][0] + t[0][1] + t[0][2] + b, floor);  // y = t A
    y[1] = max(t[0][1] - t[0][2] - t[0][3] + b, floor);
    y[2] = max(t[1][0] + t[1][1] + t[1][2] + b, floor);
    y[3] = max(t[1][1] - t[1][2] - t[1][3] + b, floor);
}

// The transpose of tile_outputs (without the ReLU): dm = A g A^T for channel f of a tile, from the
// gradients g00..g11 of its 2x2 outputs.
inline void tile_output_grads(float g00, float g01, float g10, float g11, int F, int f, float* __restrict dm) {
    const float e0[ALPHA] = {g00, g00 + g01, g00 - g01, -g01};  // along x: A applied to each row
    const float e1[ALPHA] = {g10, g10 + g11, g10 - g11, -g11};
    for (int j = 0; j < ALPHA; ++j) {  // along y
        dm[(0 + j) * F + f] = e0[j];
        dm[(4 + j) * F + f] = e0[j] + e1[j];
        dm[(8 + j) * F + f] = e0[j] - e1[j];
        dm[(12 + j) * F + f] = -e1[j];
    }
}

inline float relu_floor(bool relu) { return relu ? 0.0f : -__builtin_inff(); }

// The 2x2 outputs at (oy0, ox0). Outputs past the image's edge go to `sink`, so the loop has no
// branch; bias is never null (zeros).
void output_transform(const float* __restrict m, const ConvGeom& g, const float* bias, bool relu, int oy0, int ox0,
                      float* out_img, float* sink) {
    const int F = g.F;
    const bool right = ox0 + 1 < g.OW, below = oy0 + 1 < g.OH;
    float* o00 = out_img + (static_cast<long>(oy0) * g.OW + ox0) * F;
    float* o01 = right ? o00 + F : sink;
    float* o10 = below ? o00 + static_cast<long>(g.OW) * F : sink;
    float* o11 = right && below ? o00 + static_cast<long>(g.OW + 1) * F : sink;
    const float floor = relu_floor(relu);
#pragma GCC ivdep
    for (int f = 0; f < F; ++f) {
        float y[4];
        tile_outputs(m, F, f, bias[f], floor, y);
        o00[f] = y[0], o01[f] = y[1], o10[f] = y[2], o11[f] = y[3];
    }
}

// dm = A dy A^T for the 2x2 output gradients at (oy0, ox0), zero past the image's edge: the
// transpose of output_transform.
void output_grad_transform(const float* dy_img, const ConvGeom& g, int oy0, int ox0, const float* zeros,
                           float* __restrict dm) {
    const int F = g.F;
    const bool right = ox0 + 1 < g.OW, below = oy0 + 1 < g.OH;
    const float* p00 = dy_img + (static_cast<long>(oy0) * g.OW + ox0) * F;
    const float* p01 = right ? p00 + F : zeros;
    const float* p10 = below ? p00 + static_cast<long>(g.OW) * F : zeros;
    const float* p11 = right && below ? p00 + static_cast<long>(g.OW + 1) * F : zeros;
#pragma GCC ivdep
    for (int f = 0; f < F; ++f) tile_output_grads(p00[f], p01[f], p10[f], p11[f], F, f, dm);
}

// fn(n, ty, tx) for every tile of images [n0, n0 + count), rows x cols tiles an image, in the
// order of a tile matrix's rows.
template <class Fn>
inline void for_each_tile(int n0, int count, int rows, int cols, Fn fn) {
    for (int n = n0; n < n0 + count; ++n)
        for (int ty = 0; ty < rows; ++ty)
            for (int tx = 0; tx < cols; ++tx) fn(n, ty, tx);
}

}  // namespace

void winograd_input_tiles(const float* x, const ConvGeom& g, int n0, int count, float* v, long sv, float* scratch) {
    const float* zeros = scratch;
    fill_zero(scratch, g.C);
    const long image = static_cast<long>(g.H) * g.W * g.C;
    for_each_tile(n0, count, winograd::tile_rows(g), winograd::tile_cols(g), [&](int n, int ty, int tx) {
        input_transform(x + n * image, g, ty * TILE - g.PH, tx * TILE - g.PW, zeros, v);
        v += sv;
    });
}

void winograd_output_tiles(const float* m, long sm, const ConvGeom& g, int n0, int count, const float* bias, bool relu,
                           float* out, float* scratch) {
    fill_zero(scratch, g.F);
    if (!bias) bias = scratch;
    float* sink = scratch + (g.C > g.F ? g.C : g.F);
    const long image = static_cast<long>(g.OH) * g.OW * g.F;
    for_each_tile(n0, count, winograd::tile_rows(g), winograd::tile_cols(g), [&](int n, int ty, int tx) {
        output_transform(m, g, bias, relu, ty * TILE, tx * TILE, out + n * image, sink);
        m += sm;
    });
}

void winograd_output_grad_tiles(const float* dy, const ConvGeom& g, int n0, int count, float* dm, long sm,
                                float* scratch) {
    const float* zeros = scratch;
    fill_zero(scratch, g.F);
    const long image = static_cast<long>(g.OH) * g.OW * g.F;
    for_each_tile(n0, count, winograd::tile_rows(g), winograd::tile_cols(g), [&](int n, int ty, int tx) {
        output_grad_transform(dy + n * image, g, ty * TILE, tx * TILE, zeros, dm);
        dm += sm;
    });
}

void winograd_input_grad_tiles(const float* dv, long sv, const ConvGeom& g, int n0, int count, float* dx,
                               float* scratch) {
    float* block = scratch + (g.C > g.F ? g.C : g.F) + g.F;
    const long image = static_cast<long>(g.H) * g.W * g.C;
    fill_zero(dx + n0 * image, count * image);  // the tiles overlap: their blocks are summed
    for_each_tile(n0, count, winograd::tile_rows(g), winograd::tile_cols(g), [&](int n, int ty, int tx) {
        input_grad_transform(dv, g, ty * TILE - g.PH, tx * TILE - g.PW, dx + n * image, block);
        dv += sv;
    });
}

void winograd_pool_output_tiles(const float* m, long sm, const ConvGeom& g, int n0, int count, const float* bias,
                                bool relu, float* out, int32_t* argmax, float* scratch) {
    const int F = g.F, rows = g.OH / TILE, cols = g.OW / TILE;
    fill_zero(scratch, F);
    if (!bias) bias = scratch;
    const float floor = relu_floor(relu);
    for_each_tile(n0, count, rows, cols, [&](int n, int ty, int tx) {
        const long p = ((static_cast<long>(n) * rows + ty) * cols + tx) * F;  // the window's pooled output
        // Its four outputs' offsets in the (OH, OW, F) map: (0, 0), (0, 1), (1, 0), (1, 1).
        const int32_t at0 = (TILE * ty * g.OW + TILE * tx) * F, at2 = at0 + g.OW * F;
        float* __restrict o = out + p;
        int32_t* __restrict a = argmax + p;
#pragma GCC ivdep
        for (int f = 0; f < F; ++f) {
            float y[4];
            tile_outputs(m, F, f, bias[f], floor, y);
            const WindowMax w = window_max(y[0], y[1], y[2], y[3], at0 + f, at0 + F + f, at2 + f, at2 + F + f);
            o[f] = w.best;
            a[f] = w.arg;
        }
        m += sm;
    });
}

long winograd_pool_output_grad_tiles(const float* dy, const int32_t* argmax, const float* out, bool relu_mask,
                                     const ConvGeom& g, int n0, int count, float* dm, long sm, float* db) {
    const int F = g.F, rows = g.OH / TILE, cols = g.OW / TILE;
    long stray = 0;
    fill_zero(db, F);
    for_each_tile(n0, count, rows, cols, [&](int n, int ty, int tx) {
        const long p = ((static_cast<long>(n) * rows + ty) * cols + tx) * F;
        const int32_t at0 = (TILE * ty * g.OW + TILE * tx) * F, at2 = at0 + g.OW * F;
        const float *d = dy + p, *o = out + p;
        const int32_t* a = argmax + p;
        int outside = 0;
#pragma GCC ivdep
        for (int f = 0; f < F; ++f) {
            // The pooled gradient goes to the window's winner; the other three outputs get 0.
            const float grad = relu_mask && !(o[f] > 0.0f) ? 0.0f : d[f];
            float g00, g01, g10, g11;
            outside += !window_grads(a[f], grad, at0 + f, at0 + F + f, at2 + f, at2 + F + f, g00, g01, g10, g11);
            db[f] += g00 + g01 + g10 + g11;
            tile_output_grads(g00, g01, g10, g11, F, f, dm);
        }
        stray += outside;
        dm += sm;
    });
    return stray;
}

}  // namespace MF_ISA
}  // namespace mf
