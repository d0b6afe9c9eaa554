// The single-channel direct convolution (see conv_direct.hpp), written once. conv_direct_<isa>.cpp
// includes it with MF_ISA set to its namespace and compiles it with that ISA's flags.
#ifndef MF_ISA
#error "define MF_ISA (the namespace for this ISA) before including conv_direct_impl.hpp"
#endif

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "conv/direct/conv_direct.hpp"
#include "core/parallel.hpp"
#include "pool/pool_image.hpp"

namespace mf {
namespace MF_ISA {
namespace {

// A per-thread work buffer that only grows, new floats zeroed (as a std::vector resized by
// conv.hpp's grown). It has internal linkage: std::vector's member functions, instantiated here,
// would be emitted as weak symbols compiled with this file's ISA flags, and the linker keeps one
// copy for the whole module, so an AVX-512 copy could serve every file's vector<float> on a CPU
// without AVX-512.
class Scratch {
  public:
    Scratch() = default;
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    ~Scratch() { std::free(data_); }
    float* get(size_t n) {
        if (n > size_) {
            auto* p = static_cast<float*>(std::realloc(data_, n * sizeof(float)));
            if (!p) throw std::bad_alloc();
            std::memset(p + size_, 0, (n - size_) * sizeof(float));
            data_ = p, size_ = n;
        }
        return data_;
    }

