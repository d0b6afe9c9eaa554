// Batch normalization over the rows of x (R, C): per feature for (N, C) inputs, per channel for
// channels-last images viewed as (N*H*W, C).
#pragma once

namespace mf {

struct BatchNormArgs {
    int R, C;
    float eps;
    float momentum;  // running = (1 - momentum) * running + momentum * batch statistic
};

// Training: normalize with the batch mean and (biased) variance, y = gamma * xhat + beta; saves
// mean and 1/sqrt(var + eps) for the backward pass and updates the running mean and the
// (unbiased) running variance, as PyTorch does.
void batchnorm_forward_train(const float* x, const float* gamma, const float* beta, const BatchNormArgs& a, float* y,
                             float* save_mean, float* save_invstd, float* running_mean, float* running_var);

// Inference: y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta.
void batchnorm_forward_infer(const float* x, const float* gamma, const float* beta, const float* running_mean,
                             const float* running_var, const BatchNormArgs& a, float* y);

// dgamma = sum(dy * xhat), dbeta = sum(dy), dx = gamma * invstd * (dy - dbeta/R - xhat * dgamma/R).
void batchnorm_backward(const float* dy, const float* x, const float* gamma, const float* save_mean,
                        const float* save_invstd, const BatchNormArgs& a, float* dx, float* dgamma, float* dbeta);

}  // namespace mf
