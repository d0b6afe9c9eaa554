// Optimizer updates, each one pass over a flat parameter buffer (all of a model's parameters
// live in one buffer, so a step is one call). The gradient goes through the same preprocessing
// everywhere: g = clip(grad * grad_scale, -clip_value, clip_value) (clip_value <= 0: no clipping);
// grad_scale carries clipping by global norm.
#pragma once

#include <cmath>

namespace mf {

struct GradPrep {
    float grad_scale = 1.0f;
    float clip_value = 0.0f;
    inline float operator()(float g) const {
        // Branch-free (an infinite bound when not clipping), so the update loops vectorize; NaN stays NaN.
        const float c = clip_value > 0.0f ? clip_value : INFINITY;
        g *= grad_scale;
        g = g < -c ? -c : g;
        return g > c ? c : g;
    }
};

// PyTorch's SGD: g += weight_decay * p; v = momentum * v + g; g = nesterov ? g + momentum * v : v;
// p -= lr * g. velocity may be null when momentum == 0.
void sgd_step(float* p, const float* grad, float* velocity, long n, float lr, float momentum, bool nesterov,
              float weight_decay, GradPrep prep);

// Adam (decoupled = false: weight decay added to the gradient) and AdamW (decoupled = true:
// p -= lr * weight_decay * p). bias1 = 1 - beta1^t and bias2 = 1 - beta2^t for the step t.
void adam_step(float* p, const float* grad, float* m, float* v, long n, float lr, float beta1, float beta2, float eps,
               float weight_decay, bool decoupled, double bias1, double bias2, GradPrep prep);

// sum of g[k]^2 in double, in fixed chunks: the same for every thread count.
double sum_squares(const float* g, long n);

}  // namespace mf
