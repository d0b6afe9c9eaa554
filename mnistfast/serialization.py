"""Saving and loading models as plain ``.npz`` archives (no pickle), written atomically."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

FORMAT = "mnistfast.mlp/1"


def atomic_write(path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place, so a
    crash never leaves a half-written file under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_json(path, obj) -> None:
    atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode()))


def save_mlp(model, path) -> None:
    config = {"format": FORMAT, "layers": list(model.layers), "seed": model.seed}
    arrays = {"config": np.array(json.dumps(config))}
    for k, p in enumerate(model.params):
        arrays[f"{'W' if k % 2 == 0 else 'b'}{k // 2 + 1}"] = np.asarray(p, dtype=np.float32)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_model(path, backend="cpp"):
    """Load a model written by ``MLP.save``, on the given backend."""
    from .mlp import MLP

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise ValueError(f"{path}: not a mnistfast model archive ({e})") from None
    try:
        config = json.loads(str(arrays.pop("config")))
    except (KeyError, json.JSONDecodeError):
        raise ValueError(f"{path}: not a mnistfast model archive (no readable 'config' entry)") from None
    if config.get("format") != FORMAT:
        raise ValueError(f"{path}: unsupported model format {config.get('format')!r}, expected {FORMAT!r}")
    model = MLP(config["layers"], backend=backend, seed=config.get("seed", 0))
    names = [f"{'W' if k % 2 == 0 else 'b'}{k // 2 + 1}" for k in range(len(model.params))]
    missing = [n for n in names if n not in arrays]
    if missing:
        raise ValueError(f"{path}: missing arrays {missing}")
    try:
        model.set_params([arrays[n] for n in names])
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: {e}") from None
    return model
