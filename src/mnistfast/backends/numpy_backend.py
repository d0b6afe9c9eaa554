"""The pure-NumPy reference: the ground truth every other backend is tested against.

Written to be obviously right rather than fast. Runs in any float dtype, float64 included (used
for the finite-difference gradient checks). Every kernel's arguments are checked against the
kernel contract (``contract.py``) before it runs: NumPy would otherwise broadcast a wrong-shaped
argument silently.
"""

from __future__ import annotations

import math

import numpy as np

from ..bf16 import round_to_bf16
from .base import Backend, checked
from .contract import conv_geometry

# The counter-based dropout generator (SplitMix64), the same as csrc/elementwise/elementwise.hpp.
_GOLDEN, _MIX1, _MIX2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _splitmix64(z):
    z = np.asarray(z, dtype=np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def dropout_keep_mask(n: int, rate: float, seed: int, step: int) -> np.ndarray:
    """Which of ``n`` elements dropout keeps at ``step`` for a layer seeded with ``seed``."""
    with np.errstate(over="ignore"):
        key = _splitmix64(np.uint64(seed) ^ _splitmix64(np.uint64(step)))
        bits = _splitmix64(key + np.arange(n, dtype=np.uint64)) >> np.uint64(40)
    return bits >= np.uint64(round(rate * 2**24))


class NumpyBackend(Backend):
    name = "numpy"

    def __init__(self, dtype=np.float32):
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise ValueError(f"numpy backend: dtype must be a float type, got {self.dtype}")

    # -- precision (mnistfast.precision) ---------------------------------------------------------
    bf16_support = "emulated"  # in any float dtype: float64 sums the rounded operands' products exactly

    def _use_precision(self, precision: str) -> None:
        pass  # _mm reads self.precision

    def _mm(self, a, b):
        """The matrix product of every GEMM-shaped kernel: in bf16, of the operands rounded to bf16
        (their products are exact in float32), summed in the backend's dtype."""
        if self.precision == "bf16":
            return round_to_bf16(a).astype(self.dtype) @ round_to_bf16(b).astype(self.dtype)
        return a @ b

    # -- dense ------------------------------------------------------------------------------------
    @checked("gemm")
    def _gemm(self, a, b, out, trans_a, trans_b, alpha, beta):
        A, B = (a.T if trans_a else a), (b.T if trans_b else b)
        prod = self._mm(A, B)
        out[...] = alpha * prod if beta == 0.0 else alpha * prod + beta * out
        return out

    @checked()
    def linear_forward(self, x, w, b, out, relu=False):
        out[...] = self._mm(x, w) + b
        if relu:
            np.maximum(out, 0, out=out)
        return out

    @checked()
    def linear_backward_input(self, dy, w, y, out):
        out[...] = self._mm(dy, w.T)
        if y is not None:
            out *= y > 0
        return out

    @checked()
    def linear_weight_grad(self, x, dy, dw, db, alpha=1.0, beta=0.0):
        self._gemm(x, dy, dw, True, False, alpha, beta)
        grad_b = dy.sum(axis=0)
        db[...] = alpha * grad_b if beta == 0 else alpha * grad_b + beta * db

    @checked()
    def relu_backward(self, dy, y, out):
        np.multiply(dy, y > 0, out=out)
        return out

    @checked()
    def bias_grad(self, dy, out):
        np.sum(dy, axis=0, out=out)
        return out

    @checked()
    def softmax_xent(self, logits, labels, dlogits=None):
        rows = logits.shape[0]
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_sum = np.log(np.exp(shifted).sum(axis=1))
        picked = shifted[np.arange(rows), labels]
        loss = float(np.mean(log_sum - picked))
        correct = int(np.count_nonzero(logits.argmax(axis=1) == labels))
        if dlogits is not None:
            probs = np.exp(shifted - log_sum[:, None])
            probs[np.arange(rows), labels] -= 1.0
            np.divide(probs, rows, out=dlogits)
        return loss, correct

    @checked()
    def take_rows(self, src, idx, out):
        np.take(src, idx, axis=0, out=out)
        return out

    # -- convolution ------------------------------------------------------------------------------
    def _patches(self, x, oh, ow, kh, kw, sh, sw, ph, pw, pb, pr):
        """im2col: (n, oh, ow, kh, kw, c), the input window of every output pixel (zeros outside)."""
        n, c = x.shape[0], x.shape[3]
        xp = np.pad(x, ((0, 0), (ph, pb), (pw, pr), (0, 0)))
        patches = np.empty((n, oh, ow, kh, kw, c), dtype=x.dtype)
        for ky in range(kh):
            for kx in range(kw):
                patches[:, :, :, ky, kx, :] = xp[:, ky : ky + sh * (oh - 1) + 1 : sh, kx : kx + sw * (ow - 1) + 1 : sw, :]
        return patches

    @checked()
    def conv2d_forward(self, x, w, b, out, kernel, stride, padding, relu=False):
        n, h, wd, c = x.shape
        _, oh, ow, f = out.shape
        geom = conv_geometry("conv2d_forward", h, wd, oh, ow, kernel, stride, padding)
        kh, kw = geom[:2]
        cols = self._patches(x, oh, ow, *geom).reshape(n * oh * ow, kh * kw * c)
        y = self._mm(cols, w) + (0 if b is None else b)
        out[...] = (np.maximum(y, 0) if relu else y).reshape(out.shape)
        return out

    @checked()
    def conv2d_backward(self, dy, x, w, dw, db, dx, kernel, stride, padding):
        n, h, wd, c = x.shape
        _, oh, ow, f = dy.shape
        geom = conv_geometry("conv2d_backward", h, wd, oh, ow, kernel, stride, padding)
        kh, kw, sh, sw, ph, pw, pb, pr = geom
        dy2 = dy.reshape(-1, f)
        dw[...] = self._mm(self._patches(x, oh, ow, *geom).reshape(-1, kh * kw * c).T, dy2)
        if db is not None:
            db[...] = dy2.sum(axis=0)
        if dx is None:
            return
        g = self._mm(dy2, w.T).reshape(n, oh, ow, kh, kw, c)  # col2im: each patch entry back to its pixel
        dxp = np.zeros((n, h + ph + pb, wd + pw + pr, c), dtype=dx.dtype)
        for ky in range(kh):
            for kx in range(kw):
                dxp[:, ky : ky + sh * (oh - 1) + 1 : sh, kx : kx + sw * (ow - 1) + 1 : sw, :] += g[:, :, :, ky, kx, :]
        dx[...] = dxp[:, ph : ph + h, pw : pw + wd, :]

    # -- pooling ----------------------------------------------------------------------------------
    @checked()
    def maxpool_forward(self, x, out, argmax, pool):
        n, h, w, c = x.shape
        oh, ow = h // pool, w // pool
        win = x[:, : oh * pool, : ow * pool].reshape(n, oh, pool, ow, pool, c).transpose(0, 1, 3, 5, 2, 4)
        win = win.reshape(n, oh, ow, c, pool * pool)
        k = win.argmax(axis=-1)  # the first maximum in row-major window order
        out[...] = np.take_along_axis(win, k[..., None], axis=-1)[..., 0]
        oy = np.arange(oh)[None, :, None, None]
        ox = np.arange(ow)[None, None, :, None]
        ch = np.arange(c)[None, None, None, :]
        argmax[...] = ((oy * pool + k // pool) * w + ox * pool + k % pool) * c + ch
        return out

    @checked()
    def maxpool_backward(self, dy, argmax, out, dx, pool, relu_mask=False):
        n, h, w, c = dx.shape
        g = dy * (out > 0) if relu_mask else dy
        flat = np.zeros((n, h * w * c), dtype=dx.dtype)
        flat[np.arange(n)[:, None], argmax.reshape(n, -1)] = g.reshape(n, -1)
        dx[...] = flat.reshape(dx.shape)
        return dx

    @checked()
    def global_avgpool_forward(self, x, out):
        out[...] = x.mean(axis=(1, 2))
        return out

    @checked()
    def global_avgpool_backward(self, dy, dx):
        n, h, w, c = dx.shape
        dx[...] = np.broadcast_to(dy[:, None, None, :] / (h * w), dx.shape)
        return dx

    # -- batch norm -------------------------------------------------------------------------------
    @checked()
    def batchnorm_forward_train(self, x, gamma, beta, y, save_mean, save_invstd, running_mean, running_var, eps,
                                momentum):
        r = x.shape[0]
        mean = x.mean(axis=0)
        var = ((x - mean) ** 2).mean(axis=0)
        invstd = 1.0 / np.sqrt(var + eps)
        y[...] = gamma * (x - mean) * invstd + beta
        save_mean[...] = mean
        save_invstd[...] = invstd
        unbiased = var * r / (r - 1) if r > 1 else var
        running_mean[...] = (1 - momentum) * running_mean + momentum * mean
        running_var[...] = (1 - momentum) * running_var + momentum * unbiased
        return y

    @checked()
    def batchnorm_forward_infer(self, x, gamma, beta, running_mean, running_var, y, eps):
        y[...] = gamma * (x - running_mean) / np.sqrt(running_var + eps) + beta
        return y

    @checked()
    def batchnorm_backward(self, dy, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta):
        r = x.shape[0]
        xhat = (x - save_mean) * save_invstd
        dgamma[...] = (dy * xhat).sum(axis=0)
        dbeta[...] = dy.sum(axis=0)
        dx[...] = gamma * save_invstd * (dy - dbeta / r - xhat * dgamma / r)

    # -- elementwise ------------------------------------------------------------------------------
    @checked()
    def activation_forward(self, x, y, kind, alpha=0.0):
        if kind == "relu":
            y[...] = np.maximum(x, 0)
        elif kind == "leaky_relu":
            y[...] = np.where(x > 0, x, alpha * x)
        elif kind == "sigmoid":
            y[...] = 1.0 / (1.0 + np.exp(-x))
        else:
            y[...] = np.tanh(x)
        return y

    @checked()
    def activation_backward(self, dy, y, dx, kind, alpha=0.0):
        if kind == "relu":
            dx[...] = dy * (y > 0)
        elif kind == "leaky_relu":
            dx[...] = np.where(y > 0, dy, alpha * dy)
        elif kind == "sigmoid":
            dx[...] = dy * y * (1 - y)
        else:
            dx[...] = dy * (1 - y * y)
        return dx

    @checked()
    def dropout(self, x, y, rate, seed, step):
        keep = dropout_keep_mask(x.size, rate, seed, step).reshape(x.shape)
        # The scale is rounded to the working dtype once, as the kernels do.
        y[...] = np.where(keep, x * x.dtype.type(np.float32(1.0 / (1.0 - rate))), 0)
        return y

    @checked()
    def batched_transpose(self, x, out):
        out[...] = x.transpose(0, 2, 1)
        return out

    @checked()
    def affine_warp(self, x, params, out):
        """out[n] = x[n] resampled at A (p - c) + c + t for every output pixel p (bilinear, zero
        outside), with params[n] = (A00, A01, A10, A11, tx, ty) and c the image centre."""
        n, h, w, c = x.shape
        v, u = np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing="ij")
        p = params.astype(np.float64)[:, :, None, None]
        sx = p[:, 0] * u + p[:, 1] * v + (w - 1) / 2 + p[:, 4]
        sy = p[:, 2] * u + p[:, 3] * v + (h - 1) / 2 + p[:, 5]
        x0, y0 = np.floor(sx), np.floor(sy)
        ax, ay = (sx - x0)[..., None], (sy - y0)[..., None]
        result = np.zeros(x.shape, dtype=np.float64)
        images = np.arange(n)[:, None, None]
        for dy, wy in ((0, 1 - ay), (1, ay)):
            for dx, wx in ((0, 1 - ax), (1, ax)):
                yy, xx = (y0 + dy).astype(np.int64), (x0 + dx).astype(np.int64)
                inside = ((yy >= 0) & (yy < h) & (xx >= 0) & (xx < w))[..., None]
                picked = x[images, np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)]
                result += np.where(inside, wy * wx * picked, 0.0)
        out[...] = result
        return out

    # -- optimizers -------------------------------------------------------------------------------
    def _prep_grad(self, grad, grad_scale, clip_value):
        g = grad * grad_scale
        return np.clip(g, -clip_value, clip_value) if clip_value > 0 else g

    @checked()
    def sgd_step(self, param, grad, velocity, lr, momentum, nesterov, weight_decay, grad_scale, clip_value):
        g = self._prep_grad(grad, grad_scale, clip_value) + weight_decay * param
        if momentum != 0:
            velocity[...] = momentum * velocity + g
            g = g + momentum * velocity if nesterov else velocity
        param -= lr * g

    @checked()
    def adam_step(self, param, grad, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step, grad_scale,
                  clip_value):
        g = self._prep_grad(grad, grad_scale, clip_value)
        if not decoupled:
            g = g + weight_decay * param
        m[...] = beta1 * m + (1 - beta1) * g
        v[...] = beta2 * v + (1 - beta2) * g * g
        bias1, bias2 = 1 - beta1**step, 1 - beta2**step
        if decoupled:
            param *= 1 - lr * weight_decay
        param -= (lr / bias1) * m / (np.sqrt(v) / math.sqrt(bias2) + eps)

    @checked()
    def sum_squares(self, x):
        return float(np.sum(np.square(x, dtype=np.float64)))
