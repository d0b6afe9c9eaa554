#include "pool.hpp"

#include <algorithm>

#include "parallel.hpp"

namespace mf {

void maxpool_forward(const float* __restrict x, int N, int H, int W, int C, int P, float* __restrict out,
                     int32_t* __restrict argmax) {
    const int OH = H / P, OW = W / P;
    const long out_rows = static_cast<long>(N) * OH;
    MF_PARALLEL_FOR_IF(out_rows * OW * C * P * P >= MIN_PARALLEL_ELEMS)(long r = 0; r < out_rows; ++r) {
        const int n = static_cast<int>(r / OH), oy = static_cast<int>(r % OH);
        const float* __restrict img = x + static_cast<long>(n) * H * W * C;
        float* __restrict o = out + r * OW * C;
        int32_t* __restrict a = argmax + r * OW * C;
        for (int ox = 0; ox < OW; ++ox, o += C, a += C) {
            const int32_t first = ((oy * P) * W + ox * P) * C;
            for (int c = 0; c < C; ++c) {
                o[c] = img[first + c];
                a[c] = first + c;
            }
            // Strict '>' keeps the first maximum in row-major window order, as the reference does.
            for (int dy = 0; dy < P; ++dy) {
                for (int dx = (dy == 0); dx < P; ++dx) {
                    const int32_t at = ((oy * P + dy) * W + ox * P + dx) * C;
                    const float* __restrict v = img + at;
                    for (int c = 0; c < C; ++c) {
                        // Branch-free select (an all-ones mask where v wins), so the loop vectorizes.
                        const int32_t gt = -static_cast<int32_t>(v[c] > o[c]);
                        a[c] = (a[c] & ~gt) | ((at + c) & gt);
                        o[c] = v[c] > o[c] ? v[c] : o[c];
                    }
                }
            }
        }
    }
}

long maxpool_backward(const float* __restrict dy, const int32_t* __restrict argmax, const float* __restrict out,
                      bool relu_mask, int N, int H, int W, int C, int P, float* __restrict dx) {
    const long in_size = static_cast<long>(H) * W * C, out_size = static_cast<long>(H / P) * (W / P) * C;
    long outside = 0;
    MF_PARALLEL_FOR_REDUCE_IF(N * in_size >= MIN_PARALLEL_ELEMS, outside)(int n = 0; n < N; ++n) {
        float* __restrict img = dx + n * in_size;
        std::fill(img, img + in_size, 0.0f);
        const long o0 = n * out_size;
        for (long k = o0; k < o0 + out_size; ++k) {
            const int32_t at = argmax[k];
            if (at < 0 || at >= in_size) {  // checked here, in the same pass, rather than in a serial sweep before
                ++outside;
                continue;
            }
            img[at] = (relu_mask && !(out[k] > 0.0f)) ? 0.0f : dy[k];
        }
    }
    return outside;
}

void global_avgpool_forward(const float* x, int N, int HW, int C, float* out) {
    const float inv = 1.0f / static_cast<float>(HW);
    MF_PARALLEL_FOR_IF(static_cast<long>(N) * HW * C >= MIN_PARALLEL_ELEMS)(int n = 0; n < N; ++n) {
        float* o = out + static_cast<long>(n) * C;
        std::fill(o, o + C, 0.0f);
        const float* img = x + static_cast<long>(n) * HW * C;
        for (int p = 0; p < HW; ++p)
            for (int c = 0; c < C; ++c) o[c] += img[p * C + c];
        for (int c = 0; c < C; ++c) o[c] *= inv;
    }
}

void global_avgpool_backward(const float* dy, int N, int HW, int C, float* dx) {
    const float inv = 1.0f / static_cast<float>(HW);
    MF_PARALLEL_FOR_IF(static_cast<long>(N) * HW * C >= MIN_PARALLEL_ELEMS)(int n = 0; n < N; ++n) {
        const float* d = dy + static_cast<long>(n) * C;
        float* img = dx + static_cast<long>(n) * HW * C;
        for (int p = 0; p < HW; ++p)
            for (int c = 0; c < C; ++c) img[p * C + c] = d[c] * inv;
    }
}

}  // namespace mf
