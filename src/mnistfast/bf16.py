"""bfloat16 rounding in NumPy: the reference the bf16 GEMM kernels are tested against.

A bf16 value is the upper 16 bits of a float32. :func:`round_to_bf16` rounds as the kernels'
packing does (``csrc/gemm/bf16.hpp``): to nearest, ties to even; NaN stays NaN; a denormal becomes
a zero of its sign, as the bf16 dot-product instruction reads it.
"""

from __future__ import annotations

import numpy as np


def round_to_bf16(x) -> np.ndarray:
    """Return ``x`` rounded to bfloat16, as float32 (the low 16 bits zero).

    Args:
        x: array-like of float32 values (other dtypes are converted to float32 first).

    Returns:
        A new float32 array of the same shape.
    """
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    nan = (bits & 0x7FFFFFFF) > 0x7F800000
    tiny = (bits & 0x7F800000) == 0  # zero or denormal
    rounded = (bits.astype(np.uint64) + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    out = np.where(nan, (bits | 0x00400000) & 0xFFFF0000, rounded)
    out = np.where(tiny, bits & 0x80000000, out).astype(np.uint32)
    return out.view(np.float32)
