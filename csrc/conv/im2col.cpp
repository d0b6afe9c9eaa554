// Convolution as im2col + the packed GEMM: the general path, for any kernel, stride and padding.
#include "conv/im2col.hpp"

#include <algorithm>
#include <vector>

#include "gemm/gemm.hpp"
#include "elementwise/mlp_ops.hpp"
#include "core/parallel.hpp"

namespace mf {

namespace {

// A chunk's patch matrix: 128K floats = 512 KiB, within the L2 of current x86 cores (512 KiB to 2 MiB).
constexpr long COLS_CHUNK_FLOATS = 1L << 17;

inline long pixel(const ConvGeom& g, int n, int y, int x) { return ((static_cast<long>(n) * g.H + y) * g.W + x) * g.C; }

int images_per_chunk(const ConvGeom& g) {
    const long per_image = static_cast<long>(g.OH) * g.OW * g.patch();
    return static_cast<int>(std::max(1L, std::min<long>(g.N, COLS_CHUNK_FLOATS / std::max(1L, per_image))));
}

// c[M x N] = op(a) @ op(b) (+ beta * c), one thread: the caller parallelizes over chunks.
void gemm_1t(GemmKernel kernel, bool ta, bool tb, int M, int N, int K, const float* a, long lda, const float* b,
             long ldb, float* c, long ldc, const float* bias = nullptr, bool relu = false, float beta = 0.0f) {
    GemmArgs ga;
    ga.beta = beta;
    ga.trans_a = ta, ga.trans_b = tb;
    ga.M = M, ga.N = N, ga.K = K;
    ga.A = a, ga.lda = lda, ga.B = b, ga.ldb = ldb, ga.C = c, ga.ldc = ldc;
    ga.ep.bias = bias;
    ga.ep.relu = relu;
    ga.single_thread = true;
    sgemm(ga, kernel);
}

}  // namespace

// For a fixed kernel row ky, the KW taps of a patch are KW neighbouring pixels: in channels-last
// storage one contiguous run of KW * C floats, copied (or summed) as a whole by a plain loop, which
// CMakeLists.txt keeps GCC from turning into a memcpy call per run (the runs are short).
namespace {

inline void copy_run(const float* __restrict src, int n, float* __restrict dst) {
    for (int i = 0; i < n; ++i) dst[i] = src[i];
}

inline void add_run(const float* __restrict src, int n, float* __restrict dst) {
    for (int i = 0; i < n; ++i) dst[i] += src[i];
}

}  // namespace

void im2col(const float* x, const ConvGeom& g, int n0, int count, float* cols) {
    const int run = g.KW * g.C;
    float* dst = cols;
    for (int n = n0; n < n0 + count; ++n) {
        for (int oy = 0; oy < g.OH; ++oy) {
            for (int ox = 0; ox < g.OW; ++ox) {
                const int ix0 = ox * g.SW - g.PW;
                const bool inside_x = ix0 >= 0 && ix0 + g.KW <= g.W;
                for (int ky = 0; ky < g.KH; ++ky, dst += run) {
                    const int iy = oy * g.SH - g.PH + ky;
                    if (iy < 0 || iy >= g.H) {
                        std::fill(dst, dst + run, 0.0f);
                    } else if (inside_x) {
                        copy_run(x + pixel(g, n, iy, ix0), run, dst);
                    } else {
                        for (int kx = 0; kx < g.KW; ++kx) {
                            const int ix = ix0 + kx;
                            float* d = dst + kx * g.C;
                            if (ix >= 0 && ix < g.W) copy_run(x + pixel(g, n, iy, ix), g.C, d);
                            else std::fill(d, d + g.C, 0.0f);
                        }
                    }
                }
            }
        }
    }
}

void col2im(const float* cols, const ConvGeom& g, int n0, int count, float* dx) {
    const int run = g.KW * g.C;
    const float* src = cols;
    for (int n = n0; n < n0 + count; ++n) {
        float* img = dx + pixel(g, n, 0, 0);
        std::fill(img, img + static_cast<long>(g.H) * g.W * g.C, 0.0f);
        for (int oy = 0; oy < g.OH; ++oy) {
            for (int ox = 0; ox < g.OW; ++ox) {
                const int ix0 = ox * g.SW - g.PW;
                const bool inside_x = ix0 >= 0 && ix0 + g.KW <= g.W;
                for (int ky = 0; ky < g.KH; ++ky, src += run) {
                    const int iy = oy * g.SH - g.PH + ky;
                    if (iy < 0 || iy >= g.H) continue;
                    if (inside_x) {
                        add_run(src, run, dx + pixel(g, n, iy, ix0));
                    } else {
                        for (int kx = 0; kx < g.KW; ++kx) {
                            const int ix = ix0 + kx;
                            if (ix >= 0 && ix < g.W) add_run(src + kx * g.C, g.C, dx + pixel(g, n, iy, ix));
                        }
                    }
                }
            }
        }
    }
}

void im2col_forward(GemmKernel kernel, const float* x, const float* w, const float* bias, float* out,
                    const ConvGeom& g, bool relu) {
    const int per_chunk = images_per_chunk(g), chunks = (g.N + per_chunk - 1) / per_chunk;
    const long per_image = static_cast<long>(g.OH) * g.OW;
    const int patch = g.patch();
    for_each_chunk(chunks, [&](int k) {
        thread_local std::vector<float> cols_buf;
        const int n0 = k * per_chunk, count = std::min(per_chunk, g.N - n0);
        const long rows = count * per_image;
        const float* a = x + pixel(g, n0, 0, 0);
        if (!g.pointwise()) {
            float* cols = grown(cols_buf, static_cast<size_t>(rows) * patch);
            im2col(x, g, n0, count, cols);
            a = cols;
        }
        gemm_1t(kernel, false, false, static_cast<int>(rows), g.F, patch, a, patch, w, g.F, out + n0 * per_image * g.F, g.F,
                bias, relu);
    });
}

void im2col_backward(GemmKernel kernel, const float* dy, const float* x, const float* w, float* dw, float* db,
                     float* dx, const ConvGeom& g) {
    const int per_chunk = images_per_chunk(g), chunks = (g.N + per_chunk - 1) / per_chunk;
    const long per_image = static_cast<long>(g.OH) * g.OW;
    const int patch = g.patch();
    const size_t dw_size = static_cast<size_t>(patch) * g.F;
    // Chunk group gi accumulates its weight gradient in partial gi (dw itself for group 0), chunk k
    // its bias gradient in partial_db k; they are summed in order below, so the result does not
    // depend on the thread count. The buffers persist per calling thread: a fresh multi-MiB
    // allocation each step would be paid again in page faults.
    const int groups = gradient_groups(chunks);
    thread_local std::vector<float> partial_buf, partial_db_buf;
    float* partial = grown(partial_buf, dw_size * (groups - 1));
    float* partial_db = grown(partial_db_buf, db ? static_cast<size_t>(g.F) * chunks : 0);
    for_chunk_groups(chunks, [&](int k, int gi, bool first) {
        thread_local std::vector<float> cols_buf, dcols_buf;
        const int n0 = k * per_chunk, count = std::min(per_chunk, g.N - n0);
        const int rows = static_cast<int>(count * per_image);
        const float* dyk = dy + n0 * per_image * g.F;
        const float* cols = x + pixel(g, n0, 0, 0);
        if (!g.pointwise()) {
            float* c = grown(cols_buf, static_cast<size_t>(rows) * patch);
            im2col(x, g, n0, count, c);
            cols = c;
        }
        float* dwg = gi == 0 ? dw : partial + (gi - 1) * dw_size;
        gemm_1t(kernel, true, false, patch, g.F, rows, cols, patch, dyk, g.F, dwg, g.F, nullptr, false, first ? 0.0f : 1.0f);
        if (db) bias_grad(dyk, rows, g.F, partial_db + static_cast<size_t>(k) * g.F);  // dy chunk is in cache
        if (dx) {
            if (g.pointwise()) {
                gemm_1t(kernel, false, true, rows, patch, g.F, dyk, g.F, w, g.F, dx + pixel(g, n0, 0, 0), patch);
            } else {
                float* dcols = grown(dcols_buf, static_cast<size_t>(rows) * patch);
                gemm_1t(kernel, false, true, rows, patch, g.F, dyk, g.F, w, g.F, dcols, patch);
                col2im(dcols, g, n0, count, dx);
            }
        }
    });
    add_partials(dw, partial, groups - 1, dw_size);
    if (db) {
        std::copy(partial_db, partial_db + g.F, db);
        add_partials(db, partial_db + g.F, chunks - 1, g.F);
    }
}

}  // namespace mf
