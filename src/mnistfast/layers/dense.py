"""Fully connected layer: ``y = x @ W + b`` with an optional fused ReLU."""

from __future__ import annotations

import math

import numpy as np

from .base import Layer

ACTIVATIONS = (None, "relu")


class Dense(Layer):
    """``Dense(units, activation=None | "relu")``. ``W`` is ``(fan_in, units)``, He-initialised."""

    can_mask_input_grad = True
    can_apply_sgd = True
    takes_input_order = True

    def __init__(self, units: int, activation=None):
        super().__init__()
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ValueError(f"Dense: units must be a positive integer, got {units!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"Dense: activation must be None or 'relu', got {activation!r} "
                             "(other activations are layers: LeakyReLU(), Sigmoid(), Tanh())")
        self.units, self.activation = units, activation
        self.input_order = None  # row i of the internal W is row input_order[i] of the API's

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(f"Dense needs a flat input, got shape {input_shape}; put Flatten() before it")
        self.fan_in = input_shape[0]
        self.input_order = None  # until a Flatten before it folds its transpose in
        return (self.units,)

    def param_shapes(self):
        return [(self.fan_in, self.units), (self.units,)]

    def from_api(self, k, value):
        return value[self.input_order] if k == 0 and self.input_order is not None else value

    def to_api(self, k, value):
        if k == 0 and self.input_order is not None:
            api = np.empty_like(value)
            api[self.input_order] = value
            return api
        return value

    @property
    def param_names(self):
        return ["W", "b"]

    def init_params(self, rng):
        # Drawn in float64, then rounded by the backend: every backend and dtype starts alike.
        w = rng.standard_normal((self.fan_in, self.units)) * math.sqrt(2.0 / self.fan_in)
        return [w, np.zeros(self.units)]

    def forward(self, x, training):
        n = x.shape[0]
        self.x = x
        self.y = self._bufs.get("y", n, (self.units,))
        self.backend.linear_forward(x, self.params[0], self.params[1], self.y, self.activation == "relu")
        return self.y

    def backward(self, dy):
        be = self.backend
        if self.activation == "relu" and not self.output_grad_masked:
            be.relu_backward(dy, self.y, dy)
        dx = None
        if self.needs_input_grad:  # first: a folded update below changes W
            dx = self._bufs.get("dx", dy.shape[0], (self.fan_in,))
            be.linear_backward_input(dy, self.params[0], self.x if self.mask_input_grad else None, dx)
        if self.apply_sgd is None:
            be.linear_weight_grad(self.x, dy, self.grads[0], self.grads[1])
        else:  # W += -lr * x^T dy and b += -lr * sum(dy) by the gradient kernel itself
            be.linear_weight_grad(self.x, dy, self.params[0], self.params[1], alpha=-self.apply_sgd.lr, beta=1.0)
        return dx

    def get_config(self):
        return {"units": self.units, "activation": self.activation}
