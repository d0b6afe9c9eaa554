// The Winograd tile transforms (see conv_winograd_tiles.hpp), written once.
// conv_winograd_tiles_<isa>.cpp includes it with MF_ISA set to its namespace and compiles it with
// that ISA's flags. Everything here but the six entry points has internal linkage, and nothing
// instantiates a library template, so no ISA-specific copy of an inline function can reach the
// other files through the linker.
#ifndef MF_ISA
#error "define MF_ISA (the namespace for this ISA) before including conv_winograd_tiles_impl.hpp"
#endif

#include "conv_winograd_tiles.hpp"

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

// The 2x2 outputs at (oy0, ox0) = A^T m A + bias (then ReLU), A^T = [1 1 1 0; 0 1 -1 -1]. Outputs
// past the image's edge go to `sink`, so the loop has no branch; bias is never null (zeros).
void output_transform(const float* __restrict m, const ConvGeom& g, const float* bias, bool relu, int oy0, int ox0,
                      float* out_img, float* sink) {
    const int F = g.F;
    const bool right = ox0 + 1 < g.OW, below = oy0 + 1 < g.OH;
    float* o00 = out_img + (static_cast<long>(oy0) * g.OW + ox0) * F;
    float* o01 = right ? o00 + F : sink;
    float* o10 = below ? o00 + static_cast<long>(g.OW) * F : sink;
    float* o11 = right && below ? o00 + static_cast<long>(g.OW + 1) * F : sink;
    // Branch-free so the loop vectorizes: max(y, -inf) is y (NaN included: max returns its first
    // argument unless the second compares greater).
    const float floor = relu ? 0.0f : -__builtin_inff();
#pragma GCC ivdep
    for (int f = 0; f < F; ++f) {
        float t[TILE][ALPHA];
        for (int j = 0; j < ALPHA; ++j) {  // t = A^T m
            t[0][j] = m[(0 + j) * F + f] + m[(4 + j) * F + f] + m[(8 + j) * F + f];
            t[1][j] = m[(4 + j) * F + f] - m[(8 + j) * F + f] - m[(12 + j) * F + f];
        }
        const float b = bias[f];
        o00[f] = max(t[0][0] + t[0][1] + t[0][2] + b, floor);
        o01[f] = max(t[0][1] - t[0][2] - t[0][3] + b, floor);
        o10[f] = max(t[1][0] + t[1][1] + t[1][2] + b, floor);
        o11[f] = max(t[1][1] - t[1][2] - t[1][3] + b, floor);
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
    for (int f = 0; f < F; ++f) {
        const float a = p00[f], b = p01[f], c = p10[f], d = p11[f];
        const float e0[ALPHA] = {a, a + b, a - b, -b};  // along x: A applied to each row
        const float e1[ALPHA] = {c, c + d, c - d, -d};
        for (int j = 0; j < ALPHA; ++j) {  // along y
            dm[(0 + j) * F + f] = e0[j];
            dm[(4 + j) * F + f] = e0[j] + e1[j];
            dm[(8 + j) * F + f] = e0[j] - e1[j];
            dm[(12 + j) * F + f] = -e1[j];
        }
    }
}

}  // namespace

void winograd_input_tiles(const float* x, const ConvGeom& g, int n0, int count, float* v, long sv, float* scratch) {
    float* zeros = scratch;
    for (int c = 0; c < g.C; ++c) zeros[c] = 0.0f;
    const int rows = winograd::tile_rows(g), cols = winograd::tile_cols(g);
    for (int n = n0; n < n0 + count; ++n) {
        const float* img = x + static_cast<long>(n) * g.H * g.W * g.C;
        for (int ty = 0; ty < rows; ++ty)
            for (int tx = 0; tx < cols; ++tx, v += sv)
                input_transform(img, g, ty * TILE - g.PH, tx * TILE - g.PW, zeros, v);
    }
}

void winograd_output_tiles(const float* m, long sm, const ConvGeom& g, int n0, int count, const float* bias, bool relu,
                           float* out, float* scratch) {
    const int zeros = g.C > g.F ? g.C : g.F;
    for (int f = 0; f < g.F; ++f) scratch[f] = 0.0f;
    if (!bias) bias = scratch;
    float* sink = scratch + zeros;
    const int rows = winograd::tile_rows(g), cols = winograd::tile_cols(g);
    for (int n = n0; n < n0 + count; ++n) {
        float* img = out + static_cast<long>(n) * g.OH * g.OW * g.F;
        for (int ty = 0; ty < rows; ++ty)
            for (int tx = 0; tx < cols; ++tx, m += sm)
                output_transform(m, g, bias, relu, ty * TILE, tx * TILE, img, sink);
    }
}

void winograd_output_grad_tiles(const float* dy, const ConvGeom& g, int n0, int count, float* dm, long sm,
                                float* scratch) {
    float* zeros = scratch;
    for (int f = 0; f < g.F; ++f) zeros[f] = 0.0f;
    const int rows = winograd::tile_rows(g), cols = winograd::tile_cols(g);
    for (int n = n0; n < n0 + count; ++n) {
        const float* img = dy + static_cast<long>(n) * g.OH * g.OW * g.F;
        for (int ty = 0; ty < rows; ++ty)
            for (int tx = 0; tx < cols; ++tx, dm += sm) output_grad_transform(img, g, ty * TILE, tx * TILE, zeros, dm);
    }
}

