"""The Numba CUDA kernels (float32), with arrays resident in GPU memory.

Arrays are Numba device arrays; host data crosses only in ``to_device``, ``to_host`` and
``copy_from_host``. Kernels are launched asynchronously on the default stream, so a training step
queues its launches and returns; the host waits only when it reads something back.
Workspaces (im2col patches, per-row losses) are allocated once and reused across steps.

``NUMBA_ENABLE_CUDASIM=1`` (set before Numba is imported) runs the same kernels in Numba's CUDA
simulator on the CPU: slow, for tests on small shapes.
"""

from __future__ import annotations

import math

import numpy as np

from .base import Backend, checked
from .contract import ACTIVATIONS, DeviceExtentView, conv_geometry

# Im2col patches are built for a chunk of images at a time, capped at this many floats (64 MiB),
# so that a large evaluation batch does not allocate a patch matrix of gigabytes.
WORKSPACE_FLOATS = 1 << 24


def _numba_cuda():
    try:
        from numba import cuda
    except ImportError as e:
        raise ImportError(
            f"the cuda backend needs numba-cuda ({e}); install it with `pip install \"mnistfast[cuda]\"`"
        ) from None
    return cuda


def cuda_status() -> str | None:
    """None when the cuda backend can run here, else what is missing."""
    try:
        cuda = _numba_cuda()
    except ImportError as e:
        return str(e)
    try:
        if cuda.is_available():
            return None
        detail = ""
        try:
            cuda.detect()
        except Exception as e:  # noqa: BLE001 - whatever the driver probe says is the explanation
            detail = " (" + " ".join(str(e).split()).rstrip(":. ") + ")"
        return (f"no usable CUDA GPU or driver was found{detail}. The cuda backend needs an NVIDIA GPU with its "
                "driver; NUMBA_ENABLE_CUDASIM=1 (set before Numba is imported) runs it in Numba's CPU simulator")
    except Exception as e:  # noqa: BLE001
        return f"CUDA initialisation failed: {e}"


class DeviceArrayView(DeviceExtentView):
    """Numba device arrays (the simulator's included) as the contract validator sees them."""

    kind = "cuda device array (backend.to_device)"

    def is_array(self, a) -> bool:
        return bool(getattr(a, "__cuda_ndarray__", False))

    def extent(self, a):
        # A real device array exports __cuda_array_interface__; the simulator's wraps a host array.
        iface = a.__cuda_array_interface__ if hasattr(a, "__cuda_array_interface__") else a.__array_interface__
        start = iface["data"][0]
        return start, start + a.size * a.dtype.itemsize

    def writable(self, a) -> bool:
        return True

    def contiguous(self, a) -> bool:
        return a.is_c_contiguous()


