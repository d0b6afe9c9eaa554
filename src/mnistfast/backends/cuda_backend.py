"""The Numba CUDA kernels (float32), with arrays resident in GPU memory.

Arrays are Numba device arrays; host data crosses only in ``to_device``, ``to_host`` and
``copy_from_host``. Kernels are launched asynchronously on the default stream, so a training step
queues its launches and returns; the host waits only when it reads something back.
Workspaces (im2col patches, per-row losses) are allocated once and reused across steps. The
kernels and their launchers live together in ``backends/cuda/`` (one module per family); this
class holds the arrays and binds the launchers.

``NUMBA_ENABLE_CUDASIM=1`` (set before Numba is imported) runs the same kernels in Numba's CUDA
simulator on the CPU: slow, for tests on small shapes.
"""

from __future__ import annotations

import types

import numpy as np

from .base import Backend
from .contract import ArrayView


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


class DeviceArrayView(ArrayView):
    """Numba device arrays (the simulator's included) as the contract validator sees them."""

    kind = "cuda device array (backend.to_device)"

    def is_array(self, a) -> bool:
        return bool(getattr(a, "__cuda_ndarray__", False))

    def extent(self, a):
        # A real device array exports __cuda_array_interface__; the simulator's wraps a host array.
        iface = a.__cuda_array_interface__ if hasattr(a, "__cuda_array_interface__") else a.__array_interface__
        start = iface["data"][0]
        return start, start + a.size * a.dtype.itemsize

    def overlaps(self, a, b) -> bool:
        (lo, hi), (lo2, hi2) = self.extent(a), self.extent(b)
        return hi > lo and hi2 > lo2 and lo < hi2 and lo2 < hi

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
        # Compiling the kernels needs the device: import them only now. Importing them registers
        # their launchers (cuda/launch.py), each bound here as the method of its kernel's name.
        from .cuda import conv, elementwise, gemm, launch, reduce  # noqa: F401

        self._ew, self._launch = elementwise, launch
        for method, fn in launch.LAUNCHERS.values():
            setattr(self, method, types.MethodType(fn, self))
        self.simulator = launch.SIMULATOR
        # Stand-ins for the absent optional operands of a kernel (no bias, no mask, no velocity).
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

    def take(self, src, idx, out):
        """``out[i] = src[idx[i]]`` for 1-D ``src`` (the labels of a mini-batch)."""
        self._launch.run(self._ew.take_labels, out.shape[0], src, idx, out)
        return out

    def record_launches(self, execute: bool = True, as_target=None, timed: bool = False):
        """A context manager recording every kernel this thread launches (kernel, grid, block,
        bytes of its array arguments, GPU time if ``timed``); see
        ``backends.cuda.launch.record_launches``.

        Examples
        --------
        >>> with be.record_launches() as launches:  # doctest: +SKIP
        ...     model.train_step(x, y, optimizer, totals)
        >>> [(l.kernel, l.blocks) for l in launches]  # doctest: +SKIP
        """
        return self._launch.record_launches(execute, as_target, timed)

    def synchronize(self) -> None:
        """Wait for every queued kernel (for timing)."""
        self._cuda.synchronize()

    def __repr__(self) -> str:
        return f"<CudaBackend float32{' (simulator)' if self.simulator else ''}>"
