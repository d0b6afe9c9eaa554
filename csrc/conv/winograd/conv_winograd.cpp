#include "conv/winograd/conv_winograd.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "conv/winograd/conv_winograd_tiles.hpp"
#include "gemm/gemm.hpp"
#include "elementwise/mlp_ops.hpp"
#include "core/parallel.hpp"

namespace mf {

namespace {

using winograd::ALPHA;
using winograd::XI;

// A chunk's tile matrices (V and M forward; V, dM, then dV in V's place backward): 1 MiB, half
// the L2 of the cores measured (2 MiB).
constexpr long TILE_CHUNK_FLOATS = 1L << 18;

// Floats from one tile's row of a tile matrix to the next: the 16 transformed positions of n
// channels, padded so the stride is not a multiple of 1 KiB. The GEMM then reads the rows in place
// (gemm_blocked.cpp's a_in_place) instead of gathering them one float at a time, and the 12 rows
// of a micro-tile do not fold onto a few L1 sets.
long tile_stride(int n) {
    long s = static_cast<long>(XI) * n + 16;
    while (s % 256 == 0) s += 16;
    return s;
}

long tiles_per_image(const ConvGeom& g) { return static_cast<long>(winograd::tile_rows(g)) * winograd::tile_cols(g); }

int images_per_chunk(const ConvGeom& g) {
    const long per_image = tiles_per_image(g) * (tile_stride(g.C) + tile_stride(g.F));
    return static_cast<int>(std::max(1L, std::min<long>(g.N, TILE_CHUNK_FLOATS / std::max(1L, per_image))));
}

// The tile transforms built for one ISA (the naive GEMM kernel, a test oracle, gets the generic
// ones).
struct TileOps {
    decltype(&generic::winograd_input_tiles) input;
    decltype(&generic::winograd_output_tiles) output;
    decltype(&generic::winograd_output_grad_tiles) output_grad;
    decltype(&generic::winograd_input_grad_tiles) input_grad;
    decltype(&generic::winograd_pool_output_tiles) pool_output;
    decltype(&generic::winograd_pool_output_grad_tiles) pool_output_grad;
};

#define MF_TILE_OPS(isa)                                                                              \
    TileOps{isa::winograd_input_tiles,       isa::winograd_output_tiles,     isa::winograd_output_grad_tiles, \
            isa::winograd_input_grad_tiles, isa::winograd_pool_output_tiles, isa::winograd_pool_output_grad_tiles}

TileOps tile_ops(GemmKernel kernel) {
#if defined(__x86_64__) || defined(_M_X64)
    switch (float_kernel(kernel)) {
        case GemmKernel::Avx512: return MF_TILE_OPS(avx512);
        case GemmKernel::Avx2: return MF_TILE_OPS(avx2);
        default: break;
    }
#endif
    return MF_TILE_OPS(generic);
}

#undef MF_TILE_OPS

// U[xi] = (G w[., ., c, f] G^T)[xi] for every channel pair, G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2;
// 0 0 1]; w is (3*3*C, F) with rows in (ky, kx, c) order. U[xi] is C x F, or with `transposed`
// F x C (what the input gradient's GEMMs multiply by), each xi's matrix C*F floats after the last.
void filter_transform(const float* w, int C, int F, bool transposed, float* u) {
    const long tap = static_cast<long>(C) * F;  // distance between kernel taps in w, and between U[xi]s
    const long c_step = transposed ? 1 : F, f_step = transposed ? C : 1;
    for (int c = 0; c < C; ++c) {
        const float* wc = w + static_cast<long>(c) * F;
        float* uc = u + c * c_step;
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
            float* ucf = uc + f * f_step;
            for (int i = 0; i < ALPHA; ++i) {  // u = t G^T
                ucf[(i * 4 + 0) * tap] = t[i][0];
                ucf[(i * 4 + 1) * tap] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
                ucf[(i * 4 + 2) * tap] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
                ucf[(i * 4 + 3) * tap] = t[i][2];
            }
        }
    }
}

// dw[(ky, kx, c), f] = (G^T dU[., c, f] G)[ky][kx]: the transpose of filter_transform. dut holds
// dU transposed, dut[xi][f][c], as the weight-gradient GEMMs make it.
void filter_grad_transform(const float* dut, int C, int F, float* dw) {
    const long plane = static_cast<long>(C) * F;
    for (int f = 0; f < F; ++f) {
        const float* df = dut + static_cast<long>(f) * C;
        float* wf = dw + f;
#pragma GCC ivdep
        for (int c = 0; c < C; ++c) {
            float d[ALPHA][ALPHA], t[3][ALPHA];
            for (int xi = 0; xi < XI; ++xi) d[xi / 4][xi % 4] = df[xi * plane + c];
            for (int j = 0; j < ALPHA; ++j) {  // t = G^T d
                t[0][j] = d[0][j] + 0.5f * (d[1][j] + d[2][j]);
                t[1][j] = 0.5f * (d[1][j] - d[2][j]);
                t[2][j] = 0.5f * (d[1][j] + d[2][j]) + d[3][j];
            }
            for (int ky = 0; ky < 3; ++ky) {  // dw = t G
                wf[((ky * 3 + 0) * C + c) * static_cast<long>(F)] = t[ky][0] + 0.5f * (t[ky][1] + t[ky][2]);
                wf[((ky * 3 + 1) * C + c) * static_cast<long>(F)] = 0.5f * (t[ky][1] - t[ky][2]);
                wf[((ky * 3 + 2) * C + c) * static_cast<long>(F)] = 0.5f * (t[ky][1] + t[ky][2]) + t[ky][3];
            }
        }
    }
}

// c = op(a) @ op(b) (+ beta c) on the calling thread: the caller parallelizes over chunks.
void gemm_1t(GemmKernel kernel, bool ta, bool tb, int M, int N, int K, const float* a, long lda, const float* b,
             long ldb, float* c, long ldc, float beta = 0.0f) {
    GemmArgs ga;
    ga.trans_a = ta, ga.trans_b = tb;
    ga.M = M, ga.N = N, ga.K = K;
    ga.A = a, ga.lda = lda, ga.B = b, ga.ldb = ldb, ga.C = c, ga.ldc = ldc;
    ga.beta = beta;
    ga.single_thread = true;
    sgemm(ga, kernel);
}

}  // namespace

