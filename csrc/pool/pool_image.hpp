// Max pooling of one image (or one output row of it), serial and inline: pool.cpp runs these under
// its OpenMP loops, and the fused conv + pool kernels (conv_direct_impl.hpp, and the 2x2 window
// helpers in conv_winograd_tiles_impl.hpp) call them on data still in cache, compiled with that
// kernel's ISA, without opening a nested parallel region.
//
// Everything here is static: each file that includes it gets its own copy, compiled with its own
// flags. With external linkage a function the compiler does not inline is emitted as a weak symbol
// and the linker keeps one copy for the module, maybe an AVX-512 one (the sanitizer build, at -O1,
// emitted maxpool_image_backward from conv_direct_avx512.cpp that way).
#pragma once

#include <cstdint>

namespace mf {

// One 2 x 2 window of a channel: values v0..v3 in row-major window order, at offsets a0..a3.
// The first maximum (strict '>', as the reference) and its offset; selects, no branches, so a
// loop over channels calling it vectorizes.
struct WindowMax {
    float best;
    int32_t arg;
};

static inline WindowMax window_max(float v0, float v1, float v2, float v3, int32_t a0, int32_t a1, int32_t a2,
                                   int32_t a3) {
    float b = v0;
    int32_t i = a0;
    i = v1 > b ? a1 : i;
    b = v1 > b ? v1 : b;
    i = v2 > b ? a2 : i;
    b = v2 > b ? v2 : b;
    i = v3 > b ? a3 : i;
    b = v3 > b ? v3 : b;
    return {b, i};
}

// The backward of window_max: the window element whose offset is the argmax a gets the gradient
// g, the other three 0. Returns false where a is none of the window's offsets.
static inline bool window_grads(int32_t a, float g, int32_t a0, int32_t a1, int32_t a2, int32_t a3, float& g0,
                                float& g1, float& g2, float& g3) {
    const bool w0 = a == a0, w1 = a == a1, w2 = a == a2, w3 = a == a3;
    g0 = w0 ? g : 0.0f, g1 = w1 ? g : 0.0f, g2 = w2 ? g : 0.0f, g3 = w3 ? g : 0.0f;
    return w0 | w1 | w2 | w3;
}

static inline void fill_zero(float* p, long n) {
    for (long i = 0; i < n; ++i) p[i] = 0.0f;
}


// Output row oy of image `img` (H x W x C, channels last): out and argmax hold that row's OW*C
// values and offsets within the image. Strict '>' keeps the first maximum in row-major window
// order, as the reference does; the selects are branch-free so the loops over C vectorize.
static inline void maxpool_row_forward(const float* __restrict img, int W, int C, int P, int oy, float* __restrict o,
                                int32_t* __restrict a) {
    const int OW = W / P;
    if (P == 2) {  // the common case: the four window values of a channel meet in registers
        for (int ox = 0; ox < OW; ++ox, o += C, a += C) {
            const int32_t at0 = ((2 * oy) * W + 2 * ox) * C, at2 = at0 + W * C;
            const float *r0 = img + at0, *r2 = img + at2;
            for (int c = 0; c < C; ++c) {
                const WindowMax m =
                    window_max(r0[c], r0[C + c], r2[c], r2[C + c], at0 + c, at0 + C + c, at2 + c, at2 + C + c);
                o[c] = m.best;
                a[c] = m.arg;
            }
        }
        return;
    }
    for (int ox = 0; ox < OW; ++ox, o += C, a += C) {
        const int32_t first = ((oy * P) * W + ox * P) * C;
        for (int c = 0; c < C; ++c) {
            o[c] = img[first + c];
            a[c] = first + c;
        }
        for (int dy = 0; dy < P; ++dy) {
            for (int dx = (dy == 0); dx < P; ++dx) {
                const int32_t at = ((oy * P + dy) * W + ox * P + dx) * C;
                const float* __restrict v = img + at;
                for (int c = 0; c < C; ++c) {
                    const int32_t gt = -static_cast<int32_t>(v[c] > o[c]);  // all ones where v wins
                    a[c] = (a[c] & ~gt) | ((at + c) & gt);
                    o[c] = v[c] > o[c] ? v[c] : o[c];
                }
            }
        }
    }
}

static inline void maxpool_image_forward(const float* img, int H, int W, int C, int P, float* out, int32_t* argmax) {
    const long row = static_cast<long>(W / P) * C;
    for (int oy = 0; oy < H / P; ++oy) maxpool_row_forward(img, W, C, P, oy, out + oy * row, argmax + oy * row);
}

// One image: dx (in_size floats) = 0, then dx[argmax[k]] = dy[k] (0 where relu_mask and out[k] <= 0).
// Returns how many argmax entries lie outside the image; those are skipped.
static inline long maxpool_image_scatter(const float* __restrict dy, const int32_t* __restrict argmax,
                                  const float* __restrict out, bool relu_mask, long in_size, long out_size,
                                  float* __restrict dx) {
    fill_zero(dx, in_size);
    long outside = 0;
    for (long k = 0; k < out_size; ++k) {
        const int32_t at = argmax[k];
        if (at < 0 || at >= in_size) {  // checked here, in the same pass, rather than in a serial sweep before
            ++outside;
            continue;
        }
        dx[at] = (relu_mask && !(out[k] > 0.0f)) ? 0.0f : dy[k];
    }
    return outside;
}

// One 2 x 2 window's C channels (element offsets at0 and at0 + C in its first row, at2 and at2 + C
// in its second): each element gets the gradient where it is the argmax, else 0. Branch-free, so it
// vectorizes along C. Returns how many of the C argmax entries point outside the window.
template <bool RELU_MASK>
static inline int window_pairs_backward(const float* __restrict dy, const int32_t* __restrict argmax,
                                 const float* __restrict out, int C, int32_t at0, int32_t at2, float* __restrict dx) {
    float *d0 = dx + at0, *d2 = dx + at2;
    int foreign = 0;
    for (int c = 0; c < C; ++c) {
        const float d = dy[c], o = out[c];  // both loaded unconditionally: the selects stay branch-free
        const float g = (RELU_MASK && !(o > 0.0f)) ? 0.0f : d;
        foreign += !window_grads(argmax[c], g, at0 + c, at0 + C + c, at2 + c, at2 + C + c, d0[c], d0[C + c], d2[c],
                                 d2[C + c]);
    }
    return foreign;
}

// The same for an H x W x C image. With 2 x 2 windows each input element is written once, with its
// window's gradient or 0, in a pass that vectorizes along C (no zero fill, no scattered stores).
// That needs every argmax inside its own window, as maxpool_forward makes them; an image with any
// other entry is redone by the scatter, which gives such entries their defined meaning.
static inline long maxpool_image_backward(const float* __restrict dy, const int32_t* __restrict argmax,
                                   const float* __restrict out, bool relu_mask, int H, int W, int C, int P,
                                   float* __restrict dx) {
    const long in_size = static_cast<long>(H) * W * C, out_size = static_cast<long>(H / P) * (W / P) * C;
    if (P != 2) return maxpool_image_scatter(dy, argmax, out, relu_mask, in_size, out_size, dx);
    const int OH = H / 2, OW = W / 2;
    long foreign = 0;
    for (int oy = 0; oy < OH; ++oy) {
        for (int ox = 0; ox < OW; ++ox) {
            const long k0 = (static_cast<long>(oy) * OW + ox) * C;
            const int32_t at0 = ((2 * oy) * W + 2 * ox) * C, at2 = at0 + W * C;
            foreign += relu_mask ? window_pairs_backward<true>(dy + k0, argmax + k0, out + k0, C, at0, at2, dx)
                                 : window_pairs_backward<false>(dy + k0, argmax + k0, out + k0, C, at0, at2, dx);
        }
        if (W % 2) {  // the last column is in no window
            for (int y = 2 * oy; y < 2 * oy + 2; ++y) {
                fill_zero(dx + (static_cast<long>(y) * W + W - 1) * C, C);
            }
        }
    }
    if (H % 2) fill_zero(dx + static_cast<long>(H - 1) * W * C, static_cast<long>(W) * C);  // nor is the last row
    return foreign ? maxpool_image_scatter(dy, argmax, out, relu_mask, in_size, out_size, dx) : 0;
}

}  // namespace mf
