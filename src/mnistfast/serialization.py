"""Models and ensembles from their files: the inverse of ``Sequential.save`` and ``Ensemble.save``.

``storage`` reads the archive (bounded, checked); this module checks that its config describes a
model whose every parameter the file holds with the right shape before anything is allocated.
"""

from __future__ import annotations

import math

import numpy as np

from . import memory
from .classes import check_classes
from .ensemble import Ensemble
from .layers import LAYER_TYPES, Dense
from .layers.base import internal_shape
from .model import Sequential, activation_bytes
from .preprocessing import KINDS, Preprocessing
from .storage import ENSEMBLE_FORMAT, LEGACY_MLP_FORMAT, MODEL_FORMAT, read_model


def load_model(path, backend="cpp"):
    """Load a model (or an ``mf.Ensemble``) written by ``save``, on the given backend (a name or a
    Backend object). The file's config is checked against the arrays it holds before anything is
    allocated."""
    config, arrays = read_model(path)
    if config.get("format") == ENSEMBLE_FORMAT:
        return ensemble_from_payload(config, arrays, path, backend)
    return model_from_payload(config, arrays, path, backend)


def ensemble_from_payload(config: dict, arrays: dict, path, backend="cpp") -> Ensemble:
    """An Ensemble from a saved config (its members' configs) and the members' prefixed arrays."""
    members = config.get("members")
    if not isinstance(members, list) or not members:
        raise ValueError(f"{path}: bad ensemble config: 'members' is missing or empty")
    models = []
    for i, member in enumerate(members):
        if not isinstance(member, dict):
            raise ValueError(f"{path}: bad ensemble config: member {i} is not an object")
        models.append(model_from_payload(member, arrays.with_prefix(f"member{i}."), f"{path} (member {i})", backend))
    return Ensemble(models)


def model_from_payload(config: dict, arrays: dict, path, backend="cpp") -> Sequential:
    """A Sequential from a saved config and its arrays; ``path`` names the source in errors."""
    fmt = config.get("format")
    if fmt in (MODEL_FORMAT, LEGACY_MLP_FORMAT) and not isinstance(config.get("layers"), list):
        raise ValueError(f"{path}: bad model config: 'layers' is missing or not a list")
    if fmt == MODEL_FORMAT and not isinstance(config.get("input_shape"), list):
        raise ValueError(f"{path}: bad model config: 'input_shape' is missing or not a list")
    try:
        if fmt == LEGACY_MLP_FORMAT:
            sizes = [int(s) for s in config["layers"]]
            layer_specs = [Dense(n, activation="relu") for n in sizes[1:-1]] + [Dense(sizes[-1])]
            input_shape = (sizes[0],)
            names = [f"{'W' if k % 2 == 0 else 'b'}{k // 2 + 1}" for k in range(2 * (len(sizes) - 1))]
        elif fmt == MODEL_FORMAT:
            layer_specs = []
            for spec in config["layers"]:
                cls = LAYER_TYPES.get(spec.get("type")) if isinstance(spec, dict) else None
                if cls is None:
                    raise ValueError(f"unknown layer {spec!r}")
                layer_specs.append(cls(**spec.get("config", {})))
            input_shape = tuple(_config_int(d, "an input_shape entry", 1) for d in config["input_shape"])
            names = None
        else:
            raise ValueError(f"unsupported model format {fmt!r}, expected {MODEL_FORMAT!r}")
        seed = _config_int(config.get("seed", 0), "seed", 0)
    except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as e:
        raise ValueError(f"{path}: bad model config ({e})") from None

    # Walk the shapes without allocating: every parameter must be in the file with its shape, and
    # the parameters and one sample's activations must fit the memory budget.
    expected, layer_names, s, outputs = [], [], internal_shape(input_shape), []
    try:
        for i, layer in enumerate(layer_specs):
            s = layer.compute_output_shape(s)
            outputs.append(s)
            expected += layer.api_param_shapes() + layer.state_shapes()
            layer_names += [f"layer{i}.{name}" for name in layer.param_names + layer.state_names]
    except (ValueError, ArithmeticError) as e:  # a hostile shape can overflow or divide by zero
        raise ValueError(f"{path}: bad model config ({e})") from None
    memory.check(PARAM_COPIES * 4 * sum(math.prod(shape) for shape in expected), f"{path}: the model's parameters")
    memory.check(activation_bytes(outputs), f"{path}: one sample's activations")
    names = names or layer_names
    if len(names) != len(expected):
        raise ValueError(f"{path}: the config needs {len(expected)} arrays, the file has {len(names)}")
    for name, shape in zip(names, expected):
        if name not in arrays:
            raise ValueError(f"{path}: missing array {name!r}")
        if arrays[name].shape != tuple(shape):
            raise ValueError(f"{path}: array {name!r} has shape {arrays[name].shape}, the config needs {tuple(shape)}")

    preprocessing = _load_preprocessing(path, config, arrays, input_shape)
    model = Sequential(layer_specs, input_shape=input_shape, backend=backend, seed=seed)
    try:
        model.set_params([arrays[n] for n in names])
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: {e}") from None
    model.preprocessing = preprocessing
    model.trained_on = _load_trained_on(path, config.get("trained_on"))
    if config.get("classes") is not None:
        model.classes = check_classes(config["classes"], model.n_classes, path)
    if config.get("image_shape") is not None:
        shape = config["image_shape"]
        if not isinstance(shape, list) or len(shape) != 3:
            raise ValueError(f"{path}: bad image_shape record {shape!r}")
        shape = tuple(_config_int(d, "an image_shape entry", 1) for d in shape)
        if math.prod(shape) != math.prod(input_shape):
            raise ValueError(f"{path}: image_shape {shape} does not hold the model's {math.prod(input_shape)} inputs")
        model.image_shape = shape
    return model


