"""The fusion plan: the one place that decides which work of a layer stack runs fused.

Layers compute their own outputs only. Several neighbouring pairs run faster as one kernel, and
every such decision is taken here, from the layers' declared capabilities (the class attributes
and methods of ``layers.base.Layer`` that say what a layer can take over), when a model is built:

``conv_pool``
    A ``Conv2D`` followed by a ``MaxPool2D`` pools its own output (``conv2d_maxpool_forward`` and
    ``_backward``): the full-resolution map need not reach memory. The pool layer is then skipped.
``relu_mask``
    A layer that applies ReLU to its output (``activation="relu"``) followed by one that can mask
    its input gradient (``Dense``, ``MaxPool2D``): the ReLU derivative is applied by the second
    layer's backward kernel (a GEMM epilogue, the pooled tensor), not by a separate pass.
``flatten_order``
    A ``Flatten`` (or ``Reshape`` to a vector) of a multi-channel image, followed by a ``Dense``:
    the flatten hands on the channels-last data unchanged, and the ``Dense`` keeps its weight rows
    in that order (converted whenever the weights cross the API), so no transpose runs.
``sgd_fold``
    Plain SGD (no momentum, decay or clipping) when every trainable layer can apply it: each
    layer's weight-gradient GEMM writes ``p -= lr * grad`` into the parameters directly. This one
    depends on the optimizer, so the plan answers it per optimizer (:meth:`FusionPlan.folds_sgd`)
    and the learning rate reaches the layers as an argument of ``backward``.

Each fusion can be switched off (``Sequential(..., fusions=...)``): fused and unfused stacks
compute the same function, which the tests check fusion by fusion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FUSIONS = ("conv_pool", "relu_mask", "flatten_order", "sgd_fold")


def check_fusions(fusions) -> frozenset:
    """The enabled fusions from a user's argument: ``None`` (all), or an iterable of names."""
    if fusions is None:
        return frozenset(FUSIONS)
    if isinstance(fusions, str):
        fusions = (fusions,)
    names = frozenset(fusions)
    unknown = sorted(names - set(FUSIONS))
    if unknown:
        raise ValueError(f"unknown fusion(s) {unknown}; choose from {list(FUSIONS)}")
    return names


@dataclass(frozen=True, eq=False)
class LayerPlan:
    """What the plan asks of one layer; a layer reads only its own.

    Attributes
    ----------
    skip : bool
        The layer before runs this layer's work in its own kernels; the model does not call it.
    pool : int
        ``Conv2D`` only: max-pool the output with this window (0: no pooling).
    mask_input_grad : bool
        ``backward`` returns ``dx * (x > 0)``: the ReLU derivative of the layer before.
    output_grad_masked : bool
        The ``dy`` given to ``backward`` already carries this layer's ReLU derivative.
    input_order : numpy.ndarray or None
        ``Dense`` only: row ``i`` of the internal weight is row ``input_order[i]`` of the API's.
    pass_through : bool
        ``Reshape`` only: hand the data on unchanged (the next layer reads the internal order).
    needs_input_grad : bool
        ``backward`` must return the input gradient (off up to the first trainable layer).
    """

    skip: bool = False
    pool: int = 0
    mask_input_grad: bool = False
    output_grad_masked: bool = False
    input_order: np.ndarray | None = None
    pass_through: bool = False
    needs_input_grad: bool = True


class FusionPlan:
    """The fusions of one built layer stack.

    Parameters
    ----------
    layers : list of Layer
        Built layers (their ``input_shape`` and ``output_shape`` set).
    enabled : iterable of str, optional
        The fusions allowed (names from ``FUSIONS``); all by default.

    Attributes
    ----------
    layers : list of LayerPlan
        One entry per layer, in order.
    forward_order, backward_order : list of int
        The indices of the layers the model calls in each pass.
    notes : list of str
        One line per fusion applied, for ``summary``.
    """

    def __init__(self, layers, enabled=None):
        self.enabled = check_fusions(enabled)
        n = len(layers)
        plan = [dict() for _ in range(n)]
        self.notes = []
        pairs = list(zip(range(n), layers, layers[1:]))

        if "conv_pool" in self.enabled:
            for i, layer, nxt in pairs:
                if layer.can_pool_output and nxt.max_pool_window and not plan[i].get("skip"):
                    plan[i]["pool"] = nxt.max_pool_window  # the ReLU derivative, if any, is in the fused kernels
                    plan[i + 1]["skip"] = True
                    self.notes.append(f"conv_pool: layer {i} ({type(layer).__name__}) also computes layer {i + 1} "
                                      f"({type(nxt).__name__})")
        if "relu_mask" in self.enabled:
            for i, layer, nxt in pairs:
                fused = plan[i].get("pool") or plan[i].get("skip") or plan[i + 1].get("skip")
                if not fused and layer.fused_relu and nxt.can_mask_input_grad:
                    plan[i]["output_grad_masked"] = plan[i + 1]["mask_input_grad"] = True
                    self.notes.append(f"relu_mask: layer {i + 1} ({type(nxt).__name__}) applies layer {i}'s ReLU "
                                      "derivative to its input gradient")
        if "flatten_order" in self.enabled:
            for i, layer, nxt in pairs:
                if layer.reorders_to_vector() and nxt.takes_input_order:
                    h, w, c = layer.input_shape  # element i of the channels-last vector is order[i] of (C, H, W)
                    plan[i]["pass_through"] = True
                    plan[i + 1]["input_order"] = np.arange(c * h * w).reshape(c, h * w).T.ravel()
                    self.notes.append(f"flatten_order: layer {i + 1} ({type(nxt).__name__}) reads layer {i}'s input "
                                      "in channels-last order; no transpose runs")

        # Nothing before the first trainable layer needs a gradient.
        trainable = [i for i, layer in enumerate(layers) if layer.param_shapes()]
        first = trainable[0] if trainable else n
        for i in range(n):
            plan[i].setdefault("needs_input_grad", i > first)
        self.layers = [LayerPlan(**p) for p in plan]
        self.forward_order = [i for i in range(n) if not self.layers[i].skip]
        self.backward_order = [i for i in reversed(range(first, n)) if not self.layers[i].skip]
        self._sgd_foldable = "sgd_fold" in self.enabled and all(layers[i].can_apply_sgd for i in trainable)

    def folds_sgd(self, optimizer) -> bool:
        """Whether a training step with ``optimizer`` applies it inside the layers' backward."""
        return self._sgd_foldable and optimizer.plain_sgd

    def describe(self) -> list:
        """The fusions in force, one line each (the SGD fold as a condition on the optimizer)."""
        lines = list(self.notes)
        if self._sgd_foldable:
            lines.append("sgd_fold: with plain SGD (no momentum, decay or clipping) the weight-gradient kernels "
                         "apply the update")
        return lines or ["(none)"]


__all__ = ["FUSIONS", "FusionPlan", "LayerPlan", "check_fusions"]
