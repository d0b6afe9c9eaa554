#include "elementwise/elementwise.hpp"

#include <algorithm>
#include <cmath>

#include "core/parallel.hpp"

namespace mf {

void activation_forward(Activation f, const float* x, float* y, long n, float alpha) {
    switch (f) {
        case Activation::Relu:
            MF_PARALLEL_FOR_IF(n >= MIN_PARALLEL_ELEMS)(long k = 0; k < n; ++k) y[k] = x[k] > 0.0f ? x[k] : 0.0f;
            break;
        case Activation::LeakyRelu:
            MF_PARALLEL_FOR_IF(n >= MIN_PARALLEL_ELEMS)(long k = 0; k < n; ++k) y[k] = x[k] > 0.0f ? x[k] : alpha * x[k];
            break;
        case Activation::Sigmoid:
            MF_PARALLEL_FOR_IF(n >= MIN_PARALLEL_ELEMS)(long k = 0; k < n; ++k) y[k] = 1.0f / (1.0f + std::exp(-x[k]));
            break;
        case Activation::Tanh:
            MF_PARALLEL_FOR_IF(n >= MIN_PARALLEL_ELEMS)(long k = 0; k < n; ++k) y[k] = std::tanh(x[k]);
            break;
    }
}

void activation_backward(Activation f, const float* dy, const float* y, float* dx, long n, float alpha) {
    switch (f) {
        case Activation::Relu:
            MF_PARALLEL_FOR_IF(n >= MIN_PARALLEL_ELEMS)(long k = 0; k < n; ++k) dx[k] = y[k] > 0.0f ? dy[k] : 0.0f;
            break;
        case Activation::LeakyRelu:
            MF_PARALLEL_FOR_IF(n >= MIN_PARALLEL_ELEMS)(long k = 0; k < n; ++k) dx[k] = y[k] > 0.0f ? dy[k] : alpha * dy[k];
            break;
        case Activation::Sigmoid:
            MF_PARALLEL_FOR_IF(n >= MIN_PARALLEL_ELEMS)(long k = 0; k < n; ++k) dx[k] = dy[k] * y[k] * (1.0f - y[k]);
            break;
        case Activation::Tanh:
            MF_PARALLEL_FOR_IF(n >= MIN_PARALLEL_ELEMS)(long k = 0; k < n; ++k) dx[k] = dy[k] * (1.0f - y[k] * y[k]);
            break;
    }
}

void dropout(const float* x, float* y, long n, uint32_t threshold, float scale, uint64_t seed, uint64_t step) {
    const uint64_t key = dropout_key(seed, step);
    MF_PARALLEL_FOR_IF(n >= MIN_PARALLEL_ELEMS)(long k = 0; k < n; ++k)
        y[k] = dropout_bits(key, static_cast<uint64_t>(k)) >= threshold ? x[k] * scale : 0.0f;
}

void batched_transpose(const float* x, int B, int R, int S, float* out) {
    constexpr int TILE = 32;  // square tiles keep both the reads and the writes in cache lines
    const long plane = static_cast<long>(R) * S;
    MF_PARALLEL_FOR_IF(B * plane >= MIN_PARALLEL_ELEMS)(int b = 0; b < B; ++b) {
        const float* src = x + b * plane;
        float* dst = out + b * plane;
        for (int r0 = 0; r0 < R; r0 += TILE)
            for (int s0 = 0; s0 < S; s0 += TILE)
                for (int r = r0; r < std::min(R, r0 + TILE); ++r)
                    for (int s = s0; s < std::min(S, s0 + TILE); ++s) dst[static_cast<long>(s) * R + r] = src[static_cast<long>(r) * S + s];
    }
}

}  // namespace mf
