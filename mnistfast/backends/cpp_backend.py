"""The compiled C++ kernels (float32). The extension checks every argument itself."""

from __future__ import annotations

import numpy as np

from .base import Backend

try:
    from .. import _core
except ImportError as e:  # pragma: no cover - only when the package was not built
    _core = None
    _IMPORT_ERROR = e


class CppBackend(Backend):
    name = "cpp"
    dtype = np.dtype(np.float32)

    def __init__(self, dtype=np.float32):
        if _core is None:
            raise ImportError(
                "the cpp backend needs the compiled extension mnistfast._core, which failed to import "
                f"({_IMPORT_ERROR}); reinstall with `pip install .`"
            )
        if np.dtype(dtype) != np.float32:
            raise ValueError(f"cpp backend: only float32 is supported, got {np.dtype(dtype)}")

    def _gemm(self, a, b, out, trans_a, trans_b, alpha, beta):
        return _core.gemm(a, b, out, trans_a, trans_b, alpha, beta)

    def linear_forward(self, x, w, b, out, relu=False):
        return _core.linear_forward(x, w, b, out, relu)

    def linear_backward_input(self, dy, w, y, out):
        return _core.linear_backward_input(dy, w, y, out)

    def relu_backward(self, dy, y, out):
        return _core.relu_backward(dy, y, out)

    def bias_grad(self, dy, out):
        return _core.bias_grad(dy, out)

    def softmax_xent(self, logits, labels, dlogits=None):
        return _core.softmax_xent(logits, labels, dlogits)

    def sgd_update(self, param, grad, lr):
        _core.sgd_update(param, grad, lr)
        return param

    def take_rows(self, src, idx, out):
        return _core.take_rows(src, idx, out)
