"""The pure-NumPy reference: the ground truth every other backend is tested against.

Written to be obviously right rather than fast. Runs in any float dtype, float64 included
(used for the finite-difference gradient checks).
"""

from __future__ import annotations

import numpy as np

from .base import Backend


class NumpyBackend(Backend):
    name = "numpy"

    def __init__(self, dtype=np.float32):
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise ValueError(f"numpy backend: dtype must be a float type, got {self.dtype}")

    def _gemm(self, a, b, out, trans_a, trans_b, alpha, beta):
        prod = (a.T if trans_a else a) @ (b.T if trans_b else b)
        if beta == 0.0:
            out[...] = alpha * prod
        else:
            out[...] = alpha * prod + beta * out
        return out

    def linear_forward(self, x, w, b, out, relu=False):
        np.matmul(x, w, out=out)
        out += b
        if relu:
            np.maximum(out, 0, out=out)
        return out

    def linear_backward_input(self, dy, w, y, out):
        np.matmul(dy, w.T, out=out)
        if y is not None:
            out *= y > 0
        return out

    def relu_backward(self, dy, y, out):
        np.multiply(dy, y > 0, out=out)
        return out

    def bias_grad(self, dy, out):
        np.sum(dy, axis=0, out=out)
        return out

    def softmax_xent(self, logits, labels, dlogits=None):
        rows, cols = logits.shape
        if rows == 0:
            raise ValueError("softmax_xent: logits is empty")
        labels = np.asarray(labels)
        if labels.shape != (rows,):
            raise ValueError(f"softmax_xent: labels has shape {labels.shape}, expected ({rows},)")
        if labels.min() < 0 or labels.max() >= cols:
            bad = int(np.argmax((labels < 0) | (labels >= cols)))
            raise ValueError(f"softmax_xent: labels[{bad}] = {labels[bad]} is out of range for {cols} classes")
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_sum = np.log(np.exp(shifted).sum(axis=1))
        picked = shifted[np.arange(rows), labels]
        loss = float(np.mean(log_sum - picked))
        correct = int(np.count_nonzero(logits.argmax(axis=1) == labels))
        if dlogits is not None:
            probs = np.exp(shifted - log_sum[:, None])
            probs[np.arange(rows), labels] -= 1.0
            np.divide(probs, rows, out=dlogits)
        return loss, correct

    def sgd_update(self, param, grad, lr):
        param -= self.dtype.type(lr) * grad
        return param

    def take_rows(self, src, idx, out):
        np.take(src, idx, axis=0, out=out)
        return out
