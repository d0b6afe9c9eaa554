"""The interface every backend implements: arrays and kernels.

The backend owns its arrays. Model, layer and optimizer code holds them as opaque handles and only
passes them back to backend methods: allocation (``empty``, ``zeros``), moves between the host and
the backend (``to_device``, ``to_host``, ``copy_from_host``), views (``rows``, ``reshape``,
``split``) and kernels. Kernels write into caller-supplied buffers, so a training loop allocates
its workspaces once.

Layouts: row-major, C-contiguous. Images inside the model are channels-last ``(N, H, W, C)``;
the API's NCHW is converted on the host. Dense weights are ``(fan_in, fan_out)``, convolution
weights ``(KH * KW * C_in, C_out)`` (rows in (ky, kx, c) order).

This base class implements the array methods for backends whose arrays are NumPy arrays in host
memory (``numpy`` and ``cpp``); the kernels are the subclasses'.
"""

from __future__ import annotations

import math

import numpy as np


def shape_str(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def conv_geometry(fn, h, w, oh, ow, kernel, stride, padding):
    """Checked convolution geometry: (kh, kw, sh, sw, ph, pw, pad_bottom, pad_right), where the
    bottom/right padding is the zeros that make every window of the ``oh x ow`` output lie inside
    the padded image."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    if min(kh, kw, sh, sw) < 1 or ph < 0 or pw < 0 or ph >= kh or pw >= kw:
        raise ValueError(f"{fn}: bad kernel {kernel}, stride {stride} or padding {padding}")
    if oh < 1 or ow < 1 or (oh - 1) * sh - ph >= h or (ow - 1) * sw - pw >= w:
        raise ValueError(f"{fn}: output {oh}x{ow} has windows past the padded {h}x{w} input")
    pad_bottom = max(0, (oh - 1) * sh + kh - ph - h)
    pad_right = max(0, (ow - 1) * sw + kw - pw - w)
    return kh, kw, sh, sw, ph, pw, pad_bottom, pad_right


ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh")


def activation_code(fn, kind, alpha) -> int:
    """The index of ``kind`` in ACTIVATIONS, after checking it and leaky_relu's alpha."""
    if kind not in ACTIVATIONS:
        raise ValueError(f"{fn}: unknown activation {kind!r} ({', '.join(ACTIVATIONS)})")
    if kind == "leaky_relu" and not (math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"{fn}: leaky_relu needs a finite alpha >= 0, got {alpha}")
    return ACTIVATIONS.index(kind)


class Backend:
    name = "abstract"
    dtype = np.dtype(np.float32)

    # -- arrays ---------------------------------------------------------------------------------
    def empty(self, shape, dtype=None):
        return np.empty(shape, dtype=self.dtype if dtype is None else dtype)

    def zeros(self, shape, dtype=None):
        return np.zeros(shape, dtype=self.dtype if dtype is None else dtype)

    def to_device(self, x, dtype=None, copy: bool = True):
        """A backend array holding host array ``x`` (float data in the backend's dtype): a copy, or
        with ``copy=False`` ``x`` itself where it already has the dtype and C layout, for a caller
        that only reads it. Host backends share it then (training data is hundreds of MB, and a
        fresh copy costs as much in page faults as a few training steps); device backends copy."""
        x = np.asarray(x)
        if dtype is None:
            dtype = self.dtype if x.dtype.kind == "f" else x.dtype
        return np.array(x, dtype=dtype, order="C", copy=True) if copy else np.ascontiguousarray(x, dtype=dtype)

    def to_host(self, a) -> np.ndarray:
        """A host NumPy copy of backend array ``a``."""
        return np.array(a, copy=True)

    def copy_from_host(self, dst, x) -> None:
        """``dst[...] = x`` for a host array ``x`` of the same shape."""
        x = np.asarray(x)
        if x.shape != dst.shape:
            raise ValueError(f"copy_from_host: source has shape {x.shape}, destination {dst.shape}")
        dst[...] = x

    def rows(self, a, lo, hi):
        """The view ``a[lo:hi]`` along the first axis."""
        return a[lo:hi]

    def reshape(self, a, shape):
        """A view of contiguous ``a`` with another shape of the same size."""
        return a.reshape(shape)

    def split(self, flat, shapes):
        """Views into 1-D ``flat``: consecutive blocks with the given shapes."""
        views, at = [], 0
        for shape in shapes:
            size = int(np.prod(shape, dtype=np.int64))
            views.append(flat[at : at + size].reshape(shape))
            at += size
        if at != flat.shape[0]:
            raise ValueError(f"split: shapes cover {at} elements, the buffer has {flat.shape[0]}")
        return views

    def take(self, src, idx, out):
        """``out[i] = src[idx[i]]`` for 1-D ``src`` (the labels of a mini-batch)."""
        np.take(src, idx, out=out)
        return out

    # -- kernels: see NumpyBackend for the reference definition of each --------------------------
    def gemm(self, a, b, out=None, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
        """``out = alpha * op(a) @ op(b) + beta * out``; ``beta == 0`` never reads ``out``."""
        if out is None:
            if beta != 0.0:
                raise ValueError("gemm: beta != 0 needs an existing out to accumulate into")
            m = a.shape[1] if trans_a else a.shape[0]
            n = b.shape[0] if trans_b else b.shape[1]
            out = self.empty((m, n))
        return self._gemm(a, b, out, bool(trans_a), bool(trans_b), float(alpha), float(beta))

    def _gemm(self, a, b, out, trans_a, trans_b, alpha, beta):
        raise NotImplementedError

    def _bn_check(self, fn, x, **vectors):
        """Batch norm's arguments: ``x`` (rows, C) and per-column vectors of C (via ``self._arr``)."""
        x = self._arr(fn, "x", x, 2)
        for name, v in vectors.items():
            self._arr(fn, name, v, shape=(x.shape[1],))
        return x

    def xent_accumulate(self, logits, labels, dlogits, totals):
        """softmax_xent, with the results added to the float64 backend array ``totals`` of 4:
        ``[sum of row losses, correct count, this batch's mean loss, its correct count]``. Training
        and evaluation keep their running metrics there and read them back only when they are
        shown, so a GPU backend is not synchronised every step. (Host arrays here; a device
        backend overrides it.)"""
        loss, correct = self.softmax_xent(logits, labels, dlogits)
        totals[0] += loss * logits.shape[0]
        totals[1] += correct
        totals[2] = loss
        totals[3] = correct

    def conv2d_maxpool_forward(self, x, w, b, out, argmax, kernel, stride, padding, conv_hw, pool, relu=False):
        """conv2d_forward into a ``(N, *conv_hw, F)`` map, then maxpool_forward of it into ``out``
        and ``argmax``. This composition is the definition; a backend may fuse the two (cpp does for
        a single input channel, and for a 2x2 pool after a Winograd convolution) so that the
        full-resolution map never goes to memory."""
        conv = self._workspace("conv2d_maxpool", (x.shape[0], *conv_hw, out.shape[3]))
        self.conv2d_forward(x, w, b, conv, kernel, stride, padding, relu)
        return self.maxpool_forward(conv, out, argmax, pool)

    def conv2d_maxpool_backward(self, dy, argmax, out, x, w, dw, db, kernel, stride, padding, conv_hw, pool,
                                relu_mask=False, dx=None):
        """maxpool_backward of the pooled gradient ``dy``, then conv2d_backward for ``dw``, ``db``
        and ``dx`` (each skipped where None; a first layer needs no ``dx``)."""
        dconv = self._workspace("conv2d_maxpool", (x.shape[0], *conv_hw, dy.shape[3]))
        self.maxpool_backward(dy, argmax, out, dconv, pool, relu_mask)
        self.conv2d_backward(dconv, x, w, dw, db, dx, kernel, stride, padding)

    def _workspace(self, name, shape, dtype=None):
        """A cached work buffer of this backend, viewed as ``shape`` (grown when too small, never
        shrunk), so a training step allocates nothing."""
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        size = int(np.prod(shape, dtype=np.int64))
        work = self.__dict__.setdefault("_work", {})
        buf = work.get(name)
        if buf is None or buf.shape[0] < max(1, size) or buf.dtype != dtype:
            buf = work[name] = self.empty((max(1, size),), dtype=dtype)
        return buf[:size].reshape(shape)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.dtype}>"


# Every kernel a backend provides, with its arguments (outputs are caller-supplied arrays):
KERNELS = {
    "gemm": "a, b, out=None, trans_a=False, trans_b=False, alpha=1.0, beta=0.0",
    "linear_forward": "x, w, b, out, relu=False -> out = relu?(x @ w + b)",
    "linear_backward_input": "dy, w, y, out -> out = (dy @ w.T) * (y > 0); y=None: no mask",
    "linear_weight_grad": "x, dy, dw, db, alpha=1.0, beta=0.0 -> dw = alpha * x.T @ dy + beta * dw, "
                          "db = alpha * dy.sum(axis=0) + beta * db",
    "relu_backward": "dy, y, out -> out = dy * (y > 0)",
    "bias_grad": "dy, out -> out = dy.sum(axis=0)",
    "softmax_xent": "logits, labels, dlogits=None -> (mean loss, n correct)",
    "xent_accumulate": "logits, labels, dlogits, totals -> totals += (loss sum, correct); totals[2:] = this batch's",
    "take_rows": "src, idx, out -> out[i] = src[idx[i]]",
    "conv2d_forward": "x, w, b, out, kernel, stride, padding, relu=False",
    "conv2d_backward": "dy, x, w, dw, db, dx, kernel, stride, padding",
    "conv2d_maxpool_forward": "x, w, b, out, argmax, kernel, stride, padding, conv_hw, pool, relu=False",
    "conv2d_maxpool_backward": "dy, argmax, out, x, w, dw, db, kernel, stride, padding, conv_hw, pool, relu_mask=False, "
                               "dx=None",
    "maxpool_forward": "x, out, argmax, pool",
    "maxpool_backward": "dy, argmax, out, dx, pool, relu_mask=False",
    "global_avgpool_forward": "x, out",
    "global_avgpool_backward": "dy, dx",
    "batchnorm_forward_train": "x, gamma, beta, y, save_mean, save_invstd, running_mean, running_var, eps, momentum",
    "batchnorm_forward_infer": "x, gamma, beta, running_mean, running_var, y, eps",
    "batchnorm_backward": "dy, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta",
    "activation_forward": "x, y, kind, alpha=0.0",
    "activation_backward": "dy, y, dx, kind, alpha=0.0",
    "dropout": "x, y, rate, seed, step",
    "batched_transpose": "x, out -> out[b] = x[b].T",
    "affine_warp": "x, params, out -> per-image affine warp (NHWC), bilinear, zero outside",
    "sgd_step": "param, grad, velocity, lr, momentum, nesterov, weight_decay, grad_scale, clip_value",
    "adam_step": "param, grad, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step, grad_scale, clip_value",
    "sum_squares": "x -> float",
}
