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

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(f"Dense needs a flat input, got shape {input_shape}; put Flatten() before it")
        self.fan_in = input_shape[0]
        return (self.units,)

    def param_shapes(self):
        return [(self.fan_in, self.units), (self.units,)]

    def from_api(self, k, value):
        order = self.plan.input_order  # row i of the internal W is row order[i] of the API's
        return value[order] if k == 0 and order is not None else value

    def to_api(self, k, value):
        order = self.plan.input_order
        if k == 0 and order is not None:
            api = np.empty_like(value)
            api[order] = value
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

    def backward(self, dy, sgd_lr=None):
        """As ``Layer.backward``; with ``sgd_lr`` the gradient kernel applies plain SGD to W and b
        (``W -= sgd_lr * x^T dy``, ``b -= sgd_lr * sum(dy)``) instead of filling the gradients."""
        be, plan = self.backend, self.plan
        if self.activation == "relu" and not plan.output_grad_masked:
            be.relu_backward(dy, self.y, dy)
        dx = None
        if plan.needs_input_grad:  # first: a folded update below changes W
            dx = self._bufs.get("dx", dy.shape[0], (self.fan_in,))
            be.linear_backward_input(dy, self.params[0], self.x if plan.mask_input_grad else None, dx)
        if sgd_lr is None:
            be.linear_weight_grad(self.x, dy, self.grads[0], self.grads[1])
        else:
            be.linear_weight_grad(self.x, dy, self.params[0], self.params[1], alpha=-sgd_lr, beta=1.0)
        return dx

    def get_config(self):
        return {"units": self.units, "activation": self.activation}
