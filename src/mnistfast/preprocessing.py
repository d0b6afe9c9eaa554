"""Input preprocessing that a model remembers: how raw pixels become the network's inputs.

Raw versus prepared input is decided by dtype, and only by dtype:

- an **integer** array (``uint8`` 0..255, as in the IDX files and the Kaggle CSV) is raw pixels:
  the model applies its preprocessing (and ``fit`` on raw pixels gives a model without one the
  default, ``scale``);
- a **float** array is taken as already prepared, exactly as the model was trained on, and is
  passed through unchanged.

``Preprocessing("standardize").fit(X_raw)`` learns per-pixel means and standard deviations from
the training pixels; they are saved with the model, so predictions on raw pixels later match
predictions on inputs normalized by hand.
"""

from __future__ import annotations

import numpy as np

KINDS = ("scale", "standardize", "none")


class Preprocessing:
    """``scale``: x / 255. ``standardize``: (x - mean) / std per pixel, from the training set
    (pixels that never vary keep unit scale). ``none``: raw values as float32."""

    def __init__(self, kind: str = "scale", mean=None, std=None):
        if kind not in KINDS:
            raise ValueError(f"preprocessing must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32)
        self.std = None if std is None else np.asarray(std, dtype=np.float32)
        if kind == "standardize" and mean is not None and (self.mean.shape != self.std.shape):
            raise ValueError(f"standardize: mean {self.mean.shape} and std {self.std.shape} differ in shape")

    @property
    def fitted(self) -> bool:
        """False only for ``standardize`` before ``fit`` has given it its statistics."""
        return self.kind != "standardize" or self.mean is not None

    def fit(self, X_raw) -> "Preprocessing":
        """Learn the statistics (standardize only) from raw training pixels ``(n, features)``."""
        if self.kind == "standardize":
            X = np.asarray(X_raw).reshape(len(X_raw), -1).astype(np.float64)
            std = X.std(axis=0)
            std[std < 1e-6] = 1.0
            self.mean, self.std = X.mean(axis=0).astype(np.float32), std.astype(np.float32)
        return self

    def __call__(self, X_raw) -> np.ndarray:
        """float32 network inputs from raw pixels, in the input's shape."""
        X = np.asarray(X_raw)
        if self.kind == "scale":
            return (X.astype(np.float32) / np.float32(255.0)).astype(np.float32)
        if self.kind == "none":
            return X.astype(np.float32)
        if self.mean is None:
            raise RuntimeError("standardize preprocessing has no statistics yet: call fit(X_train) first")
        flat = X.reshape(len(X), -1).astype(np.float32)
        if flat.shape[1] != self.mean.size:
            raise ValueError(f"raw input has {flat.shape[1]} values per sample, the preprocessing was fitted on "
                             f"{self.mean.size}")
        return ((flat - self.mean) / self.std).reshape(X.shape).astype(np.float32)

    def get_config(self) -> dict:
        """The constructor's ``kind`` (the statistics are in :meth:`arrays`)."""
        return {"kind": self.kind}

    def arrays(self) -> dict:
        """The fitted statistics as the arrays a model file stores (empty unless standardize is fitted)."""
        return {} if self.mean is None else {"preprocessing.mean": self.mean, "preprocessing.std": self.std}

    def __repr__(self) -> str:
        return f"Preprocessing({self.kind!r}{'' if self.fitted else ', not fitted'})"


def is_raw(X) -> bool:
    """Raw pixels: an integer array (see the module docstring)."""
    return np.asarray(X).dtype.kind in "iu"


def model_input(model, X_raw) -> np.ndarray:
    """Raw pixels as ``model`` takes them: unchanged when the model records a preprocessing (it
    applies it), else scaled to [0, 1], the convention of ``load_mnist``'s default, which is what
    a model trained on floats through the API has seen."""
    if model.preprocessing is not None:
        return X_raw
    return np.asarray(X_raw).astype(np.float32) / np.float32(255.0)
