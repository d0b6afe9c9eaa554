"""The kernel interface every backend implements.

Kernels write into caller-supplied buffers (``out``), so a training loop allocates its
workspaces once. Arrays are row-major and C-contiguous; weights are ``(fan_in, fan_out)``.
"""

from __future__ import annotations

import numpy as np


class Backend:
    name = "abstract"
    dtype = np.dtype(np.float32)

    # -- allocation ---------------------------------------------------------------------------
    def empty(self, shape) -> np.ndarray:
        return np.empty(shape, dtype=self.dtype)

    def zeros(self, shape) -> np.ndarray:
        return np.zeros(shape, dtype=self.dtype)

    def asarray(self, x) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=self.dtype)

    # -- kernels --------------------------------------------------------------------------------
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

    def linear_forward(self, x, w, b, out, relu=False):
        """``out = x @ w + b``, then ReLU if ``relu``."""
        raise NotImplementedError

    def linear_backward_input(self, dy, w, y, out):
        """``out = (dy @ w.T) * (y > 0)``: the gradient at a ReLU layer's output ``y``."""
        raise NotImplementedError

    def relu_backward(self, dy, y, out):
        """``out = dy * (y > 0)`` where ``y`` is the ReLU output; ``out`` may be ``dy``."""
        raise NotImplementedError

    def bias_grad(self, dy, out):
        """``out = dy.sum(axis=0)``."""
        raise NotImplementedError

    def softmax_xent(self, logits, labels, dlogits=None):
        """Mean softmax cross-entropy over the rows and the number of rows whose argmax is the label.

        Returns ``(loss, correct)``. Fills ``dlogits = (softmax(logits) - onehot(labels)) / rows``
        unless it is ``None``. ``labels`` is int64.
        """
        raise NotImplementedError

    def sgd_update(self, param, grad, lr):
        """``param -= lr * grad`` in place."""
        raise NotImplementedError

    def take_rows(self, src, idx, out):
        """``out[i] = src[idx[i]]``: gathers a shuffled mini-batch. ``idx`` is int64."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.dtype}>"
