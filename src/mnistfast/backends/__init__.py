"""Interchangeable kernel backends: ``get_backend("numpy" | "cpp" | "cuda", **options)``."""

from __future__ import annotations

from .base import Backend
from .contract import KERNELS
from .cpp_backend import CppBackend
from .cuda_backend import CudaBackend, cuda_status
from .numpy_backend import NumpyBackend

_BACKENDS = {"numpy": NumpyBackend, "cpp": CppBackend, "cuda": CudaBackend}


def available_backends() -> list[str]:
    """The names ``get_backend`` accepts (whether each can run here is another matter: see ``get_backend``)."""
    return sorted(_BACKENDS)


def get_backend(name="cpp", **options) -> Backend:
    """Return a backend by name (a Backend instance is passed through unchanged).

    ``options`` go to the backend: the numpy reference takes ``dtype`` (e.g. ``np.float64``); cpp
    takes ``threads``, ``gemm_kernel`` ("auto", "avx512", "avx2", "generic", "naive", or a kernel with
    bf16 operands: "avx512bf16" where the CPU has AVX512-BF16, "generic-bf16" anywhere) and
    ``conv_algorithm`` ("auto", "im2col", "winograd") and ``precision`` ("fp32" or "bf16", see
    ``mnistfast.precision``); cuda takes ``device`` (a GPU index) and
    raises RuntimeError naming what is missing where there is no GPU or driver.
    """
    if isinstance(name, Backend):
        return name
    try:
        cls = _BACKENDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown backend {name!r}; choose one of {available_backends()}") from None
    return cls(**options)


__all__ = ["KERNELS", "Backend", "CppBackend", "CudaBackend", "NumpyBackend", "available_backends", "cuda_status",
           "get_backend"]