void winograd_input_grad_tiles(const float* dv, long sv, const ConvGeom& g, int n0, int count, float* dx,
                               float* scratch) {
    float* block = scratch + (g.C > g.F ? g.C : g.F) + g.F;
    const int rows = winograd::tile_rows(g), cols = winograd::tile_cols(g);
    const long image = static_cast<long>(g.H) * g.W * g.C;
    for (int n = n0; n < n0 + count; ++n) {
        float* img = dx + n * image;
        for (long i = 0; i < image; ++i) img[i] = 0.0f;
        for (int ty = 0; ty < rows; ++ty)
            for (int tx = 0; tx < cols; ++tx, dv += sv)
                input_grad_transform(dv, g, ty * TILE - g.PH, tx * TILE - g.PW, img, block);
    }
}

void winograd_pool_output_tiles(const float* m, long sm, const ConvGeom& g, int n0, int count, const float* bias,
                                bool relu, float* out, int32_t* argmax, float* scratch) {
    const int F = g.F, rows = g.OH / TILE, cols = g.OW / TILE;
    for (int f = 0; f < F; ++f) scratch[f] = 0.0f;
    if (!bias) bias = scratch;
    const float floor = relu ? 0.0f : -__builtin_inff();
    const long pooled = static_cast<long>(F) * rows * cols;
    for (int n = n0; n < n0 + count; ++n) {
        float* o = out + n * pooled;
        int32_t* a = argmax + n * pooled;
        for (int ty = 0; ty < rows; ++ty)
            for (int tx = 0; tx < cols; ++tx, m += sm, o += F, a += F) {
                // The window's offsets in the (OH, OW, F) map: (0, 0), (0, 1), (1, 0), (1, 1).
                const int32_t at0 = (TILE * ty * g.OW + TILE * tx) * F, at2 = at0 + g.OW * F;
#pragma GCC ivdep
                for (int f = 0; f < F; ++f) {
                    float t[TILE][ALPHA];
                    for (int j = 0; j < ALPHA; ++j) {  // t = A^T m, as output_transform
                        t[0][j] = m[(0 + j) * F + f] + m[(4 + j) * F + f] + m[(8 + j) * F + f];
                        t[1][j] = m[(4 + j) * F + f] - m[(8 + j) * F + f] - m[(12 + j) * F + f];
                    }
                    const float b = bias[f];
                    const float y00 = max(t[0][0] + t[0][1] + t[0][2] + b, floor);
                    const float y01 = max(t[0][1] - t[0][2] - t[0][3] + b, floor);
                    const float y10 = max(t[1][0] + t[1][1] + t[1][2] + b, floor);
                    const float y11 = max(t[1][1] - t[1][2] - t[1][3] + b, floor);
                    // Strict '>' in window order keeps the first maximum, as maxpool_forward does.
                    float best = y00;
                    int32_t arg = at0 + f;
                    arg = y01 > best ? at0 + F + f : arg;
                    best = y01 > best ? y01 : best;
                    arg = y10 > best ? at2 + f : arg;
                    best = y10 > best ? y10 : best;
                    arg = y11 > best ? at2 + F + f : arg;
                    best = y11 > best ? y11 : best;
                    o[f] = best;
                    a[f] = arg;
                }
            }
    }
}

long winograd_pool_output_grad_tiles(const float* dy, const int32_t* argmax, const float* out, bool relu_mask,
                                     const ConvGeom& g, int n0, int count, float* dm, long sm, float* db) {
    const int F = g.F, rows = g.OH / TILE, cols = g.OW / TILE;
    const long pooled = static_cast<long>(F) * rows * cols;
    long stray = 0;
    for (int f = 0; f < F; ++f) db[f] = 0.0f;
    for (int n = n0; n < n0 + count; ++n) {
        const long p0 = n * pooled;
        for (int ty = 0; ty < rows; ++ty)
            for (int tx = 0; tx < cols; ++tx, dm += sm) {
                const long p = p0 + (static_cast<long>(ty) * cols + tx) * F;
                const int32_t at0 = (TILE * ty * g.OW + TILE * tx) * F, at2 = at0 + g.OW * F;
                const float *d = dy + p, *o = out + p;
                const int32_t* a = argmax + p;
                int outside = 0;
#pragma GCC ivdep
                for (int f = 0; f < F; ++f) {
                    const float grad = relu_mask && !(o[f] > 0.0f) ? 0.0f : d[f];
                    const int32_t at = a[f];
                    // The pooled gradient goes to the window's winner; the output gradient of the
                    // other three is zero.
                    const float g00 = at == at0 + f ? grad : 0.0f, g01 = at == at0 + F + f ? grad : 0.0f;
                    const float g10 = at == at2 + f ? grad : 0.0f, g11 = at == at2 + F + f ? grad : 0.0f;
                    outside += !(at == at0 + f || at == at0 + F + f || at == at2 + f || at == at2 + F + f);
                    db[f] += g00 + g01 + g10 + g11;
                    const float e0[ALPHA] = {g00, g00 + g01, g00 - g01, -g01};  // as output_grad_transform
                    const float e1[ALPHA] = {g10, g10 + g11, g10 - g11, -g11};
                    for (int j = 0; j < ALPHA; ++j) {
                        dm[(0 + j) * F + f] = e0[j];
                        dm[(4 + j) * F + f] = e0[j] + e1[j];
                        dm[(8 + j) * F + f] = e0[j] - e1[j];
                        dm[(12 + j) * F + f] = -e1[j];
                    }
                }
                stray += outside;
            }
    }
    return stray;
}

}  // namespace MF_ISA
}  // namespace mf
