// Elementwise kernels: activations, counter-based dropout, and the batched transpose that moves
// images between the API's NCHW and the kernels' NHWC.
#pragma once

#include <cstdint>

namespace mf {

enum class Activation { Relu = 0, LeakyRelu = 1, Sigmoid = 2, Tanh = 3 };

// y = f(x). LeakyRelu: x > 0 ? x : alpha * x.
void activation_forward(Activation f, const float* x, float* y, long n, float alpha);
// dx = dy * f'(x), written from the forward output y (for alpha >= 0, y > 0 exactly where x > 0).
// dx may alias dy.
void activation_backward(Activation f, const float* dy, const float* y, float* dx, long n, float alpha);

// The dropout generator: element k of a tensor at training step `step` of a layer seeded with
// `seed` is kept iff dropout_bits(seed, step, k) >= rate * 2^24. SplitMix64 of a counter: every
// backend computes the same bits, so runs compare across backends, and the backward pass
// regenerates the mask instead of storing it.
inline uint64_t splitmix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
inline uint64_t dropout_key(uint64_t seed, uint64_t step) { return splitmix64(seed ^ splitmix64(step)); }
inline uint32_t dropout_bits(uint64_t key, uint64_t k) { return static_cast<uint32_t>(splitmix64(key + k) >> 40); }

// y[k] = kept(k) ? x[k] * scale : 0, with threshold = round(rate * 2^24) and scale = 1 / (1 - rate).
// The backward pass is the same call on dy. y may alias x.
void dropout(const float* x, float* y, long n, uint32_t threshold, float scale, uint64_t seed, uint64_t step);

// out[b, s, r] = x[b, r, s] for x of shape (B, R, S).
void batched_transpose(const float* x, int B, int R, int S, float* out);

}  // namespace mf
