"""Images to predict on, and Kaggle digit-recognizer submission files."""

from __future__ import annotations

import io

import numpy as np

from .storage import atomic_write


def load_images(path) -> np.ndarray:
    """Raw uint8 images ``(N, pixels)`` from a Kaggle CSV (``test.csv``; a ``label`` column is
    ignored), an IDX image file, a directory of IDX files or a Keras ``mnist.npz`` (its test
    images), a PNG/JPEG image or a folder of them (grayscale; see
    ``mnistfast.dataset.read_inputs`` for RGB, resizing and the files' names)."""
    from .dataset import read_inputs

    X, _ = read_inputs(path)
    return X.reshape(len(X), -1)


def _id_column(n: int, names):
    """``ImageId`` counting from 1, or ``File`` with the images' file names."""
    if names is None:
        return "ImageId", [str(i) for i in range(1, n + 1)]
    return "File", [_cell(name) for name in names]


def _cell(text) -> str:
    """A CSV cell: quoted when it holds a comma, quote or line break."""
    text = str(text)
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\r\n') else text


def write_submission(path, labels, names=None) -> None:
    """``ImageId,Label`` with ImageId counting from 1 (the digit-recognizer format), or
    ``File,Label`` for images read from files (``names``). ``labels`` are written as given: the
    class names of the training data."""
    head, ids = _id_column(len(labels), names)
    text = io.StringIO()
    text.write(f"{head},Label\n")
    for i, label in zip(ids, labels):
        text.write(f"{i},{_cell(label)}\n")
    atomic_write(path, lambda f: f.write(text.getvalue().encode()))


def write_probabilities(path, proba, classes=None, names=None) -> None:
    """One row of class probabilities per image: ``ImageId,p0,...,p9`` for classes named by
    their indices, else a column per class name."""
    proba = np.asarray(proba, dtype=np.float64)
    classes = [str(k) for k in range(proba.shape[1])] if classes is None else list(classes)
    digits = classes == [str(k) for k in range(len(classes))]
    head, ids = _id_column(len(proba), names)
    text = io.StringIO()
    text.write(head + "," + ",".join(f"p{c}" if digits else _cell(c) for c in classes) + "\n")
    for i, row in zip(ids, proba):
        text.write(f"{i}," + ",".join(f"{p:.6g}" for p in row) + "\n")
    atomic_write(path, lambda f: f.write(text.getvalue().encode()))
