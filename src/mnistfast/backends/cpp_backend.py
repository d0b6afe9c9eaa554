"""The compiled C++ kernels (float32). The extension checks every argument itself.

Settings belong to the backend object: ``CppBackend(threads=4, gemm_kernel="generic",
conv_algorithm="im2col", precision="bf16")`` (``precision``: see ``mnistfast.precision``; bf16
runs the AVX512-BF16 GEMM kernel and needs a CPU that has it; by default fp32, or bf16 when
``gemm_kernel`` names a bf16 kernel). The thread count defaults to ``MNISTFAST_NUM_THREADS``
when set, else ``OMP_NUM_THREADS``, else the CPUs this process may use (its affinity and cgroup quota: see
``mnistfast.cpus``), divided with other trainings on the machine while ``fit`` runs when nobody
chose it (see ``mnistfast.core_share``). ``conv_algorithm="auto"`` computes 3x3 stride-1 convolutions of 16 or
more channels in and out by Winograd's F(2x2, 3x3) and the rest as im2col + GEMM.
"""

from __future__ import annotations

import numpy as np

from .. import cpus
from ..core_share import CoreShare, NoShare
from ..cpus import check_threads, openmp_settings
from .base import Backend
from .contract import KERNELS

try:
    with openmp_settings():  # the OpenMP runtime starts with the extension
        from .. import _core
except ImportError as e:  # pragma: no cover - only when the package was not built
    _core = None
    _IMPORT_ERROR = e


class CppBackend(Backend):
    name = "cpp"
    dtype = np.dtype(np.float32)

    def __init__(self, dtype=np.float32, threads: int | None = None, gemm_kernel: str = "auto",
                 conv_algorithm: str = "auto", precision: str | None = None):
        if _core is None:
            raise ImportError(
                "the cpp backend needs the compiled extension mnistfast._core, which failed to import "
                f"({_IMPORT_ERROR}); reinstall with `pip install .`"
            )
        if np.dtype(dtype) != np.float32:
            raise ValueError(f"cpp backend: only float32 is supported, got {np.dtype(dtype)}")
        if threads is None:
            threads = cpus.chosen_threads()
        # Only a count nobody chose is divided with other trainings (core_share.py).
        self._shared = threads is None
        if threads is None:
            threads = cpus.usable_cpus()
        threads = check_threads(int(threads) if isinstance(threads, np.integer) else threads, "cpp backend: threads")
        self._k = _core.Kernels(threads, gemm_kernel, conv_algorithm)
        # The GEMM kernel of each precision: a bf16 kernel named here makes bf16 the start.
        bf16_kernels = _core.available_bf16_gemm_kernels()
        chosen = self._k.gemm_kernel
        if chosen in bf16_kernels:
            self._kernel_of = {"fp32": _core.float_gemm_kernel(chosen), "bf16": chosen}
            self.precision = "bf16"
        else:
            self._kernel_of = {"fp32": chosen, "bf16": "avx512bf16" if "avx512bf16" in bf16_kernels else None}
        if precision is not None and precision != self.precision:
            self.set_precision(precision)
        # Every kernel of the table that this class does not wrap is the extension's own method,
        # bound directly: its Python signature is the table's, and a call costs no extra frame.
        for name in KERNELS:
            if name not in _WRAPPED:
                setattr(self, name, getattr(self._k, name))

    @property
    def threads(self) -> int:
        return self._k.threads

    def core_share(self):
        """While ``fit`` runs, a default thread count is this process's share of the CPUs among
        the trainings running on the machine (``mnistfast.core_share``)."""
        if not self._shared or self._k.threads < 2:
            return NoShare()
        return CoreShare(self._k.threads, self._set_threads)

    def _set_threads(self, n: int) -> None:
        self._k.threads = n

    @property
    def bf16_support(self):
        """"hardware" on AVX512-BF16, "emulated" when built on "generic-bf16", None otherwise."""
        kernel = self._kernel_of["bf16"]
        return None if kernel is None else ("emulated" if kernel == "generic-bf16" else "hardware")

    @property
    def bf16_kernel(self) -> str | None:
        """The GEMM kernel that runs bf16 on this backend (None: none here)."""
        return self._kernel_of["bf16"]

    def bf16_missing(self) -> str:
        return "this CPU (the cpp backend's bf16 kernels need AVX512-BF16)"

    def _use_precision(self, precision: str) -> None:
        self._k.gemm_kernel = self._kernel_of[precision]

    @property
    def gemm_kernel(self) -> str:
        return self._k.gemm_kernel

    @property
    def conv_algorithm(self) -> str:
        return self._k.conv_algorithm

    def peak_gflops(self):
        """Measured FMA throughput of this backend's threads in the ISA of its GEMM kernel (AVX-512 or
        AVX2; None for the generic and naive kernels)."""
        return self._k.peak_gflops()

    def _gemm(self, a, b, out, trans_a, trans_b, alpha, beta):
        return self._k.gemm(a, b, out, trans_a, trans_b, alpha, beta)

    def conv2d_forward(self, x, w, b, out, kernel, stride, padding, relu=False):
        return self._k.conv2d_forward(x, w, b, out, *kernel, *stride, *padding, relu)

    def conv2d_backward(self, dy, x, w, dw, db, dx, kernel, stride, padding):
        self._k.conv2d_backward(dy, x, w, dw, db, dx, *kernel, *stride, *padding)

    def conv2d_maxpool_forward(self, x, w, b, out, argmax, kernel, stride, padding, conv_hw, pool, relu=False):
        if not self._k.conv2d_maxpool_forward(x, w, b, out, argmax, *kernel, *stride, *padding, *conv_hw, pool, relu):
            super().conv2d_maxpool_forward(x, w, b, out, argmax, kernel, stride, padding, conv_hw, pool, relu)
        return out

    def conv2d_maxpool_backward(self, dy, argmax, out, x, w, dw, db, kernel, stride, padding, conv_hw, pool,
                                relu_mask=False, dx=None):
        if not self._k.conv2d_maxpool_backward(dy, argmax, out, x, w, dw, db, *kernel, *stride, *padding, *conv_hw,
                                               pool, relu_mask, dx):
            super().conv2d_maxpool_backward(dy, argmax, out, x, w, dw, db, kernel, stride, padding, conv_hw, pool,
                                            relu_mask, dx)

    def __repr__(self) -> str:
        return (f"<CppBackend float32, {self.precision} GEMM operands, {self.threads} threads, "
                f"gemm {self.gemm_kernel}, conv {self.conv_algorithm}>")


# The kernels whose Python signature differs from the extension's (pairs unpacked, a fallback).
_WRAPPED = ("gemm", "conv2d_forward", "conv2d_backward", "conv2d_maxpool_forward", "conv2d_maxpool_backward")
