"""Models out of the package: ``export(model, path, format)`` writes a model or an ensemble as

- ``onnx``: one graph from raw uint8 pixels to class probabilities (``onnx_graph.py``), for
  onnxruntime and every other ONNX runtime;
- ``safetensors``: the parameters and state under the names of ``Sequential.param_names`` (the
  API layout, PyTorch's: Conv2D ``W (out, in, kh, kw)``, Dense ``W (in, out)``), the
  preprocessing's arrays, and the model's config as JSON in the file's metadata;
- ``torch``: a ``torch.export`` program (``.pt2``) with the ONNX graph's input and output
  (``torch_module.py``), for ``torch.export.load(path).module()`` without mnistfast.

The file is written atomically, and only once the whole export has succeeded. ``onnx`` and
``safetensors`` come with ``pip install "mnistfast[export]"``; ``torch`` needs PyTorch.
"""

from __future__ import annotations

import json

import numpy as np

FORMATS = ("onnx", "safetensors", "torch")
SUFFIXES = {"onnx": ".onnx", "safetensors": ".safetensors", "torch": ".pt2"}


def _members(model) -> list:
    return list(getattr(model, "models", None) or [model])


def export(model, path, format: str = "onnx") -> None:
    """Write ``model`` (a built ``Sequential`` or an ``Ensemble``) to ``path`` in ``format``."""
    from ..storage import atomic_write

    if format not in FORMATS:
        raise ValueError(f"export: unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    members = _members(model)
    for m in members:
        m._require_built("export")
    data = {"onnx": _onnx_bytes, "safetensors": _safetensors_bytes, "torch": _torch_bytes}[format](model, members)
    atomic_write(path, lambda f: f.write(data))


def _onnx_bytes(model, members) -> bytes:
    from .onnx_graph import to_onnx

    features = int(np.prod(members[0].input_shape))
    return to_onnx(members, model.preprocessing, features).SerializeToString()


def _torch_bytes(model, members) -> bytes:
    from .torch_module import torchscript_bytes

    return torchscript_bytes(members, model.preprocessing)


def _safetensors_bytes(model, members) -> bytes:
    try:
        from safetensors.numpy import save
    except ImportError:
        raise ImportError('export to safetensors needs the safetensors package: pip install "mnistfast[export]"') \
            from None
    tensors, configs = {}, []
    for k, m in enumerate(members):
        config, arrays = m.to_payload()
        prefix = f"member{k}." if len(members) > 1 else ""
        tensors.update({prefix + name: np.ascontiguousarray(a, dtype=np.float32) for name, a in arrays.items()})
        configs.append(config)
    meta = {"format": "mnistfast.safetensors/1", "config": json.dumps(configs[0] if len(configs) == 1 else configs)}
    return save(tensors, metadata=meta)


__all__ = ["FORMATS", "SUFFIXES", "export"]
