"""Max pooling and global average pooling over channels-last images."""

from __future__ import annotations

import numpy as np

from .base import Layer


class MaxPool2D(Layer):
    """``MaxPool2D(pool=2)``: the maximum of each ``pool x pool`` window, stride ``pool`` (rows or
    columns that do not fill a window are dropped, as in Keras and PyTorch). Keras's
    ``pool_size=`` is taken for ``pool``, and ``strides=`` when it equals the pool."""

    can_mask_input_grad = True

    def __init__(self, pool: int = 2, *, pool_size=None, strides=None):
        super().__init__()
        if pool_size is not None:  # Keras's name, an int or a square pair
            pool_size = pool_size[0] if isinstance(pool_size, (tuple, list)) and len(set(pool_size)) == 1 \
                and len(pool_size) == 2 else pool_size
            pool = pool_size
        if strides is not None and (strides[0] if isinstance(strides, (tuple, list)) and len(set(strides)) == 1
                                    else strides) != pool:
            raise ValueError(f"MaxPool2D: strides={strides!r} differs from the pool {pool!r}; only non-overlapping "
                             "windows (strides equal to the pool size) are supported")
        if isinstance(pool, bool) or not isinstance(pool, int) or pool < 1:
            raise ValueError(f"MaxPool2D: pool must be a positive integer, got {pool!r}")
        self.pool = pool

    @property
    def max_pool_window(self) -> int:
        return self.pool

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"MaxPool2D needs an image input (C, H, W), got shape {input_shape}")
        h, w, c = input_shape
        if h < self.pool or w < self.pool:
            raise ValueError(f"MaxPool2D: a {self.pool}x{self.pool} pool does not fit a {h}x{w} input")
        return (h // self.pool, w // self.pool, c)

    def forward(self, x, training):
        n = x.shape[0]
        self.y = self._bufs.get("y", n, self.output_shape)
        self.argmax = self._bufs.get("argmax", n, self.output_shape, dtype=np.int32)
        self.backend.maxpool_forward(x, self.y, self.argmax, self.pool)
        return self.y

    def backward(self, dy):
        dx = self._bufs.get("dx", dy.shape[0], self.input_shape)
        self.backend.maxpool_backward(dy, self.argmax, self.y, dx, self.pool, self.plan.mask_input_grad)
        return dx

    def get_config(self):
        return {"pool": self.pool}


class GlobalAvgPool2D(Layer):
    """The mean of each channel over the image: ``(C, H, W) -> (C,)``."""

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"GlobalAvgPool2D needs an image input (C, H, W), got shape {input_shape}")
        return (input_shape[2],)

    def forward(self, x, training):
        y = self._bufs.get("y", x.shape[0], self.output_shape)
        self.backend.global_avgpool_forward(x, y)
        return y

    def backward(self, dy):
        dx = self._bufs.get("dx", dy.shape[0], self.input_shape)
        self.backend.global_avgpool_backward(dy, dx)
        return dx