def _load_trained_on(path, spec):
    """The recorded origin of the training data, or None (a model saved without one)."""
    if spec is None:
        return None
    resize = spec.get("resize") if isinstance(spec, dict) else None
    if (not isinstance(spec, dict) or not {"data", "seed"} <= set(spec) <= {"data", "seed", "resize"}
            or not (spec["data"] is None or isinstance(spec["data"], str))
            or not (resize is None or isinstance(resize, list) and len(resize) == 2)):
        raise ValueError(f"{path}: bad trained_on record {spec!r}")
    record = {"data": spec["data"], "seed": _config_int(spec["seed"], f"{path}: trained_on seed", -_CONFIG_INT_MAX)}
    if resize is not None:
        record["resize"] = [_config_int(d, f"{path}: trained_on resize", 1) for d in resize]
    return record


# The parameters live in the file's arrays, the model's flat buffer and, in training, the gradients.
PARAM_COPIES = 3

# Larger than any real seed or dimension, and small enough for every integer the kernels take.
_CONFIG_INT_MAX = 2**31 - 1


def _config_int(value, what: str, low: int) -> int:
    """An integer of a model config: a JSON integer (not a float, bool or huge number) >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= _CONFIG_INT_MAX:
        raise ValueError(f"{what} is {value!r}, expected an integer in {low}..{_CONFIG_INT_MAX}")
    return value


def _load_preprocessing(path, config, arrays, input_shape):
    spec = config.get("preprocessing")
    if spec is None:
        return None
    if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
        raise ValueError(f"{path}: bad preprocessing config {spec!r}")
    if spec["kind"] != "standardize":
        return Preprocessing(spec["kind"])
    size = int(np.prod(input_shape))
    stats = [arrays.get(f"preprocessing.{k}") for k in ("mean", "std")]
    if any(a is None or a.shape != (size,) or not np.all(np.isfinite(a)) for a in stats) or np.any(stats[1] <= 0):
        raise ValueError(f"{path}: standardize preprocessing needs finite 'preprocessing.mean' and positive "
                         f"'preprocessing.std' arrays of shape ({size},)")
    return Preprocessing("standardize", *stats)
