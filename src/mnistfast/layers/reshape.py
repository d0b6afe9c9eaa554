"""Reshape and Flatten, in the API's (C, H, W) order.

Inside the model images are channels-last, so going between an image and a flat vector is a
batched transpose (skipped when C or H*W is 1, where both orders agree). Flatten therefore
yields (C, H, W) order, and a Dense layer after it takes the same weights as in PyTorch. When a
Dense reads the flat vector, the transpose moves into that layer's weights instead: Flatten passes
the channels-last data on unchanged and the Dense keeps its weight rows in that order, putting
them back in (C, H, W) order whenever they cross the API (get_params, set_params, saving). That
choice is the fusion plan's (``flatten_order`` in ``mnistfast.fusion``): the layer sees it as
``plan.pass_through``.
"""

from __future__ import annotations

import math

import numpy as np

from .base import Layer, api_shape, internal_shape


class Reshape(Layer):
    """``Reshape(shape)``: ``shape`` excludes the batch axis, in API order; one entry may be -1."""

    def __init__(self, shape):
        super().__init__()
        shape = tuple(int(d) for d in shape)
        if sum(d == -1 for d in shape) > 1 or any(d < 1 and d != -1 for d in shape) or not shape:
            raise ValueError(f"{type(self).__name__}: bad target shape {shape}")
        self.shape = shape

    def compute_output_shape(self, input_shape):
        # Python integers: exact for any shape a config can name (int64 products wrap around).
        size = math.prod(input_shape)
        known = math.prod(d for d in self.shape if d != -1)
        target = tuple(size // known if d == -1 else d for d in self.shape)
        if math.prod(target) != size or len(target) not in (1, 3):
            raise ValueError(f"{type(self).__name__}: cannot reshape {api_shape(input_shape)} ({size} values) to "
                             f"{self.shape}; the target must be (features,) or (C, H, W) of the same size")
        self.size = size
        return internal_shape(target)

    @staticmethod
    def _needs_transpose(shape):
        return len(shape) == 3 and shape[2] > 1 and shape[0] * shape[1] > 1

    def reorders_to_vector(self) -> bool:
        """A multi-channel image to a vector: a real transpose (see ``mnistfast.fusion``)."""
        return len(self.output_shape) == 1 and self._needs_transpose(self.input_shape)

    def _move(self, x, src_shape, dst_shape, name):
        """``x`` (n, *src_shape) -> (n, *dst_shape), through the API's flat (C, H, W) order (or,
        passing through, the internal one: a reshape)."""
        be, n = self.backend, x.shape[0]
        if self.plan.pass_through:
            return be.reshape(x, (n, *dst_shape))
        if self._needs_transpose(src_shape):  # (n, HW, C) -> (n, C, HW)
            h, w, c = src_shape
            flat = self._bufs.get(name + "_flat", n, (self.size,))
            be.batched_transpose(be.reshape(x, (n, h * w, c)), be.reshape(flat, (n, c, h * w)))
        else:
            flat = be.reshape(x, (n, self.size))
        if self._needs_transpose(dst_shape):  # (n, C, HW) -> (n, HW, C)
            h, w, c = dst_shape
            out = self._bufs.get(name, n, dst_shape)
            be.batched_transpose(be.reshape(flat, (n, c, h * w)), be.reshape(out, (n, h * w, c)))
            return out
        return be.reshape(flat, (n, *dst_shape))

    def forward(self, x, training):
        return self._move(x, self.input_shape, self.output_shape, "y")

    def backward(self, dy):
        return self._move(dy, self.output_shape, self.input_shape, "dx")

    def get_config(self):
        return {"shape": list(self.shape)}


class Flatten(Reshape):
    """``(C, H, W) -> (C * H * W,)``, in that order."""

    def __init__(self):
        super().__init__((-1,))

    def get_config(self):
        return {}
