#include "pool/pool.hpp"

#include <algorithm>

#include "core/parallel.hpp"
#include "pool/pool_image.hpp"

namespace mf {

void maxpool_forward(const float* __restrict x, int N, int H, int W, int C, int P, float* __restrict out,
                     int32_t* __restrict argmax) {
    const int OH = H / P, OW = W / P;
    const long out_rows = static_cast<long>(N) * OH;
    MF_PARALLEL_FOR_IF(out_rows * OW * C * P * P >= MIN_PARALLEL_ELEMS)(long r = 0; r < out_rows; ++r) {
        const int n = static_cast<int>(r / OH), oy = static_cast<int>(r % OH);
        maxpool_row_forward(x + static_cast<long>(n) * H * W * C, W, C, P, oy, out + r * OW * C, argmax + r * OW * C);
    }
}

long maxpool_backward(const float* __restrict dy, const int32_t* __restrict argmax, const float* __restrict out,
                      bool relu_mask, int N, int H, int W, int C, int P, float* __restrict dx) {
    const long in_size = static_cast<long>(H) * W * C, out_size = static_cast<long>(H / P) * (W / P) * C;
    long outside = 0;
    MF_PARALLEL_FOR_REDUCE_IF(N * in_size >= MIN_PARALLEL_ELEMS, outside)(int n = 0; n < N; ++n) {
        outside += maxpool_image_backward(dy + n * out_size, argmax + n * out_size, out + n * out_size, relu_mask, H, W,
                                          C, P, dx + n * in_size);
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
