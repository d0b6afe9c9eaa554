#include "conv_winograd.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "gemm.hpp"
#include "layers.hpp"
#include "parallel.hpp"

namespace mf {

namespace {

thread_local ConvAlgorithm tl_algorithm = ConvAlgorithm::Auto;

constexpr int TILE = 2;       // outputs per tile side: F(2x2, 3x3)
constexpr int ALPHA = 4;      // transformed tile side: TILE + 3 - 1
constexpr int XI = ALPHA * ALPHA;  // transformed positions, one GEMM each
// A chunk's tile matrices (V and M forward; V, dM, then dV in V's place backward): 1 MiB, half
// the L2 of the cores measured (2 MiB); 512 KiB chunks measured slower (more, smaller GEMMs).
constexpr long TILE_CHUNK_FLOATS = 1L << 18;

struct Tiling {
    int rows, cols;  // tiles down and across one output image
    long per_image() const { return static_cast<long>(rows) * cols; }
};

Tiling tiling(const ConvGeom& g) { return {(g.OH + TILE - 1) / TILE, (g.OW + TILE - 1) / TILE}; }

// Floats from one tile's row of a tile matrix to the next: the 16 transformed positions of n
// channels, padded so the stride is not a multiple of 1 KiB. The GEMM then reads the rows in place
// (gemm_blocked.cpp's a_in_place) instead of gathering them one float at a time, and the 12 rows
// of a micro-tile do not fold onto a few L1 sets.
long tile_stride(int n) {
    long s = static_cast<long>(XI) * n + 16;
    while (s % 256 == 0) s += 16;
    return s;
}

int images_per_chunk(const ConvGeom& g, const Tiling& t) {
    const long per_image = t.per_image() * (tile_stride(g.C) + tile_stride(g.F));
    return static_cast<int>(std::max(1L, std::min<long>(g.N, TILE_CHUNK_FLOATS / std::max(1L, per_image))));
}

inline const float* pixel_or(const float* img, const ConvGeom& g, int iy, int ix, const float* outside) {
    if (iy < 0 || iy >= g.H || ix < 0 || ix >= g.W) return outside;
    return img + (static_cast<long>(iy) * g.W + ix) * g.C;
}

// U[xi][c][f] = (G w[., ., c, f] G^T)[xi],  G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1].
// w is (3*3*C, F) with rows in (ky, kx, c) order.
void filter_transform(const float* w, int C, int F, float* u) {
    const long tap = static_cast<long>(C) * F;  // distance between kernel taps in w
    for (int c = 0; c < C; ++c) {
        const float* wc = w + static_cast<long>(c) * F;
        float* uc = u + static_cast<long>(c) * F;
#pragma GCC ivdep
        for (int f = 0; f < F; ++f) {
            float k[3][3], t[ALPHA][3];
            for (int ky = 0; ky < 3; ++ky)
                for (int kx = 0; kx < 3; ++kx) k[ky][kx] = wc[(ky * 3 + kx) * tap + f];
            for (int kx = 0; kx < 3; ++kx) {  // t = G k
                t[0][kx] = k[0][kx];
                t[1][kx] = 0.5f * (k[0][kx] + k[1][kx] + k[2][kx]);
                t[2][kx] = 0.5f * (k[0][kx] - k[1][kx] + k[2][kx]);
                t[3][kx] = k[2][kx];
            }
            for (int i = 0; i < ALPHA; ++i) {  // u = t G^T
                uc[(i * 4 + 0) * tap + f] = t[i][0];
                uc[(i * 4 + 1) * tap + f] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
                uc[(i * 4 + 2) * tap + f] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
                uc[(i * 4 + 3) * tap + f] = t[i][2];
            }
        }
    }
}

// dw[(ky, kx, c), f] = (G^T dU[., c, f] G)[ky][kx]: the transpose of filter_transform.
void filter_grad_transform(const float* du, int C, int F, float* dw) {
    const long plane = static_cast<long>(C) * F;
    for (int c = 0; c < C; ++c) {
        const float* dc = du + static_cast<long>(c) * F;
        float* wc = dw + static_cast<long>(c) * F;
#pragma GCC ivdep
        for (int f = 0; f < F; ++f) {
            float d[ALPHA][ALPHA], t[3][ALPHA];
            for (int xi = 0; xi < XI; ++xi) d[xi / 4][xi % 4] = dc[xi * plane + f];
            for (int j = 0; j < ALPHA; ++j) {  // t = G^T d
                t[0][j] = d[0][j] + 0.5f * (d[1][j] + d[2][j]);
                t[1][j] = 0.5f * (d[1][j] - d[2][j]);
                t[2][j] = 0.5f * (d[1][j] + d[2][j]) + d[3][j];
            }
            for (int ky = 0; ky < 3; ++ky) {  // dw = t G
                wc[(ky * 3 + 0) * plane + f] = t[ky][0] + 0.5f * (t[ky][1] + t[ky][2]);
                wc[(ky * 3 + 1) * plane + f] = 0.5f * (t[ky][1] - t[ky][2]);
                wc[(ky * 3 + 2) * plane + f] = 0.5f * (t[ky][1] + t[ky][2]) + t[ky][3];
            }
        }
    }
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
    // Branch-free so the loop vectorizes: max(y, -inf) is y (NaN included: std::max returns its
    // first argument unless the second compares greater).
    const float floor = relu ? 0.0f : -std::numeric_limits<float>::infinity();
#pragma GCC ivdep
    for (int f = 0; f < F; ++f) {
        float t[TILE][ALPHA];
        for (int j = 0; j < ALPHA; ++j) {  // t = A^T m
            t[0][j] = m[(0 + j) * F + f] + m[(4 + j) * F + f] + m[(8 + j) * F + f];
            t[1][j] = m[(4 + j) * F + f] - m[(8 + j) * F + f] - m[(12 + j) * F + f];
        }
        const float b = bias[f];
        o00[f] = std::max(t[0][0] + t[0][1] + t[0][2] + b, floor);
        o01[f] = std::max(t[0][1] - t[0][2] - t[0][3] + b, floor);
        o10[f] = std::max(t[1][0] + t[1][1] + t[1][2] + b, floor);
        o11[f] = std::max(t[1][1] - t[1][2] - t[1][3] + b, floor);
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

// c = op(a) @ op(b) (+ beta c) on the calling thread: the caller parallelizes over chunks.
void gemm_1t(bool ta, bool tb, int M, int N, int K, const float* a, long lda, const float* b, long ldb, float* c,
             long ldc, float beta = 0.0f) {
    GemmArgs ga;
    ga.trans_a = ta, ga.trans_b = tb;
    ga.M = M, ga.N = N, ga.K = K;
    ga.A = a, ga.lda = lda, ga.B = b, ga.ldb = ldb, ga.C = c, ga.ldc = ldc;
    ga.beta = beta;
    ga.single_thread = true;
    sgemm(ga);
}

}  // namespace

ConvAlgorithm conv_algorithm() { return tl_algorithm; }
void use_conv_algorithm(ConvAlgorithm a) { tl_algorithm = a; }

const char* conv_algorithm_name(ConvAlgorithm a) {
    switch (a) {
        case ConvAlgorithm::Auto: return "auto";
        case ConvAlgorithm::Im2col: return "im2col";
        case ConvAlgorithm::Winograd: return "winograd";
    }
    return "?";
}

ConvAlgorithm parse_conv_algorithm(const char* name) {
    for (auto a : {ConvAlgorithm::Auto, ConvAlgorithm::Im2col, ConvAlgorithm::Winograd})
        if (std::strcmp(name, conv_algorithm_name(a)) == 0) return a;
    throw std::invalid_argument(std::string("unknown conv algorithm '") + name + "' (auto, im2col, winograd)");
}

bool use_winograd(const ConvGeom& g) {
    if (g.KH != 3 || g.KW != 3 || g.SH != 1 || g.SW != 1) return false;
    switch (tl_algorithm) {
        case ConvAlgorithm::Im2col: return false;
        case ConvAlgorithm::Winograd: return true;
        case ConvAlgorithm::Auto: break;
    }
    // The tile GEMMs have K = C (forward) and K = F (input gradient): below 16 the packed
    // micro-kernel spends more time loading and storing its tile than multiplying.
    return g.C >= 16 && g.F >= 16;
}

void winograd_forward(const float* x, const float* w, const float* bias, float* out, const ConvGeom& g, bool relu) {
    const Tiling tl = tiling(g);
    const int C = g.C, F = g.F;
    const long sv = tile_stride(C), sm = tile_stride(F);
    thread_local std::vector<float> u_buf;
    float* u = grown(u_buf, static_cast<size_t>(XI) * C * F);
    filter_transform(w, C, F, u);
    const int per_chunk = images_per_chunk(g, tl);
    for_each_chunk((g.N + per_chunk - 1) / per_chunk, [&](int k) {
        const int n0 = k * per_chunk, count = std::min(per_chunk, g.N - n0);
        thread_local std::vector<float> v_buf, m_buf, edge_buf;
        const long tiles = count * tl.per_image();
        float* v = grown(v_buf, static_cast<size_t>(tiles) * sv);
        float* m = grown(m_buf, static_cast<size_t>(tiles) * sm);
        const int zeros = std::max(C, F);  // for pixels outside the image, and a missing bias
        float* edge = grown(edge_buf, static_cast<size_t>(zeros + F));  // then a sink (F)
        std::fill(edge, edge + zeros, 0.0f);
        long t = 0;
        for (int n = n0; n < n0 + count; ++n) {
            const float* img = x + static_cast<long>(n) * g.H * g.W * C;
            for (int ty = 0; ty < tl.rows; ++ty)
                for (int tx = 0; tx < tl.cols; ++tx, ++t)
                    input_transform(img, g, ty * TILE - g.PH, tx * TILE - g.PW, edge, v + t * sv);
        }
        for (int xi = 0; xi < XI; ++xi)
            gemm_1t(false, false, static_cast<int>(tiles), F, C, v + xi * C, sv, u + static_cast<long>(xi) * C * F, F,
                    m + xi * F, sm);
        t = 0;
        for (int n = n0; n < n0 + count; ++n) {
            float* img = out + static_cast<long>(n) * g.OH * g.OW * F;
            for (int ty = 0; ty < tl.rows; ++ty)
                for (int tx = 0; tx < tl.cols; ++tx, ++t)
                    output_transform(m + t * sm, g, bias ? bias : edge, relu, ty * TILE, tx * TILE, img,
                                     edge + zeros);
        }
    });
}

void winograd_backward(const float* dy, const float* x, const float* w, float* dw, float* db, float* dx,
                       const ConvGeom& g) {
    const Tiling tl = tiling(g);
    const int C = g.C, F = g.F;
    const long sv = tile_stride(C), sm = tile_stride(F);
    const int per_chunk = images_per_chunk(g, tl), chunks = (g.N + per_chunk - 1) / per_chunk;
    const size_t u_size = static_cast<size_t>(XI) * C * F;
    thread_local std::vector<float> u_buf, ut_buf, du_buf, db_buf;
    float* ut = nullptr;  // U[xi]^T, (F x C) each: the input gradient's GEMMs read it unpacked-friendly
    if (dx) {
        float* u = grown(u_buf, u_size);
        filter_transform(w, C, F, u);
        ut = grown(ut_buf, u_size);
        for (int xi = 0; xi < XI; ++xi)
            for (int c = 0; c < C; ++c)
                for (int f = 0; f < F; ++f)
                    ut[(static_cast<long>(xi) * F + f) * C + c] = u[(static_cast<long>(xi) * C + c) * F + f];
    }
    // Group gi's dU accumulates in partial gi (chunk k's bias gradient in partial_db k); both are
    // summed in order below.
    const int groups = gradient_groups(chunks);
    float* du = grown(du_buf, u_size * groups);
    float* partial_db = grown(db_buf, db ? static_cast<size_t>(F) * chunks : 0);
    for_chunk_groups(chunks, [&](int k, int gi, bool first) {
        const int n0 = k * per_chunk, count = std::min(per_chunk, g.N - n0);
        thread_local std::vector<float> v_buf, m_buf, edge_buf;
        const long tiles = count * tl.per_image();
        float* v = grown(v_buf, static_cast<size_t>(tiles) * sv);
        float* dm = grown(m_buf, static_cast<size_t>(tiles) * sm);
        float* edge = grown(edge_buf, static_cast<size_t>(C + F) + XI * C);  // zeros (C or F), then a block
        std::fill(edge, edge + std::max(C, F), 0.0f);
        long t = 0;
        for (int n = n0; n < n0 + count; ++n) {
            const float* img = x + static_cast<long>(n) * g.H * g.W * C;
            const float* dimg = dy + static_cast<long>(n) * g.OH * g.OW * F;
            for (int ty = 0; ty < tl.rows; ++ty)
                for (int tx = 0; tx < tl.cols; ++tx, ++t) {
                    input_transform(img, g, ty * TILE - g.PH, tx * TILE - g.PW, edge, v + t * sv);
                    output_grad_transform(dimg, g, ty * TILE, tx * TILE, edge, dm + t * sm);
                }
        }
        float* dug = du + gi * u_size;
        for (int xi = 0; xi < XI; ++xi)
            gemm_1t(true, false, C, F, static_cast<int>(tiles), v + xi * C, sv, dm + xi * F, sm,
                    dug + static_cast<long>(xi) * C * F, F, first ? 0.0f : 1.0f);
        const long rows = static_cast<long>(count) * g.OH * g.OW;
        if (db) bias_grad(dy + n0 * g.OH * g.OW * static_cast<long>(F), static_cast<int>(rows), F, partial_db + k * F);
        if (!dx) return;
        float* dv = v;  // V is spent: dV takes its place
        for (int xi = 0; xi < XI; ++xi)
            gemm_1t(false, false, static_cast<int>(tiles), C, F, dm + xi * F, sm, ut + static_cast<long>(xi) * F * C, C,
                    dv + xi * C, sv);
        float* block = edge + std::max(C, F);
        t = 0;
        for (int n = n0; n < n0 + count; ++n) {
            float* img = dx + static_cast<long>(n) * g.H * g.W * C;
            std::fill(img, img + static_cast<long>(g.H) * g.W * C, 0.0f);
            for (int ty = 0; ty < tl.rows; ++ty)
                for (int tx = 0; tx < tl.cols; ++tx, ++t)
                    input_grad_transform(dv + t * sv, g, ty * TILE - g.PH, tx * TILE - g.PW, img, block);
        }
    });
    for (int k = 1; k < groups; ++k) {
        const float* p = du + k * u_size;
        for (size_t i = 0; i < u_size; ++i) du[i] += p[i];
    }
    filter_grad_transform(du, C, F, dw);
    if (db) {
        std::copy(partial_db, partial_db + F, db);
        for (int k = 1; k < chunks; ++k)
            for (int f = 0; f < F; ++f) db[f] += partial_db[static_cast<size_t>(k) * F + f];
    }
}

}  // namespace mf
