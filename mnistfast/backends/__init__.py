"""Interchangeable kernel backends: ``get_backend("numpy" | "cpp")``."""

from __future__ import annotations

from .base import Backend
from .cpp_backend import CppBackend
from .numpy_backend import NumpyBackend

_BACKENDS = {"numpy": NumpyBackend, "cpp": CppBackend}


def available_backends() -> list[str]:
    return sorted(_BACKENDS)


def get_backend(name="cpp", **options) -> Backend:
    """Return a backend by name (a Backend instance is passed through).

    ``options`` go to the backend; the numpy reference takes ``dtype`` (e.g. ``np.float64``).
    """
    if isinstance(name, Backend):
        return name
    try:
        cls = _BACKENDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown backend {name!r}; choose one of {available_backends()}") from None
    return cls(**options)


__all__ = ["Backend", "CppBackend", "NumpyBackend", "available_backends", "get_backend"]
