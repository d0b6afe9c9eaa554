"""Interchangeable kernel backends: ``get_backend("numpy" | "cpp", **options)``."""

from __future__ import annotations

from .base import KERNELS, Backend
from .cpp_backend import CppBackend
from .numpy_backend import NumpyBackend

_BACKENDS = {"numpy": NumpyBackend, "cpp": CppBackend}


def available_backends() -> list[str]:
    return sorted(_BACKENDS)


def get_backend(name="cpp", **options) -> Backend:
    """Return a backend by name (a Backend instance is passed through unchanged).

    ``options`` go to the backend: the numpy reference takes ``dtype`` (e.g. ``np.float64``); cpp
    takes ``threads`` and ``gemm_kernel`` ("auto", "avx2", "generic", "naive").
    """
    if isinstance(name, Backend):
        return name
    try:
        cls = _BACKENDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown backend {name!r}; choose one of {available_backends()}") from None
    return cls(**options)


__all__ = ["KERNELS", "Backend", "CppBackend", "NumpyBackend", "available_backends", "get_backend"]