  private:
    float* data_ = nullptr;
    size_t size_ = 0;
};

constexpr int IMAGE_CHUNK = 8;  // images per weight-gradient partial (summed in chunk order)

// The vector registers this ISA has: how many floats each holds, and how many there are.
#if defined(__AVX512F__)
constexpr int VEC_FLOATS = 16, VEC_REGS = 32;
#elif defined(__AVX__)
constexpr int VEC_FLOATS = 8, VEC_REGS = 16;
#else
constexpr int VEC_FLOATS = 4, VEC_REGS = 16;
#endif

// The F sums of a pixel live in F / VEC_FLOATS full vectors plus, where F leaves 8 floats over
// (AVX-512 at F = 8, 24, 40, 56), one 8-float vector. GCC vector types make the register blocking
// explicit: left to the auto-vectorizer, F = 8 and 16 compiled to spills and ran 20x slower than 24.
template <int L>
struct Vec {
    typedef float type __attribute__((vector_size(L * sizeof(float))));
};
using V = Vec<VEC_FLOATS>::type;
using Tail = Vec<8>::type;

template <int F>
constexpr int full_vectors() {
    return F / VEC_FLOATS;
}

template <int F>
constexpr bool has_tail() {
    return F % VEC_FLOATS != 0;  // then F % VEC_FLOATS == 8 (F is a multiple of 8)
}

template <class T>
inline T load(const float* p) {
    T v;
    __builtin_memcpy(&v, p, sizeof(T));  // unaligned
    return v;
}

template <class T>
inline void store(float* p, T v) {
    __builtin_memcpy(p, &v, sizeof(T));
}

template <class T>
inline T relu_if(bool relu, T v) {
    const T zero{};
    return relu ? (v > zero ? v : zero) : v;  // NaN -> 0, as the GEMM epilogue
}

template <int F>
constexpr int vectors_per_pixel() {
    return full_vectors<F>() + (has_tail<F>() ? 1 : 0);
}

// Output pixels per register block in the forward pass: as many as leave four registers free once
// each pixel holds its F sums (up to 8, a power of two). More pixels, more independent FMA chains to
// cover the FMA latency, and each weight vector loaded once per tap serves them all.
template <int F>
constexpr int pixel_block() {
    const int fit = (VEC_REGS - 4) / vectors_per_pixel<F>();
    return fit >= 8 ? 8 : fit >= 4 ? 4 : fit >= 2 ? 2 : 1;
}

// The weight gradient keeps one kernel row (KW x F) of sums in registers. Where two copies fit,
// even and odd pixels get their own, so twice as many independent FMA chains hide the latency.
template <int KW, int F>
constexpr int pixel_sums() {
    return 2 * KW * vectors_per_pixel<F>() <= VEC_REGS - 4 ? 2 : 1;
}

// The padded image is (OH + KH - 1) x (OW + KW - 1): exactly what the valid convolution reads.
struct Padded {
    int Hp, Wp;
    explicit Padded(const ConvGeom& g) : Hp(g.OH + g.KH - 1), Wp(g.OW + g.KW - 1) {}
    long size() const { return static_cast<long>(Hp) * Wp; }
};

// Image n of x, zero-padded (PH rows above, PW columns left; the rest of the frame below/right).
void pad_image(const float* x, const ConvGeom& g, const Padded& p, int n, float* dst) {
    std::fill(dst, dst + p.size(), 0.0f);
    const float* img = x + static_cast<long>(n) * g.H * g.W;
    const int rows = std::min(g.H, p.Hp - g.PH), cols = std::min(g.W, p.Wp - g.PW);
    for (int y = 0; y < rows; ++y) std::copy(img + y * g.W, img + y * g.W + cols, dst + (y + g.PH) * p.Wp + g.PW);
}

// NB output pixels of one row: `in` is the padded image at (oy, ox0), `out` their F outputs each.
template <int F, int NB>
inline void forward_pixels(const float* __restrict in, int Wp, const float* __restrict w, int KH, int KW,
                           const float* __restrict bias, bool relu, float* __restrict out) {
    constexpr int NV = full_vectors<F>(), L = VEC_FLOATS;
    constexpr bool TAIL = has_tail<F>();
    V acc[NB][NV > 0 ? NV : 1];
    Tail tail[NB];
    for (int j = 0; j < NV; ++j) {
        const V b0 = bias ? load<V>(bias + j * L) : V{};
        for (int p = 0; p < NB; ++p) acc[p][j] = b0;
    }
    if constexpr (TAIL) {
        const Tail b0 = bias ? load<Tail>(bias + NV * L) : Tail{};
        for (int p = 0; p < NB; ++p) tail[p] = b0;
    }
    for (int ky = 0; ky < KH; ++ky) {
        for (int kx = 0; kx < KW; ++kx) {
            const float* __restrict wt = w + (ky * KW + kx) * F;
            V wv[NV > 0 ? NV : 1];
            for (int j = 0; j < NV; ++j) wv[j] = load<V>(wt + j * L);
            Tail wtail{};
            if constexpr (TAIL) wtail = load<Tail>(wt + NV * L);
            const float* __restrict r = in + ky * Wp + kx;
            for (int p = 0; p < NB; ++p) {
                const float v = r[p];
                for (int j = 0; j < NV; ++j) acc[p][j] += v * wv[j];
                if constexpr (TAIL) tail[p] += v * wtail;
            }
        }
    }
    for (int p = 0; p < NB; ++p) {
        for (int j = 0; j < NV; ++j) store(out + p * F + j * L, relu_if(relu, acc[p][j]));
        if constexpr (TAIL) store(out + p * F + NV * L, relu_if(relu, tail[p]));
    }
}

// One image's convolution, from its padded copy, into out_image (OH x OW x F).
template <int F>
void conv_image(const float* padded, const Padded& pd, const float* w, const float* bias, bool relu, const ConvGeom& g,
                float* out_image) {
    for (int oy = 0; oy < g.OH; ++oy) {
        const float* in = padded + oy * pd.Wp;
        float* o = out_image + static_cast<long>(oy) * g.OW * F;
        constexpr int NB = pixel_block<F>();
        int ox = 0;
        for (; ox + NB <= g.OW; ox += NB) forward_pixels<F, NB>(in + ox, pd.Wp, w, g.KH, g.KW, bias, relu, o + ox * F);
        for (; ox < g.OW; ++ox) forward_pixels<F, 1>(in + ox, pd.Wp, w, g.KH, g.KW, bias, relu, o + ox * F);
    }
}

template <int F>
void forward(const float* x, const float* w, const float* bias, float* out, const ConvGeom& g, bool relu) {
    const Padded pd(g);
    MF_PARALLEL_FOR_IF(g.rows() * F * g.KH * g.KW >= MIN_PARALLEL_ELEMS)(int n = 0; n < g.N; ++n) {
        thread_local Scratch buf;
        float* padded = buf.get(pd.size());
        pad_image(x, g, pd, n, padded);
        conv_image<F>(padded, pd, w, bias, relu, g, out + static_cast<long>(n) * g.OH * g.OW * F);
    }
}

// Convolution then P x P max pooling, an image at a time: the full-resolution map of each image
// stays in cache (it is P*P times the pooled one) and never goes to memory.
template <int F>
void forward_pool(const float* x, const float* w, const float* bias, float* out, int32_t* argmax, const ConvGeom& g,
                  bool relu, int P) {
    const Padded pd(g);
    const long conv_size = static_cast<long>(g.OH) * g.OW * F, pooled = static_cast<long>(g.OH / P) * (g.OW / P) * F;
    MF_PARALLEL_FOR_IF(g.rows() * F * g.KH * g.KW >= MIN_PARALLEL_ELEMS)(int n = 0; n < g.N; ++n) {
        thread_local Scratch buf, conv;
        float* padded = buf.get(pd.size());
        float* c = conv.get(conv_size);
        pad_image(x, g, pd, n, padded);
        conv_image<F>(padded, pd, w, bias, relu, g, c);
        maxpool_image_forward(c, g.OH, g.OW, F, P, out + n * pooled, argmax + n * pooled);
    }
}

// Images [n0, n1): dw_part (KH*KW*F) and db_part (F, if not null) for those images alone; dy holds
// the output gradient of those images only.
template <int KW, int F>
void backward_chunk(const float* dy, const float* x, const ConvGeom& g, int n0, int n1, float* padded,
                    float* __restrict dw_part, float* __restrict db_part) {
    const Padded pd(g);
    for (int n = n0; n < n1; ++n) pad_image(x, g, pd, n, padded + (n - n0) * pd.size());
    constexpr int SUMS = pixel_sums<KW, F>(), NV = full_vectors<F>(), L = VEC_FLOATS;
    constexpr bool TAIL = has_tail<F>();
    for (int ky = 0; ky < g.KH; ++ky) {
        V acc[SUMS][KW][NV > 0 ? NV : 1] = {};  // one kernel row of dw, over every pixel of the chunk
        Tail tail[SUMS][KW] = {};
        for (int n = n0; n < n1; ++n) {
            for (int oy = 0; oy < g.OH; ++oy) {
                const float* __restrict r = padded + (n - n0) * pd.size() + (oy + ky) * pd.Wp;
                const float* __restrict d = dy + (static_cast<long>(n - n0) * g.OH + oy) * g.OW * F;
                auto add_pixel = [&](int ox, int h) {  // pixel ox into sum set h
                    V dv[NV > 0 ? NV : 1];
                    for (int j = 0; j < NV; ++j) dv[j] = load<V>(d + ox * F + j * L);
                    Tail dt{};
                    if constexpr (TAIL) dt = load<Tail>(d + ox * F + NV * L);
                    for (int kx = 0; kx < KW; ++kx) {
                        const float v = r[ox + kx];
                        for (int j = 0; j < NV; ++j) acc[h][kx][j] += v * dv[j];
                        if constexpr (TAIL) tail[h][kx] += v * dt;
                    }
                };
                int ox = 0;
                for (; ox + SUMS <= g.OW; ox += SUMS)
                    for (int h = 0; h < SUMS; ++h) add_pixel(ox + h, h);
                for (; ox < g.OW; ++ox) add_pixel(ox, 0);
            }
        }
        for (int kx = 0; kx < KW; ++kx) {
            float* dst = dw_part + (ky * KW + kx) * F;
            for (int j = 0; j < NV; ++j) {
                V sum = acc[0][kx][j];
                for (int h = 1; h < SUMS; ++h) sum += acc[h][kx][j];
                store(dst + j * L, sum);
            }
            if constexpr (TAIL) {
                Tail sum = tail[0][kx];
                for (int h = 1; h < SUMS; ++h) sum += tail[h][kx];
                store(dst + NV * L, sum);
            }
        }
    }
    if (db_part) {
        float acc[F] = {};
        const float* __restrict d = dy;
        for (long q = 0; q < static_cast<long>(n1 - n0) * g.OH * g.OW; ++q)
            for (int f = 0; f < F; ++f) acc[f] += d[q * F + f];
        std::copy(acc, acc + F, db_part);
    }
}

// The weight gradient over chunks of IMAGE_CHUNK images, each into its own partial, summed in chunk
// order: the result does not depend on the thread count. chunk_dy(k, n0, n1) gives chunk k's output
// gradient (and returns the count of bad pooling indices met making it, for the pooled variant).
template <int KW, int F, class ChunkDy>
long backward_chunks(const float* x, float* dw, float* db, const ConvGeom& g, ChunkDy chunk_dy) {
    const int chunks = (g.N + IMAGE_CHUNK - 1) / IMAGE_CHUNK;
    const long dw_size = static_cast<long>(g.KH) * KW * F;
    thread_local Scratch partial;
    float* part = partial.get(chunks * (dw_size + F));
    const Padded pd(g);
    long bad = 0;
    MF_PARALLEL_FOR_REDUCE_IF(chunks > 1 && g.rows() * F * g.KH * KW >= MIN_PARALLEL_ELEMS, bad)(int k = 0; k < chunks; ++k) {
        thread_local Scratch padded_buf;
        float* padded = padded_buf.get(IMAGE_CHUNK * pd.size());
        const int n0 = k * IMAGE_CHUNK, n1 = std::min(g.N, n0 + IMAGE_CHUNK);
        float* pk = part + k * (dw_size + F);
        const float* dy = chunk_dy(n0, n1, bad);
        backward_chunk<KW, F>(dy, x, g, n0, n1, padded, pk, db ? pk + dw_size : nullptr);
    }
    std::copy(part, part + dw_size, dw);
    if (db) std::copy(part + dw_size, part + dw_size + F, db);
    for (int k = 1; k < chunks; ++k) {
        const float* pk = part + k * (dw_size + F);
        for (long i = 0; i < dw_size; ++i) dw[i] += pk[i];
        if (db)
            for (int f = 0; f < F; ++f) db[f] += pk[dw_size + f];
    }
    return bad;
}

template <int KW, int F>
void backward(const float* dy, const float* x, float* dw, float* db, const ConvGeom& g) {
    const long per_image = static_cast<long>(g.OH) * g.OW * F;
    backward_chunks<KW, F>(x, dw, db, g, [&](int n0, int, long&) { return dy + n0 * per_image; });
}

// The pooled variant: each chunk's full-resolution gradient is rebuilt from the pooled one in a
// per-thread buffer (max-pool backward), used while it is in cache, and never written to memory.
template <int KW, int F>
long backward_pool(const float* dy_pooled, const int32_t* argmax, const float* out, bool relu_mask, const float* x,
                   float* dw, float* db, const ConvGeom& g, int P) {
    const long per_image = static_cast<long>(g.OH) * g.OW * F, pooled = static_cast<long>(g.OH / P) * (g.OW / P) * F;
    return backward_chunks<KW, F>(x, dw, db, g, [&](int n0, int n1, long& bad) {
        thread_local Scratch dy_buf;
        float* dy = dy_buf.get(IMAGE_CHUNK * per_image);
        for (int n = n0; n < n1; ++n)
            bad += maxpool_image_backward(dy_pooled + n * pooled, argmax + n * pooled, out + n * pooled, relu_mask,
                                          g.OH, g.OW, F, P, dy + (n - n0) * per_image);
        return static_cast<const float*>(dy);
    });
}

bool handled(const ConvGeom& g) {
    return g.C == 1 && g.SH == 1 && g.SW == 1 && (g.KW == 3 || g.KW == 5) && g.F % 8 == 0 && g.F <= 64 &&
           g.N > 0 && g.OH > 0 && g.OW > 0;
}

}  // namespace

// F (and KW for the weight gradient) become compile-time constants, so a block's accumulators
// can live in registers.
#define MF_FOR_EACH_F(CASE) CASE(8) CASE(16) CASE(24) CASE(32) CASE(40) CASE(48) CASE(56) CASE(64)

bool conv1ch_forward(const float* x, const float* w, const float* bias, float* out, const ConvGeom& g, bool relu) {
    if (!handled(g)) return false;
    switch (g.F) {
#define MF_CASE(F)                                 \
    case F:                                        \
        forward<F>(x, w, bias, out, g, relu);      \
        return true;
        MF_FOR_EACH_F(MF_CASE)
#undef MF_CASE
    }
    return false;
}

bool conv1ch_backward(const float* dy, const float* x, float* dw, float* db, const ConvGeom& g) {
    if (!handled(g)) return false;
    switch (g.F) {
#define MF_CASE(F)                                                                      \
    case F:                                                                             \
        if (g.KW == 3) backward<3, F>(dy, x, dw, db, g);                                \
        else backward<5, F>(dy, x, dw, db, g);                                          \
        return true;
        MF_FOR_EACH_F(MF_CASE)
#undef MF_CASE
    }
    return false;
}

bool conv1ch_pool_forward(const float* x, const float* w, const float* bias, float* out, int32_t* argmax,
                          const ConvGeom& g, bool relu, int P) {
    if (!handled(g) || P < 1 || g.OH < P || g.OW < P) return false;
    switch (g.F) {
#define MF_CASE(F)                                           \
    case F:                                                  \
        forward_pool<F>(x, w, bias, out, argmax, g, relu, P); \
        return true;
        MF_FOR_EACH_F(MF_CASE)
#undef MF_CASE
    }
    return false;
}

bool conv1ch_pool_backward(const float* dy, const int32_t* argmax, const float* out, bool relu_mask, const float* x,
                           float* dw, float* db, const ConvGeom& g, int P, long* bad_argmax) {
    if (!handled(g) || P < 1 || g.OH < P || g.OW < P) return false;
    switch (g.F) {
#define MF_CASE(F)                                                                                        \
    case F:                                                                                               \
        *bad_argmax = g.KW == 3 ? backward_pool<3, F>(dy, argmax, out, relu_mask, x, dw, db, g, P)         \
                                : backward_pool<5, F>(dy, argmax, out, relu_mask, x, dw, db, g, P);        \
        return true;
        MF_FOR_EACH_F(MF_CASE)
#undef MF_CASE
    }
    return false;
}

#undef MF_FOR_EACH_F

}  // namespace MF_ISA
}  // namespace mf
