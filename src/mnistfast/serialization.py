"""Model files: plain ``.npz`` archives (no pickle) holding a JSON config and named float32 arrays,
written atomically. This module knows the file format, not the models (see ``model.load_model``)."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np


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


def write_model(path, config: dict, arrays: dict) -> None:
    entries = {"config": np.array(json.dumps(config))}
    entries.update({name: np.asarray(a, dtype=np.float32) for name, a in arrays.items()})
    atomic_write(path, lambda f: np.savez(f, **entries))


def read_model(path) -> tuple[dict, dict]:
    """``(config, arrays)`` from a model file; ValueError naming the file if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise ValueError("a single .npy array, not an .npz archive")
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise ValueError(f"{path}: not a mnistfast model archive ({e})") from None
    try:
        config = json.loads(str(arrays.pop("config")))
    except (KeyError, json.JSONDecodeError):
        raise ValueError(f"{path}: not a mnistfast model archive (no readable 'config' entry)") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: the model config is not a JSON object")
    return config, arrays
