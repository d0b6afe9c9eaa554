"""What every layer is: a forward/backward pair over backend kernels.

A layer is built for an input shape (without the batch axis, in the model's internal layout:
``(features,)`` or channels-last ``(H, W, C)``) and returns its output shape. The model then
hands it its parameters and gradients as views into one flat buffer each, so an optimizer step is
one kernel call. ``forward(x, training)`` returns the layer's output; ``backward(dy)`` fills the
layer's gradients and returns the gradient for its input (``None`` up to the first trainable
layer). Buffers are allocated on first use for a batch size and reused.

What a layer fuses with its neighbours is not its own decision: the model's fusion plan
(``mnistfast.fusion``) gives each layer a ``LayerPlan`` through ``configure``, and the layer acts
on that alone. No layer reads or writes another layer's fields or the optimizer's.

Layers see arrays only through their backend: they read ``.shape`` and pass arrays to backend
methods, nothing else.
"""

from __future__ import annotations

import numpy as np

from ..fusion import LayerPlan


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

    def clear(self) -> None:
        """Drop every array (the next ``get`` allocates afresh)."""
        self._full.clear()
        self._views.clear()


def api_shape(shape) -> tuple:
    """Internal (H, W, C) -> the API's (C, H, W); flat shapes are the same in both."""
    shape = tuple(shape)
    return (shape[2], shape[0], shape[1]) if len(shape) == 3 else shape


def internal_shape(shape) -> tuple:
    """The API's (C, H, W) -> internal (H, W, C)."""
    shape = tuple(shape)
    return (shape[1], shape[2], shape[0]) if len(shape) == 3 else shape


class Layer:
    """The base of every layer: a forward/backward pair over its backend's kernels.

    Subclasses declare what the fusion plan (``mnistfast.fusion``) may ask of them through the
    class attributes below, and read the plan's answer from their own ``self.plan``.
    """

    # The layer's backward can return dx already multiplied by (x > 0): the ReLU derivative of the
    # layer before it, inside this layer's kernel.
    can_mask_input_grad = False
    # The layer's backward can apply plain SGD to its parameters itself (``backward(dy, sgd_lr)``).
    can_apply_sgd = False
    # The layer can read a flat input in the model's internal (channels-last) order, holding its
    # weights in that order instead (Dense).
    takes_input_order = False
    # The layer can max-pool its own output in its kernels (Conv2D), taking over a following layer
    # whose max_pool_window is not 0 (MaxPool2D).
    can_pool_output = False
    max_pool_window = 0

    def __init__(self):
        self.backend = None
        self.input_shape = self.output_shape = None
        self.params: list = []
        self.grads: list = []
        self.state: list = []
        self.seed = 0  # set by the model; layers that draw random numbers use it
        self.plan = LayerPlan()
        self._bufs = None

    @property
    def trainable(self) -> bool:
        """Always True: every layer's parameters are trained (freezing layers is not supported, so
        ``layer.trainable = False`` is refused rather than ignored)."""
        return True

    @trainable.setter
    def trainable(self, value) -> None:
        if value is not True:
            raise ValueError(f"{type(self).__name__}: trainable={value!r} is not supported; every layer is trained")

    # -- building -----------------------------------------------------------------------------------
    def build(self, input_shape, backend) -> tuple:
        """Attach the layer to ``backend`` for inputs of ``input_shape`` (internal layout, no batch
        axis) and return its output shape. Resets the fusion plan to "no fusion"."""
        self.backend = backend
        self.input_shape = tuple(input_shape)
        self.output_shape = tuple(self.compute_output_shape(self.input_shape))
        self._bufs = Buffers(backend)
        self.plan = LayerPlan()
        return self.output_shape

    def configure(self, plan: LayerPlan) -> None:
        """Take the fusion plan's entry for this layer (after ``build``, before parameters exist:
        it may change the parameters' internal layout)."""
        self.plan = plan

    def compute_output_shape(self, input_shape) -> tuple:
        """The output shape (internal layout, no batch axis) for ``input_shape``."""
        return input_shape

    def reorders_to_vector(self) -> bool:
        """True when the layer only rearranges an image into a vector in the API's order, work a
        layer that ``takes_input_order`` can take over (Flatten before Dense)."""
        return False

    @property
    def fused_relu(self) -> bool:
        """True when the layer applies ReLU to its own output (Dense/Conv2D with activation='relu')."""
        return getattr(self, "activation", None) == "relu"

    # Trainable parameters: internal shapes, API shapes, initial values (API layout, host arrays).
    def param_shapes(self) -> list:
        """The trainable parameters' shapes in the internal layout, in ``param_names`` order."""
        return []

    def api_param_shapes(self) -> list:
        """The trainable parameters' shapes as ``get_params`` returns them (the API's layout)."""
        return self.param_shapes()

    def init_params(self, rng) -> list:
        """Initial parameter values drawn from the NumPy generator ``rng`` (host arrays, API layout)."""
        return [np.zeros(s) for s in self.api_param_shapes()]

    def to_api(self, k: int, value: np.ndarray) -> np.ndarray:
        """Parameter ``k`` from the internal layout to the API's (host arrays)."""
        return value

    def from_api(self, k: int, value: np.ndarray) -> np.ndarray:
        """Parameter ``k`` from the API's layout to the internal one (host arrays); ``to_api``'s inverse."""
        return value

    # Non-trainable state saved with the model (BatchNorm's running statistics).
    def state_shapes(self) -> list:
        """The shapes of the non-trainable state saved with the model, in ``state_names`` order."""
        return []

    def init_state(self) -> list:
        """Initial values of the state (host arrays)."""
        return []

    def bind(self, params, grads, state) -> None:
        """Take the backend views the model made into its flat parameter, gradient and state buffers."""
        self.params, self.grads, self.state = list(params), list(grads), list(state)

    @property
    def param_names(self) -> list:
        """Names of the trainable parameters (``["W", "b"]`` for Dense), as saved."""
        return []

    @property
    def state_names(self) -> list:
        """Names of the non-trainable state arrays, as saved."""
        return []

    # -- running --------------------------------------------------------------------------------
    def forward(self, x, training: bool):
        """The layer's output for the backend array ``x`` (``(n, *input_shape)``)."""
        raise NotImplementedError

    def backward(self, dy):
        """Fill ``self.grads`` from the output gradient ``dy``; return the input gradient (None
        where ``self.plan.needs_input_grad`` is off). May overwrite ``dy``."""
        raise NotImplementedError

    # -- description ----------------------------------------------------------------------------
    def get_config(self) -> dict:
        """The constructor arguments: ``type(self)(**layer.get_config())`` is the same layer."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
