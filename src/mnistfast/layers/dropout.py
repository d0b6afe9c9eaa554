"""Inverted dropout from a counter-based generator."""

from __future__ import annotations

from .base import Layer


class Dropout(Layer):
    """``Dropout(rate)``: in training, zeroes each element with probability ``rate`` and scales the
    rest by ``1 / (1 - rate)``; at inference, the identity.

    The mask is a hash of (layer seed, training step, element index), so every backend drops the
    same elements and the backward pass regenerates the mask instead of storing it.
    """

    def __init__(self, rate: float):
        super().__init__()
        if not (isinstance(rate, (int, float)) and 0.0 <= rate < 1.0):
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.step = 0

    def forward(self, x, training):
        if not training or self.rate == 0.0:
            self._active = False
            return x
        self._active = True
        self.step += 1
        y = self._bufs.get("y", x.shape[0], self.output_shape)
        self.backend.dropout(x, y, self.rate, self.seed, self.step)
        return y

    def backward(self, dy):
        if self._active:
            self.backend.dropout(dy, dy, self.rate, self.seed, self.step)
        return dy

    def get_config(self):
        return {"rate": self.rate}
