"""Images to predict on, and Kaggle digit-recognizer submission files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .data import MNIST_FILES, DataFormatError, load_csv, read_idx
from .storage import atomic_write


def load_images(path) -> np.ndarray:
    """Raw uint8 images ``(N, 784)`` from a Kaggle CSV (``test.csv``; a ``label`` column is
    ignored), an IDX image file, a directory of MNIST files or a Keras ``mnist.npz`` (its test
    images)."""
    path = Path(path)
    if path.is_dir():
        for name in (MNIST_FILES["test_images"][0] + ".gz", MNIST_FILES["test_images"][0]):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise DataFormatError(f"{path}: no t10k-images-idx3-ubyte[.gz] in this directory")
    if path.suffix.lower() == ".csv":
        return load_csv(path)[0]
    if path.suffix.lower() == ".npz" and path.is_file():
        from .keras_npz import read_keras_npz

        return read_keras_npz(path, splits=("test",))[0][0].reshape(-1, 28 * 28)
    images = read_idx(path)
    if images.ndim != 3:
        raise DataFormatError(f"{path}: expected an IDX image file (3-D), got {images.ndim}-D data")
    return images.reshape(len(images), -1)


def write_submission(path, labels) -> None:
    """``ImageId,Label`` with ImageId counting from 1: the digit-recognizer format."""
    labels = np.asarray(labels, dtype=np.int64)
    text = io.StringIO()
    text.write("ImageId,Label\n")
    np.savetxt(text, np.column_stack([np.arange(1, len(labels) + 1), labels]), fmt="%d", delimiter=",")
    atomic_write(path, lambda f: f.write(text.getvalue().encode()))


def write_probabilities(path, proba) -> None:
    """``ImageId,p0,...,p9``: one row of class probabilities per image."""
    proba = np.asarray(proba, dtype=np.float64)
    text = io.StringIO()
    text.write("ImageId," + ",".join(f"p{k}" for k in range(proba.shape[1])) + "\n")
    for i, row in enumerate(proba, start=1):
        text.write(f"{i}," + ",".join(f"{p:.6g}" for p in row) + "\n")
    atomic_write(path, lambda f: f.write(text.getvalue().encode()))