namespace {

// One chunk's tile matrices (V, and M or dM) and its transforms' scratch: per thread, shared by
// every pass, since a thread works on one chunk at a time.
struct ChunkTiles {
    float *v, *m, *scratch;
};

ChunkTiles chunk_tiles(const ConvGeom& gt, long tiles, long sv, long sm) {
    thread_local std::vector<float> v_buf, m_buf, scratch_buf;
    return {grown(v_buf, static_cast<size_t>(tiles) * sv), grown(m_buf, static_cast<size_t>(tiles) * sm),
            grown(scratch_buf, winograd::scratch_floats(gt))};
}

// The forward pass over chunks of images: input tiles, the 16 GEMMs, then output(m, sm, n0, count,
// scratch) for the chunk's tiles. gt is the geometry the tiles cover (tile_rows/cols of gt).
template <class Output>
void forward_chunks(GemmKernel kernel, const float* x, const float* w, const ConvGeom& gt, Output output) {
    const int C = gt.C, F = gt.F;
    const long sv = tile_stride(C), sm = tile_stride(F);
    const TileOps ops = tile_ops(kernel);
    thread_local std::vector<float> u_buf;
    float* u = grown(u_buf, static_cast<size_t>(XI) * C * F);
    filter_transform(w, C, F, false, u);
    const int per_chunk = images_per_chunk(gt);
    for_each_chunk((gt.N + per_chunk - 1) / per_chunk, [&](int k) {
        const int n0 = k * per_chunk, count = std::min(per_chunk, gt.N - n0);
        const long tiles = count * tiles_per_image(gt);
        const ChunkTiles b = chunk_tiles(gt, tiles, sv, sm);
        ops.input(x, gt, n0, count, b.v, sv, b.scratch);
        for (int xi = 0; xi < XI; ++xi)
            gemm_1t(kernel, false, false, static_cast<int>(tiles), F, C, b.v + xi * C, sv, u + static_cast<long>(xi) * C * F,
                    F, b.m + xi * F, sm);
        output(b.m, sm, n0, count, b.scratch);
    });
}

// The backward pass over chunks: output_grad(n0, count, dm, sm, scratch, db_chunk) fills the
// chunk's dM tiles and, where db_chunk is not null, its bias gradient (F floats), and returns how
// many of its output gradients it could not place (the pooled pass: an argmax outside its
// window); backward_chunks returns their total, having still filled dw, db and dx.
template <class OutputGrad>
long backward_chunks(GemmKernel kernel, const float* x, const float* w, float* dw, float* db, float* dx, const ConvGeom& gt,
                     OutputGrad output_grad) {
    const int C = gt.C, F = gt.F;
    const long sv = tile_stride(C), sm = tile_stride(F);
    const TileOps ops = tile_ops(kernel);
    const int per_chunk = images_per_chunk(gt), chunks = (gt.N + per_chunk - 1) / per_chunk;
    const size_t u_size = static_cast<size_t>(XI) * C * F;
    thread_local std::vector<float> ut_buf, du_buf, db_buf;
    float* ut = nullptr;  // U[xi]^T, (F x C) each: the input gradient's GEMM then packs it by rows
    if (dx) filter_transform(w, C, F, true, ut = grown(ut_buf, u_size));
    // Group gi's dU^T accumulates in partial gi, chunk k's bias gradient in partial_db k; both are
    // summed in order below.
    const int groups = gradient_groups(chunks);
    float* du = grown(du_buf, u_size * groups);
    float* partial_db = db ? grown(db_buf, static_cast<size_t>(F) * chunks) : nullptr;
    long lost[GRADIENT_GROUPS] = {};  // per group: each group runs on one thread
    for_chunk_groups(chunks, [&](int k, int gi, bool first) {
        const int n0 = k * per_chunk, count = std::min(per_chunk, gt.N - n0);
        const long tiles = count * tiles_per_image(gt);
        const ChunkTiles b = chunk_tiles(gt, tiles, sv, sm);
        lost[gi] += output_grad(n0, count, b.m, sm, b.scratch, db ? partial_db + static_cast<size_t>(k) * F : nullptr);
        ops.input(x, gt, n0, count, b.v, sv, b.scratch);
        // dU[xi]^T = dM[xi]^T V[xi] (F x C): with the tiles as K, the side with more rows (F) is
        // read in place and the narrower V is the one packed.
        float* dug = du + gi * u_size;
        for (int xi = 0; xi < XI; ++xi)
            gemm_1t(kernel, true, false, F, C, static_cast<int>(tiles), b.m + xi * F, sm, b.v + xi * C, sv,
                    dug + static_cast<long>(xi) * F * C, C, first ? 0.0f : 1.0f);
        if (!dx) return;
        float* dv = b.v;  // V is spent: dV takes its place
        for (int xi = 0; xi < XI; ++xi)
            gemm_1t(kernel, false, false, static_cast<int>(tiles), C, F, b.m + xi * F, sm, ut + static_cast<long>(xi) * F * C,
                    C, dv + xi * C, sv);
        ops.input_grad(dv, sv, gt, n0, count, dx, b.scratch);
    });
    add_partials(du, du + u_size, groups - 1, u_size);
    filter_grad_transform(du, C, F, dw);
    if (db) {
        std::copy(partial_db, partial_db + F, db);
        add_partials(db, partial_db + F, chunks - 1, F);
    }
    long stray = 0;
    for (long n : lost) stray += n;
    return stray;
}

// The convolution cut to the outputs a 2x2 pool reads: OH/2 x OW/2 whole tiles.
ConvGeom pooled_tiles(const ConvGeom& g) {
    ConvGeom gt = g;
    gt.OH = g.OH / winograd::TILE * winograd::TILE;
    gt.OW = g.OW / winograd::TILE * winograd::TILE;
    return gt;
}

}  // namespace

