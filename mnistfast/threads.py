"""How many threads the C++ kernels use.

The default is OpenMP's (``OMP_NUM_THREADS``, else every core). ``MNISTFAST_NUM_THREADS``
overrides it when the package is imported; ``set_num_threads`` changes it at any time. For a
given thread count, results are bitwise reproducible; the GEMM gives identical bits for any
thread count.
"""

from __future__ import annotations

import os

ENV_VAR = "MNISTFAST_NUM_THREADS"


def _core():
    from . import _core as core

    return core


def get_num_threads() -> int:
    return _core().num_threads()


def set_num_threads(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"number of threads must be a positive integer, got {n!r}")
    _core().set_num_threads(n)


def apply_env() -> None:
    value = os.environ.get(ENV_VAR)
    if value is None or value.strip() == "":
        return
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{ENV_VAR}={value!r} is not a positive integer")
    set_num_threads(n)
