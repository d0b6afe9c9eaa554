"""One-pass kernels over flat arrays: activations, ReLU masks, dropout, row gathers, transposes
and the optimizer updates. Each thread handles the elements ``i = start, start + stride, ...``."""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32, uint64

from ..contract import ACTIVATIONS
from .launch import launcher, run

# Activation codes shared with CudaBackend.
RELU, LEAKY_RELU, SIGMOID, TANH = 0, 1, 2, 3


@cuda.jit("void(float32[::1], float32[::1], int32, float32)")
def activation_forward(x, y, kind, alpha):
    zero, one = float32(0.0), float32(1.0)
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        if kind == RELU:
            y[i] = v if v > zero else zero
        elif kind == LEAKY_RELU:
            y[i] = v if v > zero else alpha * v
        elif kind == SIGMOID:
            y[i] = one / (one + math.exp(-v))
        else:
            y[i] = math.tanh(v)


@cuda.jit("void(float32[::1], float32[::1], float32[::1], int32, float32)")
def activation_backward(dy, y, dx, kind, alpha):
    zero, one = float32(0.0), float32(1.0)
    for i in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
        g, v = dy[i], y[i]
        if kind == RELU:
            dx[i] = g if v > zero else zero
        elif kind == LEAKY_RELU:
            dx[i] = g if v > zero else alpha * g
        elif kind == SIGMOID:
            dx[i] = g * v * (one - v)
        else:
            dx[i] = g * (one - v * v)


# SplitMix64, bit for bit the generator of csrc/elementwise/elementwise.hpp and the numpy reference.
GOLDEN, MIX1, MIX2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


@cuda.jit("uint64(uint64)", device=True)
def splitmix64(z):
    z = z + GOLDEN
    z = (z ^ (z >> uint64(30))) * MIX1
    z = (z ^ (z >> uint64(27))) * MIX2
    return z ^ (z >> uint64(31))


@cuda.jit("void(float32[::1], float32[::1], uint64, uint64, float32)")
def dropout(x, y, key, threshold, scale):
    """Keep element i where the top 24 bits of splitmix64(key + i) reach ``threshold``."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        bits = splitmix64(key + uint64(i)) >> uint64(40)
        y[i] = x[i] * scale if bits >= threshold else float32(0.0)


def dropout_key(seed: int, step: int) -> int:
    """The per-step key, mixed on the host exactly as the kernels of the other backends do."""
    with np.errstate(over="ignore"):
        z = np.uint64(step) + GOLDEN
        z = (z ^ (z >> np.uint64(30))) * MIX1
        z = (z ^ (z >> np.uint64(27))) * MIX2
        mixed = z ^ (z >> np.uint64(31))
        z = (np.uint64(seed) ^ mixed) + GOLDEN
        z = (z ^ (z >> np.uint64(30))) * MIX1
        z = (z ^ (z >> np.uint64(27))) * MIX2
        return int(z ^ (z >> np.uint64(31)))


@cuda.jit("void(float32[:, ::1], int64[::1], float32[:, ::1])")
def take_rows(src, idx, out):
    cols = out.shape[1]
    for e in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        r = e // cols
        out[r, e - r * cols] = src[idx[r], e - r * cols]


@cuda.jit("void(int64[::1], int64[::1], int64[::1])")
def take_labels(src, idx, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = src[idx[i]]


@cuda.jit("void(float32[:, :, ::1], float32[:, :, ::1])")
def batched_transpose(x, out):
    """out[b, j, i] = x[b, i, j]; consecutive threads write consecutive ``out`` elements."""
    rows, cols = x.shape[1], x.shape[2]
    plane = rows * cols
    for e in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        b = e // plane
        r = e - b * plane
        j = r // rows
        i = r - j * rows
        out[b, j, i] = x[b, i, j]


@cuda.jit("float32(float32, float32, float32)", device=True)
def prep_grad(g, grad_scale, clip_value):
    g = g * grad_scale
    if clip_value > float32(0.0):
        g = min(max(g, -clip_value), clip_value)
    return g


@cuda.jit("void(float32[::1], float32[::1], float32[::1], float32, float32, int32, float32, float32, float32)")
def sgd_step(p, grad, velocity, lr, momentum, nesterov, weight_decay, grad_scale, clip_value):
    for k in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        g = prep_grad(grad[k], grad_scale, clip_value) + weight_decay * p[k]
        if momentum != float32(0.0):
            v = momentum * velocity[k] + g
            velocity[k] = v
            g = g + momentum * v if nesterov else v
        p[k] -= lr * g


@cuda.jit("void(float32[::1], float32[::1], float32[::1], float32[::1], float32, float32, float32, float32, float32, "
          "float32, float32, float32, float32)")
def adam_step(p, grad, m, v, step_size, beta1, beta2, eps, inv_sqrt_bias2, decay, l2, grad_scale, clip_value):
    """PyTorch's arithmetic: p = p * decay - step_size * m / (sqrt(v) * inv_sqrt_bias2 + eps)."""
    one = float32(1.0)
    for k in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        g = prep_grad(grad[k], grad_scale, clip_value) + l2 * p[k]
        mk = beta1 * m[k] + (one - beta1) * g
        vk = beta2 * v[k] + (one - beta2) * g * g
        m[k] = mk
        v[k] = vk
        p[k] = p[k] * decay - step_size * mk / (math.sqrt(vk) * inv_sqrt_bias2 + eps)


