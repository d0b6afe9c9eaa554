"""What every layer is: a forward/backward pair over backend kernels.

A layer is built for an input shape (without the batch axis, in the model's internal layout:
``(features,)`` or channels-last ``(H, W, C)``) and returns its output shape. The model then
hands it its parameters and gradients as views into one flat buffer each, so an optimizer step is
one kernel call. ``forward(x, training)`` returns the layer's output; ``backward(dy)`` fills the
layer's gradients and returns the gradient for its input (``None`` when ``needs_input_grad`` is
off: the first trainable layer). Buffers are allocated on first use for a batch size and reused.

Layers see arrays only through their backend: they read ``.shape`` and pass arrays to backend
methods, nothing else.
"""

from __future__ import annotations

import numpy as np


class Buffers:
    """A layer's work arrays, by name: ``get(name, rows, tail)`` is a ``(rows, *tail)`` array.

    Each name keeps the largest allocation it has needed; smaller requests get a leading-rows view
    of it, cached, so the steady state of a training loop allocates nothing.
    """

    def __init__(self, backend):
        self.backend = backend
        self._full: dict = {}
        self._views: dict = {}

    def get(self, name: str, rows: int, tail=(), dtype=None):
        key = (name, rows)
        view = self._views.get(key)
        if view is not None:
            return view
        tail = tuple(tail)
        full = self._full.get(name)
        if full is None or full.shape[0] < rows or full.shape[1:] != tail:
            full = self.backend.empty((rows, *tail), dtype=dtype)
            self._full[name] = full
            self._views = {k: v for k, v in self._views.items() if k[0] != name}
        view = full if full.shape[0] == rows else self.backend.rows(full, 0, rows)
        self._views[key] = view
        return view


def api_shape(shape) -> tuple:
    """Internal (H, W, C) -> the API's (C, H, W); flat shapes are the same in both."""
    shape = tuple(shape)
    return (shape[2], shape[0], shape[1]) if len(shape) == 3 else shape


def internal_shape(shape) -> tuple:
    """The API's (C, H, W) -> internal (H, W, C)."""
    shape = tuple(shape)
    return (shape[1], shape[2], shape[0]) if len(shape) == 3 else shape


class Layer:
    # The layer's backward can return dx already multiplied by (x > 0): the ReLU derivative of the
    # layer before it, fused into this layer's kernel (the model turns it on where it applies).
    can_mask_input_grad = False
    can_apply_sgd = False
    # The layer can read its flat input in the model's internal (channels-last) order, holding
    # its weights in that order instead (Dense; see Reshape.fold_order_into).
    takes_input_order = False

    def __init__(self):
        self.backend = None
        self.input_shape = self.output_shape = None
        self.params: list = []
        self.grads: list = []
        self.state: list = []
        self.needs_input_grad = True
        self.mask_input_grad = False  # backward returns dx * (x > 0)
        self.output_grad_masked = False  # the next layer's backward hands back dy * (y > 0)
        self.seed = 0  # set by the model; layers that draw random numbers use it
        self.absorbed = False  # the layer before runs this one inside its own kernels
        # Set by the model during a plain-SGD fit (to the optimizer, for its current lr) on layers
        # that can apply the update themselves (can_apply_sgd): backward then updates the
        # parameters in place instead of filling the gradients.
        self.apply_sgd = None
        self._bufs = None

    # -- building -----------------------------------------------------------------------------------
    def build(self, input_shape, backend) -> tuple:
        self.backend = backend
        self.input_shape = tuple(input_shape)
        self.output_shape = tuple(self.compute_output_shape(self.input_shape))
        self._bufs = Buffers(backend)
        return self.output_shape

    def compute_output_shape(self, input_shape) -> tuple:
        return input_shape

    def absorb(self, nxt) -> bool:
        """Take over ``nxt``'s work with a fused kernel, if this layer has one for it (the model
        asks, and then skips ``nxt`` in both passes). The default: no."""
        return False

    def fold_order_into(self, nxt) -> None:
        """Let ``nxt`` read this layer's output in the internal order, where this layer would only
        rearrange it (Flatten before Dense). Asked once per build, before parameters exist."""

    @property
    def fused_relu(self) -> bool:
        """True when the layer applies ReLU to its own output (Dense/Conv2D with activation='relu')."""
        return getattr(self, "activation", None) == "relu"

    # Trainable parameters: internal shapes, API shapes, initial values (API layout, host arrays).
    def param_shapes(self) -> list:
        return []

    def api_param_shapes(self) -> list:
        return self.param_shapes()

    def init_params(self, rng) -> list:
        return [np.zeros(s) for s in self.api_param_shapes()]

    def to_api(self, k: int, value: np.ndarray) -> np.ndarray:
        """Parameter ``k`` from the internal layout to the API's (host arrays)."""
        return value

    def from_api(self, k: int, value: np.ndarray) -> np.ndarray:
        return value

    # Non-trainable state saved with the model (BatchNorm's running statistics).
    def state_shapes(self) -> list:
        return []

    def init_state(self) -> list:
        return []

    def bind(self, params, grads, state) -> None:
        self.params, self.grads, self.state = list(params), list(grads), list(state)

    @property
    def param_names(self) -> list:
        return []

    @property
    def state_names(self) -> list:
        return []

    # -- running --------------------------------------------------------------------------------
    def forward(self, x, training: bool):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    # -- description ----------------------------------------------------------------------------
    def get_config(self) -> dict:
        """The constructor arguments: ``type(self)(**layer.get_config())`` is the same layer."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
