"""Batch normalization: per feature on (N, C) inputs, per channel on images."""

from __future__ import annotations

import math

import numpy as np

from .base import Layer


class BatchNorm(Layer):
    """``BatchNorm(momentum=0.1, eps=1e-5)`` with PyTorch's conventions: training normalizes with the
    batch statistics and updates ``running = (1 - momentum) * running + momentum * batch`` (the
    unbiased variance); inference uses the running statistics, which are saved with the model.
    """

    def __init__(self, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        if not (0.0 <= momentum <= 1.0):
            raise ValueError(f"BatchNorm: momentum must be in [0, 1], got {momentum!r}")
        if not (math.isfinite(eps) and eps > 0):
            raise ValueError(f"BatchNorm: eps must be positive, got {eps!r}")
        self.momentum, self.eps = float(momentum), float(eps)

    def compute_output_shape(self, input_shape):
        self.channels = input_shape[-1]
        self.per_sample = int(np.prod(input_shape[:-1], dtype=np.int64))  # rows each sample contributes
        return input_shape

    def build(self, input_shape, backend):
        shape = super().build(input_shape, backend)
        self.save_mean = backend.empty((self.channels,))
        self.save_invstd = backend.empty((self.channels,))
        return shape

    def param_shapes(self):
        return [(self.channels,), (self.channels,)]

    @property
    def param_names(self):
        return ["gamma", "beta"]

    def init_params(self, rng):
        return [np.ones(self.channels), np.zeros(self.channels)]

    def state_shapes(self):
        return [(self.channels,), (self.channels,)]

    @property
    def state_names(self):
        return ["running_mean", "running_var"]

    def init_state(self):
        return [np.zeros(self.channels), np.ones(self.channels)]

    def _rows(self, a, n):
        return self.backend.reshape(a, (n * self.per_sample, self.channels))

    def forward(self, x, training):
        be, n = self.backend, x.shape[0]
        y = self._bufs.get("y", n, self.output_shape)
        (gamma, beta), (mean, var) = self.params, self.state
        self.x2 = self._rows(x, n)
        if training:
            be.batchnorm_forward_train(self.x2, gamma, beta, self._rows(y, n), self.save_mean, self.save_invstd, mean,
                                       var, self.eps, self.momentum)
        else:
            be.batchnorm_forward_infer(self.x2, gamma, beta, mean, var, self._rows(y, n), self.eps)
        return y

    def backward(self, dy):
        n = dy.shape[0]
        dx = self._bufs.get("dx", n, self.input_shape)
        self.backend.batchnorm_backward(self._rows(dy, n), self.x2, self.params[0], self.save_mean, self.save_invstd,
                                        self._rows(dx, n), self.grads[0], self.grads[1])
        return dx

    def get_config(self):
        return {"momentum": self.momentum, "eps": self.eps}