void winograd_forward(GemmKernel kernel, const float* x, const float* w, const float* bias, float* out,
                      const ConvGeom& g, bool relu) {
    const TileOps ops = tile_ops(kernel);
    forward_chunks(kernel, x, w, g, [&](const float* m, long sm, int n0, int count, float* scratch) {
        ops.output(m, sm, g, n0, count, bias, relu, out, scratch);
    });
}

void winograd_backward(GemmKernel kernel, const float* dy, const float* x, const float* w, float* dw, float* db, float* dx,
                       const ConvGeom& g) {
    const TileOps ops = tile_ops(kernel);
    const long image = static_cast<long>(g.OH) * g.OW * g.F;
    backward_chunks(kernel, x, w, dw, db, dx, g, [&](int n0, int count, float* dm, long sm, float* scratch, float* dbk) {
        ops.output_grad(dy, g, n0, count, dm, sm, scratch);
        if (dbk) bias_grad(dy + n0 * image, static_cast<int>(count * static_cast<long>(g.OH) * g.OW), g.F, dbk);
        return 0L;
    });
}

bool winograd_pool_forward(GemmKernel kernel, const float* x, const float* w, const float* bias, float* out, int32_t* argmax,
                           const ConvGeom& g, bool relu, int pool) {
    if (pool != 2 || g.OH < 2 || g.OW < 2) return false;
    const TileOps ops = tile_ops(kernel);
    forward_chunks(kernel, x, w, pooled_tiles(g), [&](const float* m, long sm, int n0, int count, float* scratch) {
        ops.pool_output(m, sm, g, n0, count, bias, relu, out, argmax, scratch);
    });
    return true;
}

bool winograd_pool_backward(GemmKernel kernel, const float* dy, const int32_t* argmax, const float* out,
                            bool relu_mask, const float* x, const float* w, float* dw, float* db, float* dx,
                            const ConvGeom& g, int pool) {
    if (pool != 2 || g.OH < 2 || g.OW < 2) return false;
    const TileOps ops = tile_ops(kernel);
    const long stray = backward_chunks(
        kernel, x, w, dw, db, dx, pooled_tiles(g), [&](int n0, int count, float* dm, long sm, float* scratch, float* dbk) {
            // Without a bias the sums go to scratch (F floats or more), keeping the transform branch-free.
            return ops.pool_output_grad(dy, argmax, out, relu_mask, g, n0, count, dm, sm, dbk ? dbk : scratch);
        });
    // An argmax outside its window (no forward pass makes one) leaves the outputs to the caller's
    // general path, which scatters the pooled gradient wherever argmax points.
    return stray == 0;
}

}  // namespace mf