class CudaBackend(Backend):
    name = "cuda"
    dtype = np.dtype(np.float32)
    array_view = DeviceArrayView()
    checks_values = False

    def __init__(self, dtype=np.float32, device: int | None = None):
        if np.dtype(dtype) != np.float32:
            raise ValueError(f"cuda backend: only float32 is supported, got {np.dtype(dtype)}")
        problem = cuda_status()
        if problem is not None:
            raise RuntimeError(f"cuda backend unavailable: {problem}")
        cuda = self._cuda = _numba_cuda()
        if device is not None:
            cuda.select_device(int(device))
        # Compiling the kernels needs the device: import them only now.
        from .cuda import conv, elementwise, gemm, launch, reduce

        self._conv, self._ew, self._gemm_mod, self._launch, self._red = conv, elementwise, gemm, launch, reduce
        self.simulator = launch.SIMULATOR
        self._no_vec = cuda.to_device(np.zeros(1, np.float32))
        self._no_mat = cuda.to_device(np.zeros((1, 1), np.float32))
        self._work = {}

    # -- arrays ---------------------------------------------------------------------------------
    @staticmethod
    def _is_device(a) -> bool:
        """A Numba device array (the simulator's fake ones included)."""
        return bool(getattr(a, "__cuda_ndarray__", False))

    def empty(self, shape, dtype=None):
        return self._cuda.device_array(shape, dtype=self.dtype if dtype is None else dtype)

    def zeros(self, shape, dtype=None):
        return self._cuda.to_device(np.zeros(shape, dtype=self.dtype if dtype is None else dtype))

    def to_device(self, x, dtype=None, copy: bool = True):  # a transfer is always a copy
        if self._is_device(x):
            raise TypeError("to_device: already a device array")
        x = np.asarray(x)
        if dtype is None:
            dtype = self.dtype if x.dtype.kind == "f" else x.dtype
        return self._cuda.to_device(np.ascontiguousarray(x, dtype=dtype))

    def to_host(self, a) -> np.ndarray:
        if not self._is_device(a):
            raise TypeError(f"to_host: expected a device array, got {type(a).__name__}")
        return a.copy_to_host()

    def copy_from_host(self, dst, x) -> None:
        x = np.asarray(x)
        if x.shape != dst.shape:
            raise ValueError(f"copy_from_host: source has shape {x.shape}, destination {dst.shape}")
        dst.copy_to_device(np.ascontiguousarray(x, dtype=dst.dtype))

    def from_foreign(self, a):
        """A zero-copy view of a foreign device array (CuPy, PyTorch CUDA, ...) that exports
        ``__cuda_array_interface__``."""
        if self._is_device(a):
            return a
        if not hasattr(a, "__cuda_array_interface__"):
            raise TypeError(f"{type(a).__name__} is not a device array: it does not export __cuda_array_interface__")
        return self._cuda.as_cuda_array(a)

    def _flat(self, a):
        return a.reshape(int(np.prod(a.shape, dtype=np.int64)))

    def _run(self, kernel, n, *args):
        if n:
            kernel[self._launch.grid(n)](*args)

    # -- dense ----------------------------------------------------------------------------------
    def _sgemm(self, a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, bias=None, relu=False, mask=None):
        if out.shape[0] and out.shape[1]:
            self._gemm_mod.launch_sgemm(a, b, out, int(trans_a), int(trans_b), alpha, beta,
                                        self._no_vec if bias is None else bias, int(bias is not None), int(relu),
                                        self._no_mat if mask is None else mask, int(mask is not None))
        return out

    @checked("gemm")
    def _gemm(self, a, b, out, trans_a, trans_b, alpha, beta):
        return self._sgemm(a, b, out, trans_a, trans_b, alpha, beta)

    @checked()
    def linear_forward(self, x, w, b, out, relu=False):
        return self._sgemm(x, w, out, bias=b, relu=relu)

    @checked()
    def linear_backward_input(self, dy, w, y, out):
        return self._sgemm(dy, w, out, trans_b=True, mask=y)

    @checked()
    def relu_backward(self, dy, y, out):
        return self.activation_backward(dy, y, out, "relu")

    @checked()
    def bias_grad(self, dy, out):
        self._red.launch_columns(self._red.column_sums, dy.shape[1], dy, out, 1.0, 0.0)
        return out

    @checked()
    def linear_weight_grad(self, x, dy, dw, db, alpha=1.0, beta=0.0):
        self._sgemm(x, dy, dw, trans_a=True, alpha=alpha, beta=beta)
        if dy.shape[1]:
            self._red.launch_columns(self._red.column_sums, dy.shape[1], dy, db, alpha, beta)

    @checked()
    def xent_accumulate(self, logits, labels, dlogits, totals):
        rows = logits.shape[0]
        row_loss = self._workspace("row_loss", (rows,), np.float64)
        row_correct = self._workspace("row_correct", (rows,), np.float64)
        self._run(self._red.softmax_xent_rows, rows, logits, labels, self._no_mat if dlogits is None else dlogits,
                  int(dlogits is not None), row_loss, row_correct)
        self._red.accumulate_totals[1, self._launch.REDUCE_THREADS](row_loss, row_correct, rows, totals)

    @checked()
    def softmax_xent(self, logits, labels, dlogits=None):
        """(mean loss, correct count); reads them back, so it waits for the GPU."""
        totals = self._workspace("xent_totals", (4,), np.float64)
        self.copy_from_host(totals, np.zeros(4))
        self.xent_accumulate(logits, labels, dlogits, totals)
        t = totals.copy_to_host()
        return float(t[2]), int(t[3])

    @checked()
    def take_rows(self, src, idx, out):
        self._run(self._ew.take_rows, out.shape[0] * out.shape[1], src, idx, out)
        return out

    def take(self, src, idx, out):
        self._run(self._ew.take_labels, out.shape[0], src, idx, out)
        return out

    # -- convolution ----------------------------------------------------------------------------
    def _conv_args(self, fn, x, oh, ow, kernel, stride, padding):
        n, h, wd, c = x.shape
        kh, kw, sh, sw, ph, pw, _, _ = conv_geometry(fn, h, wd, oh, ow, kernel, stride, padding)
        # Images per chunk so that the patch matrix stays within the workspace cap.
        per_image = oh * ow * kh * kw * c
        chunk = max(1, min(n, WORKSPACE_FLOATS // max(1, per_image)))
        return (kh, kw, sh, sw, ph, pw), chunk

    @checked()
    def conv2d_forward(self, x, w, b, out, kernel, stride, padding, relu=False):
        n, oh, ow, f = out.shape
        (kh, kw, sh, sw, ph, pw), chunk = self._conv_args("conv2d_forward", x, oh, ow, kernel, stride, padding)
        taps = w.shape[0]
        out2 = out.reshape(n * oh * ow, f)
        for lo in range(0, n, chunk):
            hi = min(n, lo + chunk)
            cols = self._workspace("cols", ((hi - lo) * oh * ow, taps))
            self._run(self._conv.im2col, cols.shape[0] * taps, x[lo:hi], cols, oh, ow, kh, kw, sh, sw, ph, pw)
            self._sgemm(cols, w, out2[lo * oh * ow : hi * oh * ow], bias=b, relu=relu)
        return out

    @checked()
    def conv2d_backward(self, dy, x, w, dw, db, dx, kernel, stride, padding):
        n, oh, ow, f = dy.shape
        (kh, kw, sh, sw, ph, pw), chunk = self._conv_args("conv2d_backward", x, oh, ow, kernel, stride, padding)
        taps = w.shape[0]
        dy2 = dy.reshape(n * oh * ow, f)
        if db is not None:
            self.bias_grad(dy2, db)
        for lo in range(0, n, chunk):
            hi = min(n, lo + chunk)
            rows = slice(lo * oh * ow, hi * oh * ow)
            cols = self._workspace("cols", ((hi - lo) * oh * ow, taps))
            self._run(self._conv.im2col, cols.shape[0] * taps, x[lo:hi], cols, oh, ow, kh, kw, sh, sw, ph, pw)
            # dw accumulates over the chunks in order (beta = 1 after the first): deterministic.
            self._sgemm(cols, dy2[rows], dw, trans_a=True, beta=0.0 if lo == 0 else 1.0)
            if dx is not None:
                self._sgemm(dy2[rows], w, cols, trans_b=True)  # the patch gradients, into the same buffer
                dx_chunk = dx[lo:hi]
                self._run(self._conv.col2im, int(np.prod(dx_chunk.shape)), cols, dx_chunk, oh, ow, kh, kw, sh, sw,
                          ph, pw)

    # -- pooling --------------------------------------------------------------------------------
    @checked()
    def maxpool_forward(self, x, out, argmax, pool):
        self._run(self._conv.maxpool_forward, int(np.prod(out.shape)), x, out, argmax, pool)
        return out

    @checked()
    def maxpool_backward(self, dy, argmax, out, dx, pool, relu_mask=False):
        self._run(self._conv.maxpool_backward, int(np.prod(dx.shape)), dy, argmax, out, dx, pool, int(bool(relu_mask)))
        return dx

    @checked()
    def global_avgpool_forward(self, x, out):
        self._run(self._red.global_avgpool_forward, x.shape[0] * x.shape[3], x, out)
        return out

    @checked()
    def global_avgpool_backward(self, dy, dx):
        self._run(self._conv.global_avgpool_backward, int(np.prod(dx.shape)), dy, dx)
        return dx

    # -- batch norm -----------------------------------------------------------------------------
    @checked()
    def batchnorm_forward_train(self, x, gamma, beta, y, save_mean, save_invstd, running_mean, running_var, eps,
                                momentum):
        self._red.launch_columns(self._red.batchnorm_stats, x.shape[1], x, save_mean, save_invstd, running_mean,
                                 running_var, eps, momentum)
        self._run(self._ew.batchnorm_apply, x.shape[0] * x.shape[1], x, gamma, beta, save_mean, save_invstd, y, eps,
                  0)
        return y

    @checked()
    def batchnorm_forward_infer(self, x, gamma, beta, running_mean, running_var, y, eps):
        self._run(self._ew.batchnorm_apply, x.shape[0] * x.shape[1], x, gamma, beta, running_mean, running_var, y,
                  eps, 1)
        return y

    @checked()
    def batchnorm_backward(self, dy, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta):
        self._red.launch_columns(self._red.batchnorm_grad_sums, x.shape[1], dy, x, save_mean, save_invstd, dgamma,
                                 dbeta)
        self._run(self._ew.batchnorm_input_grad, x.shape[0] * x.shape[1], dy, x, gamma, save_mean, save_invstd, dgamma,
                  dbeta, dx)

    # -- elementwise ----------------------------------------------------------------------------
    @checked()
    def activation_forward(self, x, y, kind, alpha=0.0):
        code = ACTIVATIONS.index(kind)
        n = int(np.prod(x.shape))
        self._run(self._ew.activation_forward, n, self._flat(x), self._flat(y), code, alpha)
        return y

    @checked()
    def activation_backward(self, dy, y, dx, kind, alpha=0.0):
        code = ACTIVATIONS.index(kind)
        n = int(np.prod(dy.shape))
        self._run(self._ew.activation_backward, n, self._flat(dy), self._flat(y), self._flat(dx), code, alpha)
        return dx

    @checked()
    def dropout(self, x, y, rate, seed, step):
        key = self._ew.dropout_key(int(seed), int(step))
        threshold = round(rate * 2**24)
        scale = float(np.float32(1.0 / (1.0 - rate)))
        self._run(self._ew.dropout, int(np.prod(x.shape)), self._flat(x), self._flat(y), key, threshold, scale)
        return y

    @checked()
    def batched_transpose(self, x, out):
        self._run(self._ew.batched_transpose, int(np.prod(x.shape)), x, out)
        return out

    @checked()
    def affine_warp(self, x, params, out):
        self._run(self._conv.affine_warp, int(np.prod(x.shape)), x, params, out)
        return out

    # -- optimizers -----------------------------------------------------------------------------
    @checked()
    def sgd_step(self, param, grad, velocity, lr, momentum, nesterov, weight_decay, grad_scale, clip_value):
        self._run(self._ew.sgd_step, param.shape[0], param, grad, self._no_vec if velocity is None else velocity, lr,
                  momentum, int(bool(nesterov)), weight_decay, grad_scale, clip_value)

    @checked()
    def adam_step(self, param, grad, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step, grad_scale,
                  clip_value):
        # The bias corrections in double on the host, as the C++ kernel does.
        bias1, bias2 = 1.0 - beta1**step, 1.0 - beta2**step
        step_size = float(np.float32(lr / bias1))
        inv_sqrt_bias2 = float(np.float32(1.0 / math.sqrt(bias2)))
        decay = float(np.float32(1.0) - np.float32(lr) * np.float32(weight_decay)) if decoupled else 1.0
        l2 = 0.0 if decoupled else weight_decay
        self._run(self._ew.adam_step, param.shape[0], param, grad, m, v, step_size, beta1, beta2, eps, inv_sqrt_bias2,
                  decay, l2, grad_scale, clip_value)

    @checked()
    def sum_squares(self, x):
        blocks = self._launch.grid_blocks(-(-x.shape[0] // self._launch.REDUCE_THREADS))
        partials = self._workspace("ss_partials", (blocks,), np.float64)
        total = self._workspace("ss_total", (1,), np.float64)
        if x.shape[0] == 0:
            return 0.0
        self._red.sum_squares_partials[blocks, self._launch.REDUCE_THREADS](x, partials)
        self._red.sum_vector[1, self._launch.REDUCE_THREADS](partials, total)
        return float(total.copy_to_host()[0])

    def synchronize(self) -> None:
        """Wait for every queued kernel (for timing)."""
        self._cuda.synchronize()

    def __repr__(self) -> str:
        return f"<CudaBackend float32{' (simulator)' if self.simulator else ''}>"
