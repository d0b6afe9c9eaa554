"""The pure-NumPy reference: the ground truth every other backend is tested against.

Written to be obviously right rather than fast. Runs in any float dtype, float64 included (used
for the finite-difference gradient checks). Like the compiled kernels it checks every argument's
dtype and shape and raises a ValueError or TypeError naming it: NumPy would otherwise broadcast
a wrong-shaped argument silently.
"""

from __future__ import annotations

import math

import numpy as np

from .base import Backend, activation_code, conv_geometry, shape_str

# The counter-based dropout generator (SplitMix64), the same as csrc/elementwise.hpp.
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

    # -- argument checks --------------------------------------------------------------------------
    def _arr(self, fn, name, a, ndim=None, shape=None, dtype=None, writable=False):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{fn}: {name} must be a numpy array, got {type(a).__name__}")
        want = self.dtype if dtype is None else np.dtype(dtype)
        if a.dtype != want:
            raise TypeError(f"{fn}: {name} must have dtype {want}, got {a.dtype}")
        if ndim is not None and a.ndim != ndim:
            raise ValueError(f"{fn}: {name} must be {ndim}-D, got shape {shape_str(a.shape)}")
        if shape is not None and a.shape != tuple(shape):
            raise ValueError(f"{fn}: {name} has shape {shape_str(a.shape)}, expected {shape_str(shape)}")
        if writable and not a.flags.writeable:
            raise ValueError(f"{fn}: {name} is read-only")
        return a

    # -- dense ------------------------------------------------------------------------------------
    def _gemm(self, a, b, out, trans_a, trans_b, alpha, beta):
        self._arr("gemm", "a", a, 2)
        self._arr("gemm", "b", b, 2)
        A, B = (a.T if trans_a else a), (b.T if trans_b else b)
        if A.shape[1] != B.shape[0]:
            raise ValueError(f"gemm: inner dimensions differ: op(a) is {shape_str(A.shape)} but op(b) is {shape_str(B.shape)}")
        self._arr("gemm", "out", out, shape=(A.shape[0], B.shape[1]), writable=True)
        prod = A @ B
        out[...] = alpha * prod if beta == 0.0 else alpha * prod + beta * out
        return out

    def linear_forward(self, x, w, b, out, relu=False):
        x = self._arr("linear_forward", "x", x, 2)
        self._arr("linear_forward", "w", w, shape=(x.shape[1], w.shape[-1]))
        self._arr("linear_forward", "b", b, shape=(w.shape[1],))
        self._arr("linear_forward", "out", out, shape=(x.shape[0], w.shape[1]), writable=True)
        out[...] = x @ w + b
        if relu:
            np.maximum(out, 0, out=out)
        return out

    def linear_backward_input(self, dy, w, y, out):
        dy = self._arr("linear_backward_input", "dy", dy, 2)
        self._arr("linear_backward_input", "w", w, shape=(w.shape[0], dy.shape[1]))
        self._arr("linear_backward_input", "out", out, shape=(dy.shape[0], w.shape[0]), writable=True)
        out[...] = dy @ w.T
        if y is not None:
            self._arr("linear_backward_input", "y", y, shape=out.shape)
            out *= y > 0
        return out

    def linear_weight_grad(self, x, dy, dw, db, alpha=1.0, beta=0.0):
        fn = "linear_weight_grad"
        x = self._arr(fn, "x", x, 2)
        dy = self._arr(fn, "dy", dy, 2)
        self._arr(fn, "dy", dy, shape=(x.shape[0], dy.shape[1]))
        self._arr(fn, "dw", dw, shape=(x.shape[1], dy.shape[1]), writable=True)
        self._arr(fn, "db", db, shape=(dy.shape[1],), writable=True)
        self._gemm(x, dy, dw, True, False, alpha, beta)
        grad_b = dy.sum(axis=0)
        db[...] = alpha * grad_b if beta == 0 else alpha * grad_b + beta * db

    def relu_backward(self, dy, y, out):
        self._arr("relu_backward", "y", y, shape=dy.shape)
        self._arr("relu_backward", "out", out, shape=dy.shape, writable=True)
        np.multiply(dy, y > 0, out=out)
        return out

    def bias_grad(self, dy, out):
        dy = self._arr("bias_grad", "dy", dy, 2)
        self._arr("bias_grad", "out", out, shape=(dy.shape[1],), writable=True)
        np.sum(dy, axis=0, out=out)
        return out

    def softmax_xent(self, logits, labels, dlogits=None):
        logits = self._arr("softmax_xent", "logits", logits, 2)
        rows, cols = logits.shape
        if rows == 0 or cols == 0:
            raise ValueError(f"softmax_xent: logits is empty, shape {shape_str(logits.shape)}")
        self._arr("softmax_xent", "labels", labels, shape=(rows,), dtype=np.int64)
        if labels.min() < 0 or labels.max() >= cols:
            bad = int(np.argmax((labels < 0) | (labels >= cols)))
            raise ValueError(f"softmax_xent: labels[{bad}] = {labels[bad]} is out of range for {cols} classes")
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_sum = np.log(np.exp(shifted).sum(axis=1))
        picked = shifted[np.arange(rows), labels]
        loss = float(np.mean(log_sum - picked))
        correct = int(np.count_nonzero(logits.argmax(axis=1) == labels))
        if dlogits is not None:
            self._arr("softmax_xent", "dlogits", dlogits, shape=logits.shape, writable=True)
            probs = np.exp(shifted - log_sum[:, None])
            probs[np.arange(rows), labels] -= 1.0
            np.divide(probs, rows, out=dlogits)
        return loss, correct

    def take_rows(self, src, idx, out):
        src = self._arr("take_rows", "src", src, 2)
        self._arr("take_rows", "idx", idx, 1, dtype=np.int64)
        self._arr("take_rows", "out", out, shape=(len(idx), src.shape[1]), writable=True)
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

    def conv2d_forward(self, x, w, b, out, kernel, stride, padding, relu=False):
        fn = "conv2d_forward"
        x = self._arr(fn, "x", x, 4)
        n, h, wd, c = x.shape
        out = self._arr(fn, "out", out, 4, writable=True)
        _, oh, ow, f = out.shape
        if out.shape[0] != n:
            raise ValueError(f"{fn}: out has shape {shape_str(out.shape)} for {n} images")
        geom = conv_geometry(fn, h, wd, oh, ow, kernel, stride, padding)
        kh, kw = geom[:2]
        self._arr(fn, "w", w, shape=(kh * kw * c, f))
        if b is not None:
            self._arr(fn, "b", b, shape=(f,))
        cols = self._patches(x, oh, ow, *geom).reshape(n * oh * ow, kh * kw * c)
        y = cols @ w + (0 if b is None else b)
        out[...] = (np.maximum(y, 0) if relu else y).reshape(out.shape)
        return out

    def conv2d_backward(self, dy, x, w, dw, db, dx, kernel, stride, padding):
        fn = "conv2d_backward"
        x = self._arr(fn, "x", x, 4)
        n, h, wd, c = x.shape
        dy = self._arr(fn, "dy", dy, 4)
        _, oh, ow, f = dy.shape
        geom = conv_geometry(fn, h, wd, oh, ow, kernel, stride, padding)
        kh, kw, sh, sw, ph, pw, pb, pr = geom
        self._arr(fn, "dy", dy, shape=(n, oh, ow, f))
        self._arr(fn, "w", w, shape=(kh * kw * c, f))
        self._arr(fn, "dw", dw, shape=w.shape, writable=True)
        dy2 = dy.reshape(-1, f)
        dw[...] = self._patches(x, oh, ow, *geom).reshape(-1, kh * kw * c).T @ dy2
        if db is not None:
            self._arr(fn, "db", db, shape=(f,), writable=True)
            db[...] = dy2.sum(axis=0)
        if dx is None:
            return
        self._arr(fn, "dx", dx, shape=x.shape, writable=True)
        g = (dy2 @ w.T).reshape(n, oh, ow, kh, kw, c)  # col2im: each patch entry back to its pixel
        dxp = np.zeros((n, h + ph + pb, wd + pw + pr, c), dtype=dx.dtype)
        for ky in range(kh):
            for kx in range(kw):
                dxp[:, ky : ky + sh * (oh - 1) + 1 : sh, kx : kx + sw * (ow - 1) + 1 : sw, :] += g[:, :, :, ky, kx, :]
        dx[...] = dxp[:, ph : ph + h, pw : pw + wd, :]

    # -- pooling ----------------------------------------------------------------------------------
    def maxpool_forward(self, x, out, argmax, pool):
        fn = "maxpool_forward"
        x = self._arr(fn, "x", x, 4)
        n, h, w, c = x.shape
        if pool < 1 or h < pool or w < pool:
            raise ValueError(f"{fn}: pool {pool} does not fit x {shape_str(x.shape)}")
        oh, ow = h // pool, w // pool
        self._arr(fn, "out", out, shape=(n, oh, ow, c), writable=True)
        self._arr(fn, "argmax", argmax, shape=(n, oh, ow, c), dtype=np.int32, writable=True)
        win = x[:, : oh * pool, : ow * pool].reshape(n, oh, pool, ow, pool, c).transpose(0, 1, 3, 5, 2, 4)
        win = win.reshape(n, oh, ow, c, pool * pool)
        k = win.argmax(axis=-1)  # the first maximum in row-major window order
        out[...] = np.take_along_axis(win, k[..., None], axis=-1)[..., 0]
        oy = np.arange(oh)[None, :, None, None]
        ox = np.arange(ow)[None, None, :, None]
        ch = np.arange(c)[None, None, None, :]
        argmax[...] = ((oy * pool + k // pool) * w + ox * pool + k % pool) * c + ch
        return out

    def maxpool_backward(self, dy, argmax, out, dx, pool, relu_mask=False):
        fn = "maxpool_backward"
        dx = self._arr(fn, "dx", dx, 4, writable=True)
        n, h, w, c = dx.shape
        pooled = (n, h // pool, w // pool, c)
        self._arr(fn, "dy", dy, shape=pooled)
        self._arr(fn, "argmax", argmax, shape=pooled, dtype=np.int32)
        self._arr(fn, "out", out, shape=pooled)
        if argmax.size and (argmax.min() < 0 or argmax.max() >= h * w * c):
            raise ValueError(f"{fn}: argmax has entries outside an image of {h * w * c} elements")
        g = dy * (out > 0) if relu_mask else dy
        flat = np.zeros((n, h * w * c), dtype=dx.dtype)
        flat[np.arange(n)[:, None], argmax.reshape(n, -1)] = g.reshape(n, -1)
        dx[...] = flat.reshape(dx.shape)
        return dx

    def global_avgpool_forward(self, x, out):
        x = self._arr("global_avgpool_forward", "x", x, 4)
        self._arr("global_avgpool_forward", "out", out, shape=(x.shape[0], x.shape[3]), writable=True)
        out[...] = x.mean(axis=(1, 2))
        return out

    def global_avgpool_backward(self, dy, dx):
        dx = self._arr("global_avgpool_backward", "dx", dx, 4, writable=True)
        n, h, w, c = dx.shape
        self._arr("global_avgpool_backward", "dy", dy, shape=(n, c))
        dx[...] = np.broadcast_to(dy[:, None, None, :] / (h * w), dx.shape)
        return dx

    # -- batch norm -------------------------------------------------------------------------------
    def batchnorm_forward_train(self, x, gamma, beta, y, save_mean, save_invstd, running_mean, running_var, eps,
                                momentum):
        x = self._bn_check("batchnorm_forward_train", x, gamma=gamma, beta=beta, save_mean=save_mean,
                           save_invstd=save_invstd, running_mean=running_mean, running_var=running_var)
        self._arr("batchnorm_forward_train", "y", y, shape=x.shape, writable=True)
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

    def batchnorm_forward_infer(self, x, gamma, beta, running_mean, running_var, y, eps):
        x = self._bn_check("batchnorm_forward_infer", x, gamma=gamma, beta=beta, running_mean=running_mean,
                           running_var=running_var)
        self._arr("batchnorm_forward_infer", "y", y, shape=x.shape, writable=True)
        y[...] = gamma * (x - running_mean) / np.sqrt(running_var + eps) + beta
        return y

    def batchnorm_backward(self, dy, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta):
        x = self._bn_check("batchnorm_backward", x, gamma=gamma, save_mean=save_mean, save_invstd=save_invstd,
                           dgamma=dgamma, dbeta=dbeta)
        self._arr("batchnorm_backward", "dy", dy, shape=x.shape)
        self._arr("batchnorm_backward", "dx", dx, shape=x.shape, writable=True)
        r = x.shape[0]
        xhat = (x - save_mean) * save_invstd
        dgamma[...] = (dy * xhat).sum(axis=0)
        dbeta[...] = dy.sum(axis=0)
        dx[...] = gamma * save_invstd * (dy - dbeta / r - xhat * dgamma / r)

    # -- elementwise ------------------------------------------------------------------------------
    def activation_forward(self, x, y, kind, alpha=0.0):
        activation_code("activation_forward", kind, alpha)
        self._arr("activation_forward", "x", x)
        self._arr("activation_forward", "y", y, shape=x.shape, writable=True)
        if kind == "relu":
            y[...] = np.maximum(x, 0)
        elif kind == "leaky_relu":
            y[...] = np.where(x > 0, x, alpha * x)
        elif kind == "sigmoid":
            y[...] = 1.0 / (1.0 + np.exp(-x))
        else:
            y[...] = np.tanh(x)
        return y

    def activation_backward(self, dy, y, dx, kind, alpha=0.0):
        activation_code("activation_backward", kind, alpha)
        self._arr("activation_backward", "dy", dy)
        self._arr("activation_backward", "y", y, shape=dy.shape)
        self._arr("activation_backward", "dx", dx, shape=dy.shape, writable=True)
        if kind == "relu":
            dx[...] = dy * (y > 0)
        elif kind == "leaky_relu":
            dx[...] = np.where(y > 0, dy, alpha * dy)
        elif kind == "sigmoid":
            dx[...] = dy * y * (1 - y)
        else:
            dx[...] = dy * (1 - y * y)
        return dx

    def dropout(self, x, y, rate, seed, step):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout: rate must be in [0, 1), got {rate}")
        self._arr("dropout", "x", x)
        self._arr("dropout", "y", y, shape=x.shape, writable=True)
        keep = dropout_keep_mask(x.size, rate, seed, step).reshape(x.shape)
        # The scale is rounded to the working dtype once, as the kernels do.
        y[...] = np.where(keep, x * x.dtype.type(np.float32(1.0 / (1.0 - rate))), 0)
        return y

    def batched_transpose(self, x, out):
        x = self._arr("batched_transpose", "x", x, 3)
        self._arr("batched_transpose", "out", out, shape=(x.shape[0], x.shape[2], x.shape[1]), writable=True)
        out[...] = x.transpose(0, 2, 1)
        return out

    def affine_warp(self, x, params, out):
        """out[n] = x[n] resampled at A (p - c) + c + t for every output pixel p (bilinear, zero
        outside), with params[n] = (A00, A01, A10, A11, tx, ty) and c the image centre."""
        x = self._arr("affine_warp", "x", x, 4)
        self._arr("affine_warp", "params", params, shape=(x.shape[0], 6))
        self._arr("affine_warp", "out", out, shape=x.shape, writable=True)
        if not np.all(np.isfinite(params)) or np.abs(params).max(initial=0) > 1e6:
            raise ValueError("affine_warp: params holds a non-finite or huge value")
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

    def sgd_step(self, param, grad, velocity, lr, momentum, nesterov, weight_decay, grad_scale, clip_value):
        self._arr("sgd_step", "param", param, 1, writable=True)
        self._arr("sgd_step", "grad", grad, shape=param.shape)
        g = self._prep_grad(grad, grad_scale, clip_value) + weight_decay * param
        if momentum != 0:
            self._arr("sgd_step", "velocity", velocity, shape=param.shape, writable=True)
            velocity[...] = momentum * velocity + g
            g = g + momentum * velocity if nesterov else velocity
        param -= lr * g

    def adam_step(self, param, grad, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step, grad_scale,
                  clip_value):
        for name, a in (("param", param), ("grad", grad), ("m", m), ("v", v)):
            self._arr("adam_step", name, a, 1, shape=param.shape)
        if step < 1:
            raise ValueError(f"adam_step: step counts from 1, got {step}")
        g = self._prep_grad(grad, grad_scale, clip_value)
        if not decoupled:
            g = g + weight_decay * param
        m[...] = beta1 * m + (1 - beta1) * g
        v[...] = beta2 * v + (1 - beta2) * g * g
        bias1, bias2 = 1 - beta1**step, 1 - beta2**step
        if decoupled:
            param *= 1 - lr * weight_decay
        param -= (lr / bias1) * m / (np.sqrt(v) / math.sqrt(bias2) + eps)

    def sum_squares(self, x):
        self._arr("sum_squares", "x", x, 1)
        return float(np.sum(np.square(x, dtype=np.float64)))
