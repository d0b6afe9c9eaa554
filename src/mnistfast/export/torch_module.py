"""A model (or an ensemble) as a ``torch.export`` program: ``torch.export.load(path).module()``
runs it with PyTorch alone, for any batch size. Its input and output are the ONNX graph's (``onnx_graph.py``): raw uint8 pixels
``(batch, features)`` in, class probabilities out, the preprocessing inside. Layers map one to
one onto ``torch.nn`` modules in eval mode (batch norm with its running statistics, dropout left
out), the API weights in PyTorch's own layout; "same" padding, which may be one row larger at the
bottom and right, is an explicit ``ZeroPad2d``.
"""

from __future__ import annotations

import numpy as np


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError("export to torch needs PyTorch: pip install torch") from None
    return torch


def _activation(nn, kind: str, alpha: float = 0.0):
    if kind == "relu" and alpha == 0.0:
        return nn.ReLU()
    if kind in ("relu", "leaky_relu"):
        return nn.LeakyReLU(alpha)
    if kind == "sigmoid":
        return nn.Sigmoid()
    if kind == "tanh":
        return nn.Tanh()
    raise ValueError(f"export: no torch form for the activation {kind!r}")


def _member(torch, model):
    """``torch.nn.Sequential`` of one model's layers, from its preprocessed flat input to logits."""
    from ..layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, MaxPool2D, Reshape
    from ..layers.activations import _Activation
    from ..layers.base import api_shape

    nn = torch.nn
    arrays = dict(zip(model.param_names(), model.get_params()))

    def tensor(name, transpose=False):
        value = arrays[name].T if transpose else arrays[name]
        return nn.Parameter(torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)), requires_grad=False)

    mods = [nn.Unflatten(1, tuple(model.input_shape))] if len(model.input_shape) == 3 else []
    for i, layer in enumerate(model.layers):
        p = f"layer{i}."
        if isinstance(layer, Conv2D):
            top, left, bottom, right = layer.pads
            if any(layer.pads):
                mods.append(nn.ZeroPad2d((left, right, top, bottom)))
            conv = nn.Conv2d(layer.channels, layer.filters, layer.kernel, layer.stride, bias=layer.use_bias)
            conv.weight = tensor(p + "W")
            if layer.use_bias:
                conv.bias = tensor(p + "b")
            mods.append(conv)
        elif isinstance(layer, Dense):
            dense = nn.Linear(layer.fan_in, layer.units)
            dense.weight = tensor(p + "W", transpose=True)  # nn.Linear holds (out, in)
            dense.bias = tensor(p + "b")
            mods.append(dense)
        elif isinstance(layer, BatchNorm):
            bn = (nn.BatchNorm2d if len(layer.input_shape) == 3 else nn.BatchNorm1d)(layer.channels, eps=layer.eps)
            bn.weight, bn.bias = tensor(p + "gamma"), tensor(p + "beta")
            bn.running_mean = torch.from_numpy(np.asarray(arrays[p + "running_mean"], np.float32).copy())
            bn.running_var = torch.from_numpy(np.asarray(arrays[p + "running_var"], np.float32).copy())
            mods.append(bn)
        elif isinstance(layer, Dropout):
            continue
        elif isinstance(layer, MaxPool2D):
            mods.append(nn.MaxPool2d(layer.pool))
        elif isinstance(layer, GlobalAvgPool2D):
            mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        elif isinstance(layer, Flatten):
            mods.append(nn.Flatten())
        elif isinstance(layer, Reshape):
            mods += [nn.Flatten(), nn.Unflatten(1, api_shape(layer.output_shape))] \
                if len(layer.output_shape) == 3 else [nn.Flatten()]
        elif isinstance(layer, _Activation):
            mods.append(_activation(nn, layer.kind, layer.alpha))
        else:
            raise ValueError(f"export: layer {i} ({type(layer).__name__}) has no torch form")
        if isinstance(layer, (Conv2D, Dense)) and layer.activation is not None:
            mods.append(_activation(nn, layer.activation))
    return nn.Sequential(*mods)


def torchscript_bytes(models, preprocessing) -> bytes:
    """The saved ``torch.export`` program of ``models`` (one model, or an ensemble's members)
    averaged, with a dynamic batch axis."""
    import io

    torch = _torch()
    nn = torch.nn
    kind = "scale" if preprocessing is None else preprocessing.kind
    features = int(np.prod(models[0].input_shape))
    mean = preprocessing.mean if kind == "standardize" else np.zeros(features, np.float32)
    std = preprocessing.std if kind == "standardize" else np.ones(features, np.float32)
    divisor = 255.0 if kind == "scale" else 1.0

    class Exported(nn.Module):
        def __init__(self):
            super().__init__()
            self.members = nn.ModuleList([_member(torch, m) for m in models])
            self.register_buffer("mean", torch.from_numpy(np.asarray(mean, np.float32).reshape(1, -1).copy()))
            self.register_buffer("std", torch.from_numpy(np.asarray(std, np.float32).reshape(1, -1).copy()))
            self.divisor = divisor

        def forward(self, pixels):
            x = (pixels.to(torch.float32) / self.divisor - self.mean) / self.std
            total = torch.zeros(x.shape[0], 1, dtype=torch.float32)
            for member in self.members:
                total = total + torch.softmax(member(x), dim=1)
            return total / len(self.members)

    module = Exported().eval()
    example = torch.zeros(2, features, dtype=torch.uint8)
    buffer = io.BytesIO()
    with torch.no_grad():
        program = torch.export.export(module, (example,), dynamic_shapes={"pixels": {0: torch.export.Dim("batch")}})
    torch.export.save(program, buffer)
    return buffer.getvalue()
