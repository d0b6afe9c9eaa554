"""Activation layers. (Dense and Conv2D also take ``activation="relu"``, fused into their kernel.)"""

from __future__ import annotations

import math

from .base import Layer


class _Activation(Layer):
    kind = ""

    def __init__(self, alpha: float = 0.0):
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x, training):
        self.y = self._bufs.get("y", x.shape[0], self.output_shape)
        self.backend.activation_forward(x, self.y, self.kind, self.alpha)
        return self.y

    def backward(self, dy):
        self.backend.activation_backward(dy, self.y, dy, self.kind, self.alpha)  # in place: dy is ours
        return dy


class ReLU(_Activation):
    """``max(x, 0)``, element-wise."""

    kind = "relu"

    def __init__(self):
        super().__init__()


class LeakyReLU(_Activation):
    """``LeakyReLU(alpha=0.01)``: ``x`` where ``x > 0``, else ``alpha * x``."""

    kind = "leaky_relu"

    def __init__(self, alpha: float = 0.01):
        if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"LeakyReLU: alpha must be a finite number >= 0, got {alpha!r}")
        super().__init__(alpha)

    def get_config(self):
        return {"alpha": self.alpha}


class Sigmoid(_Activation):
    """``1 / (1 + exp(-x))``, element-wise."""

    kind = "sigmoid"

    def __init__(self):
        super().__init__()


class Tanh(_Activation):
    """``tanh(x)``, element-wise."""

    kind = "tanh"

    def __init__(self):
        super().__init__()
