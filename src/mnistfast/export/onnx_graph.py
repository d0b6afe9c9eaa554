"""A model (or an ensemble) as one ONNX graph: raw pixels in, class probabilities out.

The graph takes what ``predict_proba`` takes from a file: ``pixels``, ``(batch, features)`` uint8
with a dynamic batch axis. Its first nodes are the model's preprocessing (a model without one is
fed pixels scaled to [0, 1], as ``mnistfast eval`` does), then the reshape to the model's
``(C, H, W)`` input, then one or two nodes per layer in ONNX's own NCHW layout (the API's, so the
API weights go in unchanged), then the softmax. For inference, dropout is dropped and a batch
norm becomes one per-channel affine map, folded into the convolution or dense layer before it when
nothing (no activation) stands between them. An ensemble's members share the input and
preprocessing, and the graph returns the mean of their probabilities. The model's metadata
property ``classes`` holds the class names of the probabilities' columns, as a JSON list.
"""

from __future__ import annotations

import json

import numpy as np

from ..classes import class_names

OPSET = 17
# ONNX IR version 8 (ONNX 1.10+): every runtime of the last years reads it.
IR_VERSION = 8


class _Graph:
    """Nodes and initializers under construction, with unique names."""

    def __init__(self, helper, numpy_helper):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers, self._count = [], [], 0

    def name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, stem: str, value) -> str:
        name = self.name(stem)
        array = np.asarray(value)
        array = array.astype(np.int64 if array.dtype.kind in "iu" else np.float32)
        self.initializers.append(self.numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs, stem=None, **attrs) -> str:
        out = self.name(stem or op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out], **attrs))
        return out


def _preprocess(g, pixels: str, preprocessing) -> str:
    x = g.op("Cast", [pixels], "as_float", to=1)  # 1 = FLOAT
    kind = "scale" if preprocessing is None else preprocessing.kind
    if kind == "scale":
        return g.op("Div", [x, g.const("255", np.float32(255.0))], "scaled")
    if kind == "standardize":
        centred = g.op("Sub", [x, g.const("mean", preprocessing.mean.reshape(1, -1))], "centred")
        return g.op("Div", [centred, g.const("std", preprocessing.std.reshape(1, -1))], "standardized")
    return x


def _activation(g, x: str, kind: str, alpha: float = 0.0) -> str:
    if kind == "relu":
        return g.op("Relu", [x]) if alpha == 0.0 else g.op("LeakyRelu", [x], alpha=float(alpha))
    if kind == "leaky_relu":
        return g.op("LeakyRelu", [x], alpha=float(alpha))
    if kind == "sigmoid":
        return g.op("Sigmoid", [x])
    if kind == "tanh":
        return g.op("Tanh", [x])
    raise ValueError(f"export: no ONNX form for the activation {kind!r}")


def _bn_affine(gamma, beta, mean, var, eps):
    scale = gamma / np.sqrt(var + eps)
    return scale, beta - mean * scale


