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

import functools
import inspect
import threading

import numpy as np

from ..core_share import NoShare
from .contract import KERNELS, ArrayView, validate


def checked(name=None):
    """Decorate a backend's kernel method so that its arguments are validated against the
    contract of kernel ``name`` (the method's own name by default) before it runs."""

    def wrap(method):
        kernel = KERNELS[name or method.__name__]
        signature = inspect.signature(method)
        names = tuple(signature.parameters)[1:]  # without self
        defaults = {p.name: p.default for p in signature.parameters.values() if p.default is not p.empty}

        @functools.wraps(method)
        def run(self, *args, **kwargs):
            # Binding by hand: inspect.Signature.bind cost as much as the checks themselves.
            bound = dict(defaults)
            bound.update(zip(names, args))
            if kwargs:
                bound.update(kwargs)
            if len(args) > len(names) or len(bound) != len(names):
                signature.bind(self, *args, **kwargs)  # raises the TypeError Python would
            validate(kernel, bound, self.dtype, self.array_view, self.checks_values)
            return method(self, *args, **kwargs)

        run.kernel = kernel
        return run

    return wrap


class Backend:
    """The array methods of host backends; see the module docstring."""

    name = "abstract"
    dtype = np.dtype(np.float32)
    # How the contract validator (``checked``) sees this backend's arrays, and whether it runs the
    # rules that read array values (label and index ranges): a device backend would wait for the
    # GPU to read them, so it leaves them out.
    array_view = ArrayView()
    checks_values = True
    # bf16 GEMM operands (mnistfast.precision): "hardware", "emulated" or None.
    bf16_support = None
    precision = "fp32"

    def bf16_missing(self) -> str:
        """Why this backend cannot run bf16, for the note that says it runs fp32 instead."""
        return f"the {self.name} backend"

    def set_precision(self, precision: str) -> None:
        """Run GEMM operands in ``"fp32"`` or ``"bf16"`` from now on (``mnistfast.precision``);
        ValueError for bf16 where ``bf16_support`` is None."""
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        if precision == "bf16" and self.bf16_support is None:
            raise ValueError(f"bf16 is not available on {self.bf16_missing()}")
        self._use_precision(precision)
        self.precision = precision

    def _use_precision(self, precision: str) -> None:
        """Switch the kernels (backends with ``bf16_support``)."""

    # -- arrays ---------------------------------------------------------------------------------
    def empty(self, shape, dtype=None):
        """An uninitialised backend array (the backend's float dtype unless ``dtype`` is given)."""
        return np.empty(shape, dtype=self.dtype if dtype is None else dtype)

    def zeros(self, shape, dtype=None):
        """A backend array of zeros (the backend's float dtype unless ``dtype`` is given)."""
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

    @checked()
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

    @checked()
    def conv2d_maxpool_forward(self, x, w, b, out, argmax, kernel, stride, padding, conv_hw, pool, relu=False):
        """conv2d_forward into a ``(N, *conv_hw, F)`` map, then maxpool_forward of it into ``out``
        and ``argmax``. This composition is the definition; a backend may fuse the two (cpp does for
        a single input channel, and for a 2x2 pool after a Winograd convolution) so that the
        full-resolution map never goes to memory."""
        conv = self._workspace("conv2d_maxpool", (x.shape[0], *conv_hw, out.shape[3]))
        self.conv2d_forward(x, w, b, conv, kernel, stride, padding, relu)
        return self.maxpool_forward(conv, out, argmax, pool)

    @checked()
    def conv2d_maxpool_backward(self, dy, argmax, out, x, w, dw, db, kernel, stride, padding, conv_hw, pool,
                                relu_mask=False, dx=None):
        """maxpool_backward of the pooled gradient ``dy``, then conv2d_backward for ``dw``, ``db``
        and ``dx`` (each skipped where None; a first layer needs no ``dx``)."""
        dconv = self._workspace("conv2d_maxpool", (x.shape[0], *conv_hw, dy.shape[3]))
        self.maxpool_backward(dy, argmax, out, dconv, pool, relu_mask)
        self.conv2d_backward(dconv, x, w, dw, db, dx, kernel, stride, padding)

    @property
    def call_lock(self) -> threading.RLock:
        """Held by a model for each call that uses its buffers and this backend's workspaces
        (``fit``, ``predict``, ``evaluate``, ...): calls from several threads into models on one
        backend run one at a time instead of overwriting each other's activations."""
        return self.__dict__.setdefault("_call_lock", threading.RLock())  # setdefault: atomic under the GIL

    def core_share(self):
        """A context manager held by ``fit`` whose ``poll()``, called between steps, may change
        the backend's thread count to its share of the machine (``mnistfast.core_share``); this
        default changes nothing."""
        return NoShare()

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
