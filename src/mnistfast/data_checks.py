"""What every reader of labelled images checks, and the error it raises (shared by the IDX, CSV and
Keras-npz readers)."""

from __future__ import annotations

import numpy as np

NUM_CLASSES = 10


class DataFormatError(ValueError):
    """A data file is missing, malformed or inconsistent. The message names the file."""


def check_pair(images: np.ndarray, labels: np.ndarray, img_path, lab_path) -> None:
    """28x28 images and as many labels in 0..9, or DataFormatError naming the file at fault."""
    if images.ndim != 3:
        raise DataFormatError(f"{img_path}: expected an image file (3-D), got {images.ndim}-D data")
    if labels.ndim != 1:
        raise DataFormatError(f"{lab_path}: expected a label file (1-D), got {labels.ndim}-D data")
    if images.shape[1:] != (28, 28):
        raise DataFormatError(f"{img_path}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28")
    if len(images) != len(labels):
        raise DataFormatError(
            f"{img_path} has {len(images)} images but {lab_path} has {len(labels)} labels"
        )
    if labels.size and labels.max() >= NUM_CLASSES:
        bad = int(np.argmax(labels >= NUM_CLASSES))
        raise DataFormatError(f"{lab_path}: label {labels[bad]} at index {bad} is out of range 0..9")