@cuda.jit("void(float32[:, ::1], float32[::1], float32[::1], float32[::1], float32[::1], float32[:, ::1], float32, "
          "int32)")
def batchnorm_apply(x, gamma, beta, mean, spread, y, eps, spread_is_var):
    """y = gamma * (x - mean) * invstd + beta, invstd = spread (training: the saved 1/std) or
    1 / sqrt(spread + eps) (inference: spread is the running variance)."""
    cols = x.shape[1]
    for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        r = e // cols
        c = e - r * cols
        invstd = float32(1.0) / math.sqrt(spread[c] + eps) if spread_is_var else spread[c]
        y[r, c] = gamma[c] * (x[r, c] - mean[c]) * invstd + beta[c]


@cuda.jit("void(float32[:, ::1], float32[:, ::1], float32[::1], float32[::1], float32[::1], float32[::1], "
          "float32[::1], float32[:, ::1])")
def batchnorm_input_grad(dy, x, gamma, save_mean, save_invstd, dgamma, dbeta, dx):
    """dx = gamma * invstd * (dy - dbeta / rows - xhat * dgamma / rows)."""
    rows, cols = x.shape[0], x.shape[1]
    inv_rows = float32(1.0) / float32(rows)
    for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        r = e // cols
        c = e - r * cols
        xhat = (x[r, c] - save_mean[c]) * save_invstd[c]
        dx[r, c] = gamma[c] * save_invstd[c] * (dy[r, c] - dbeta[c] * inv_rows - xhat * dgamma[c] * inv_rows)


# -- the contract's kernels ---------------------------------------------------------------------------
def _flat(a):
    return a.reshape(int(np.prod(a.shape, dtype=np.int64)))


@launcher("relu_backward")
def _relu_backward(be, dy, y, out):
    return be.activation_backward(dy, y, out, "relu")


@launcher("take_rows")
def _take_rows(be, src, idx, out):
    run(take_rows, out.shape[0] * out.shape[1], src, idx, out)
    return out


@launcher("batchnorm_forward_infer")
def _batchnorm_forward_infer(be, x, gamma, beta, running_mean, running_var, y, eps):
    run(batchnorm_apply, x.shape[0] * x.shape[1], x, gamma, beta, running_mean, running_var, y, eps, 1)
    return y


@launcher("activation_forward")
def _activation_forward(be, x, y, kind, alpha=0.0):
    run(activation_forward, int(np.prod(x.shape)), _flat(x), _flat(y), ACTIVATIONS.index(kind), alpha)
    return y


@launcher("activation_backward")
def _activation_backward(be, dy, y, dx, kind, alpha=0.0):
    run(activation_backward, int(np.prod(dy.shape)), _flat(dy), _flat(y), _flat(dx), ACTIVATIONS.index(kind), alpha)
    return dx


@launcher("dropout")
def _dropout(be, x, y, rate, seed, step):
    key = dropout_key(int(seed), int(step))
    threshold = round(rate * 2**24)
    scale = float(np.float32(1.0 / (1.0 - rate)))
    run(dropout, int(np.prod(x.shape)), _flat(x), _flat(y), key, threshold, scale)
    return y


@launcher("batched_transpose")
def _batched_transpose(be, x, out):
    run(batched_transpose, int(np.prod(x.shape)), x, out)
    return out


@launcher("sgd_step")
def _sgd_step(be, param, grad, velocity, lr, momentum, nesterov, weight_decay, grad_scale, clip_value):
    run(sgd_step, param.shape[0], param, grad, be._no_vec if velocity is None else velocity, lr, momentum,
        int(bool(nesterov)), weight_decay, grad_scale, clip_value)


@launcher("adam_step")
def _adam_step(be, param, grad, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step, grad_scale, clip_value):
    # The bias corrections in double on the host, as the C++ kernel does.
    bias1, bias2 = 1.0 - beta1**step, 1.0 - beta2**step
    step_size = float(np.float32(lr / bias1))
    inv_sqrt_bias2 = float(np.float32(1.0 / math.sqrt(bias2)))
    decay = float(np.float32(1.0) - np.float32(lr) * np.float32(weight_decay)) if decoupled else 1.0
    l2 = 0.0 if decoupled else weight_decay
    run(adam_step, param.shape[0], param, grad, m, v, step_size, beta1, beta2, eps, inv_sqrt_bias2, decay, l2,
        grad_scale, clip_value)
