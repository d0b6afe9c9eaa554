"""What every reader of labelled images checks, and the error it raises (shared by the IDX, CSV,
Keras-npz and image-folder readers)."""

from __future__ import annotations

import numpy as np


class DataFormatError(ValueError):
    """A data file is missing, malformed or inconsistent. The message names the file."""


def check_pair(images: np.ndarray, labels: np.ndarray, img_path, lab_path) -> None:
    """Images ``(N, H, W)`` and as many labels ``(N,)``, or DataFormatError naming the file at
    fault. Which labels make the classes is decided later, over the whole set (``classes``)."""
    if images.ndim != 3:
        raise DataFormatError(f"{img_path}: expected an image file (3-D), got {images.ndim}-D data")
    if labels.ndim != 1:
        raise DataFormatError(f"{lab_path}: expected a label file (1-D), got {labels.ndim}-D data")
    if len(images) != len(labels):
        raise DataFormatError(
            f"{img_path} has {len(images)} images but {lab_path} has {len(labels)} labels"
        )