def _member(g, model, x: str) -> str:
    """The nodes of one model from its preprocessed flat input ``x``; returns its logits."""
    from ..layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, MaxPool2D, Reshape
    from ..layers.base import api_shape
    from ..layers.activations import _Activation

    params, names = model.get_params(), model.param_names()
    arrays = dict(zip(names, params))
    shape = tuple(model.input_shape)
    if len(shape) == 3:
        x = g.op("Reshape", [x, g.const("input_shape", [-1, *shape])], "image")

    layers = list(model.layers)
    i = 0
    while i < len(layers):
        layer, p = layers[i], f"layer{i}."
        fold = (i + 1 < len(layers) and isinstance(layers[i + 1], BatchNorm)
                and isinstance(layer, (Conv2D, Dense)) and layer.activation is None)
        if isinstance(layer, (Conv2D, Dense)):
            w = arrays[p + "W"].astype(np.float64)
            n_out = w.shape[0] if isinstance(layer, Conv2D) else w.shape[1]
            b = arrays[p + "b"].astype(np.float64) if p + "b" in arrays else np.zeros(n_out)
            if fold:
                q = f"layer{i + 1}."
                scale, shift = _bn_affine(arrays[q + "gamma"], arrays[q + "beta"], arrays[q + "running_mean"],
                                          arrays[q + "running_var"], layers[i + 1].eps)
                w = w * (scale.reshape(-1, 1, 1, 1) if isinstance(layer, Conv2D) else scale.reshape(1, -1))
                b = b * scale + shift
            if isinstance(layer, Conv2D):
                x = g.op("Conv", [x, g.const(p + "W", w), g.const(p + "b", b)], "conv",
                         kernel_shape=list(layer.kernel), strides=list(layer.stride), pads=list(layer.pads))
            else:
                x = g.op("Gemm", [x, g.const(p + "W", w), g.const(p + "b", b)], "dense")
            if layer.activation is not None:
                x = _activation(g, x, layer.activation)
            i += 2 if fold else 1
            continue
        if isinstance(layer, BatchNorm):
            scale, shift = _bn_affine(arrays[p + "gamma"], arrays[p + "beta"], arrays[p + "running_mean"],
                                      arrays[p + "running_var"], layer.eps)
            bshape = (-1, 1, 1) if len(layer.input_shape) == 3 else (-1,)
            x = g.op("Mul", [x, g.const(p + "scale", scale.reshape(bshape))], "bn_scale")
            x = g.op("Add", [x, g.const(p + "shift", shift.reshape(bshape))], "bn_shift")
        elif isinstance(layer, Dropout):
            pass  # the identity at inference
        elif isinstance(layer, MaxPool2D):
            x = g.op("MaxPool", [x], "pool", kernel_shape=[layer.pool, layer.pool], strides=[layer.pool, layer.pool])
        elif isinstance(layer, GlobalAvgPool2D):
            x = g.op("Flatten", [g.op("GlobalAveragePool", [x], "gap")], "gap_flat", axis=1)
        elif isinstance(layer, Flatten):
            x = g.op("Flatten", [x], "flatten", axis=1)
        elif isinstance(layer, Reshape):
            x = g.op("Reshape", [x, g.const(p + "shape", [-1, *api_shape(layer.output_shape)])], "reshape")
        elif isinstance(layer, _Activation):
            x = _activation(g, x, layer.kind, layer.alpha)
        else:
            raise ValueError(f"export: layer {i} ({type(layer).__name__}) has no ONNX form")
        i += 1
    return x


def to_onnx(models, preprocessing, features: int):
    """The ONNX ``ModelProto`` of ``models`` (one model, or an ensemble's members) averaged."""
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise ImportError('export to ONNX needs the onnx package: pip install "mnistfast[export]"') from None
    g = _Graph(helper, numpy_helper)
    x = _preprocess(g, "pixels", preprocessing)
    probs = [g.op("Softmax", [_member(g, m, x)], "probabilities", axis=1) for m in models]
    out = probs[0] if len(probs) == 1 else g.op("Mean", probs, "mean_probabilities")
    g.nodes.append(helper.make_node("Identity", [out], ["probabilities"]))
    classes = models[0].n_classes
    graph = helper.make_graph(
        g.nodes, "mnistfast", [helper.make_tensor_value_info("pixels", onnx.TensorProto.UINT8, ["batch", features])],
        [helper.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT, ["batch", classes])],
        initializer=g.initializers)
    proto = helper.make_model(graph, producer_name="mnistfast", opset_imports=[helper.make_opsetid("", OPSET)])
    proto.ir_version = IR_VERSION
    # The probabilities' columns in the user's names (EMNIST's 1..26, an image folder's classes).
    helper.set_model_props(proto, {"classes": json.dumps(class_names(models[0]))})
    onnx.checker.check_model(proto)
    return proto
