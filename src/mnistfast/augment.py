"""On-the-fly data augmentation: ``fit(augment=RandomAffine(rotation=0.06, translation=0.06))``.

Each training batch is warped image by image on the backend (``affine_warp``: bilinear
sampling, zero outside). The random parameters of step ``t`` come from a generator seeded with
``(seed, t)``, so the same seed gives the same augmented batches, whatever the backend.
"""

from __future__ import annotations

import math

import numpy as np


class RandomAffine:
    """Per image, uniformly at random: a rotation of up to ``rotation`` of a full turn either way
    (0.06: +-21.6 degrees), a shift of up to ``translation`` of
    the image size in each direction, and a zoom by a factor in ``[1 - zoom, 1 + zoom]``."""

    def __init__(self, rotation: float = 0.0, translation: float = 0.0, zoom: float = 0.0, seed: int | None = None):
        for name, v, hi in (("rotation", rotation, 0.5), ("translation", translation, 1.0), ("zoom", zoom, 0.9)):
            if not (isinstance(v, (int, float)) and 0.0 <= v <= hi):
                raise ValueError(f"RandomAffine: {name} must be in [0, {hi}], got {v!r}")
        self.rotation, self.translation, self.zoom, self.seed = float(rotation), float(translation), float(zoom), seed

    def params(self, n: int, height: int, width: int, seed: int, step: int) -> np.ndarray:
        """float32 ``(n, 6)``: for each image the inverse map ``(A00, A01, A10, A11, tx, ty)`` of
        ``affine_warp``: output pixel p reads the input at ``A (p - c) + c + t``."""
        rng = np.random.default_rng([seed if self.seed is None else self.seed, step])
        theta = rng.uniform(-1, 1, n) * self.rotation * 2 * math.pi
        scale = 1.0 + rng.uniform(-1, 1, n) * self.zoom
        shift = rng.uniform(-1, 1, (n, 2)) * self.translation * np.array([width, height])
        cos, sin = np.cos(theta) / scale, np.sin(theta) / scale
        # The image is rotated by theta, zoomed by scale, then shifted: the inverse takes the output
        # pixel back through the shift, the zoom and the rotation.
        a = np.stack([cos, sin, -sin, cos], axis=1)
        tx = -(a[:, 0] * shift[:, 0] + a[:, 1] * shift[:, 1])
        ty = -(a[:, 2] * shift[:, 0] + a[:, 3] * shift[:, 1])
        return np.column_stack([a, tx, ty]).astype(np.float32)

    def get_config(self) -> dict:
        """The constructor arguments."""
        return {"rotation": self.rotation, "translation": self.translation, "zoom": self.zoom, "seed": self.seed}

    def __repr__(self) -> str:
        return "RandomAffine(" + ", ".join(f"{k}={v!r}" for k, v in self.get_config().items()) + ")"
