"""2-D convolution over channels-last images, as the backend's conv2d kernels."""

from __future__ import annotations

import math

import numpy as np

from .base import Layer
from .dense import ACTIVATIONS


def _pair(value, what):
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in pair):
        raise ValueError(f"Conv2D: {what} must be a positive integer or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


class Conv2D(Layer):
    """``Conv2D(filters, kernel_size, stride=1, padding="valid" | "same", use_bias=True, activation=None)``
    (``strides=`` is taken for ``stride``, as Keras names it).

    At the API the weight is ``(filters, in_channels, kh, kw)`` and the bias ``(filters,)``, as in
    PyTorch. ``"same"`` pads like TensorFlow and PyTorch: ``ceil(size / stride)`` outputs, the
    odd padding row or column at the bottom/right.
    """

    can_pool_output = True

    def __init__(self, filters: int, kernel_size, stride=1, padding="valid", use_bias: bool = True, activation=None,
                 *, strides=None):
        super().__init__()
        if strides is not None:  # Keras's name
            if stride != 1 and _pair(stride, "stride") != _pair(strides, "strides"):
                raise ValueError(f"Conv2D: stride={stride!r} and strides={strides!r} disagree; give one")
            stride = strides
        if isinstance(filters, bool) or not isinstance(filters, int) or filters < 1:
            raise ValueError(f"Conv2D: filters must be a positive integer, got {filters!r}")
        if padding not in ("valid", "same"):
            raise ValueError(f"Conv2D: padding must be 'valid' or 'same', got {padding!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"Conv2D: activation must be None or 'relu', got {activation!r}")
        self.filters, self.padding, self.use_bias, self.activation = filters, padding, bool(use_bias), activation
        self.kernel = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"Conv2D needs an image input (C, H, W), got shape {input_shape}")
        h, w, self.channels = input_shape
        (kh, kw), (sh, sw) = self.kernel, self.stride
        if self.padding == "valid":
            oh, ow, self.pad = (h - kh) // sh + 1, (w - kw) // sw + 1, (0, 0)
            self.pads = (0, 0, 0, 0)
            if h < kh or w < kw:
                raise ValueError(f"Conv2D: a {kh}x{kw} kernel does not fit a {h}x{w} input with padding='valid'")
        else:
            oh, ow = -(-h // sh), -(-w // sw)
            total_h, total_w = max(0, (oh - 1) * sh + kh - h), max(0, (ow - 1) * sw + kw - w)
            self.pad = (total_h // 2, total_w // 2)  # the kernels' (top, left); the rest falls at the far side
            # (top, left, bottom, right), as ONNX and PyTorch's ZeroPad2d need it spelled out
            self.pads = (total_h // 2, total_w // 2, total_h - total_h // 2, total_w - total_w // 2)
        self.patch = kh * kw * self.channels
        return (oh, ow, self.filters)

    def param_shapes(self):
        return [(self.patch, self.filters)] + ([(self.filters,)] if self.use_bias else [])

    def api_param_shapes(self):
        kh, kw = self.kernel
        return [(self.filters, self.channels, kh, kw)] + ([(self.filters,)] if self.use_bias else [])

    @property
    def param_names(self):
        return ["W", "b"][: len(self.param_shapes())]

    def init_params(self, rng):
        w = rng.standard_normal(self.api_param_shapes()[0]) * math.sqrt(2.0 / self.patch)  # He normal
        return [w] + ([np.zeros(self.filters)] if self.use_bias else [])

    def to_api(self, k, value):
        if k:
            return value
        kh, kw = self.kernel
        return np.ascontiguousarray(value.reshape(kh, kw, self.channels, self.filters).transpose(3, 2, 0, 1))

    def from_api(self, k, value):
        return value if k else np.ascontiguousarray(value.transpose(2, 3, 1, 0).reshape(self.patch, self.filters))

    def forward(self, x, training):
        """The convolution's output; where the plan fuses the pool after it (``plan.pool``), the
        pooled map, from ``conv2d_maxpool_forward``."""
        self.x = x
        be, n, pool = self.backend, x.shape[0], self.plan.pool
        bias = self.params[1] if self.use_bias else None
        relu = self.activation == "relu"
        if pool:
            oh, ow, f = self.output_shape
            self.y = self._bufs.get("pooled", n, (oh // pool, ow // pool, f))
            self.argmax = self._bufs.get("argmax", n, self.y.shape[1:], dtype=np.int32)
            be.conv2d_maxpool_forward(x, self.params[0], bias, self.y, self.argmax, self.kernel, self.stride, self.pad,
                                      (oh, ow), pool, relu)
            return self.y
        self.y = self._bufs.get("y", n, self.output_shape)
        be.conv2d_forward(x, self.params[0], bias, self.y, self.kernel, self.stride, self.pad, relu)
        return self.y

    def backward(self, dy):
        be, plan = self.backend, self.plan
        dx = self._bufs.get("dx", dy.shape[0], self.input_shape) if plan.needs_input_grad else None
        db = self.grads[1] if self.use_bias else None
        relu = self.activation == "relu"
        if plan.pool:  # dy is the pooled map's gradient; max and ReLU commute
            be.conv2d_maxpool_backward(dy, self.argmax, self.y, self.x, self.params[0], self.grads[0], db, self.kernel,
                                       self.stride, self.pad, self.output_shape[:2], plan.pool, relu, dx)
            return dx
        if relu and not plan.output_grad_masked:
            be.activation_backward(dy, self.y, dy, "relu")
        be.conv2d_backward(dy, self.x, self.params[0], self.grads[0], db, dx, self.kernel, self.stride, self.pad)
        return dx

    def get_config(self):
        return {"filters": self.filters, "kernel_size": list(self.kernel), "stride": list(self.stride),
                "padding": self.padding, "use_bias": self.use_bias, "activation": self.activation}
