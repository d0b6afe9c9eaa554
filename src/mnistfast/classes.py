"""The classes of a data set: from the user's labels to the indices 0..K-1 a model trains on, and
back.

Integer labels (IDX, CSV, Keras npz) give the classes ``lo..hi``, the range the training labels
span, so MNIST's 0..9 stay 0..9 and EMNIST letters' 1..26 become 0..25; folder names (an image
folder's class subfolders) give their sorted names (numeric names in numeric order). A model stores the names (``model.classes``),
so its predictions come back in the user's labels.
"""

from __future__ import annotations

import numpy as np

from .data_checks import DataFormatError

# A label range wider than this is more likely a broken file than a real task, and each class
# costs a row of the confusion matrix and a column of every probability table.
MAX_CLASSES = 1000


def classes_from_labels(labels: np.ndarray, where) -> list[str]:
    """The class names that training ``labels`` define (see the module docstring), or
    DataFormatError naming ``where`` when they make fewer than two classes or too many."""
    labels = np.asarray(labels)
    if labels.dtype.kind in "iu":
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0:
            raise DataFormatError(f"{where}: label {lo} is negative; labels are class numbers 0, 1, 2, ...")
        if hi - lo + 1 > MAX_CLASSES:
            raise DataFormatError(f"{where}: the labels span {lo}..{hi}, {hi - lo + 1} classes, more than the "
                                  f"{MAX_CLASSES} mnistfast trains")
        names = [str(k) for k in range(lo, hi + 1)]
    else:
        # Folders named 0, 1, ..., 10 in numeric order, so that their indices read as they do.
        names = sorted({str(v) for v in labels}, key=lambda n: (0, int(n), "") if n.isdigit() else (1, 0, n))
        if len(names) > MAX_CLASSES:
            raise DataFormatError(f"{where}: {len(names)} classes, more than the {MAX_CLASSES} mnistfast trains")
    if len(names) < 2:
        raise DataFormatError(f"{where}: every sample has the label {names[0]}: a classifier needs at least two "
                              "classes")
    return names


def encode_labels(labels: np.ndarray, classes, where, whose: str = "the model was trained on") -> np.ndarray:
    """int64 indices into ``classes`` for the user's ``labels``; DataFormatError naming ``where``
    and the first label that is not one of the classes (those ``whose`` says)."""
    labels = np.asarray(labels)
    index = {name: k for k, name in enumerate(classes)}
    values, inverse = np.unique(labels, return_inverse=True)  # few distinct values: look each up once
    codes = np.empty(len(values), dtype=np.int64)
    for j, v in enumerate(values):
        k = index.get(str(v))
        if k is None:
            at = int(np.argmax(labels == v))
            raise DataFormatError(f"{where}: label {v} at index {at} is out of range: not one of the classes "
                                  f"{whose} ({describe(classes)})")
        codes[j] = k
    return codes[inverse.reshape(-1)]


def default_classes(n: int) -> list[str]:
    """The names a model without recorded classes has: its indices."""
    return [str(k) for k in range(n)]


def class_names(model) -> list[str]:
    """A model's (or an ensemble's) class names: those it records, else its indices."""
    return list(model.classes or default_classes(model.n_classes))


def describe(classes) -> str:
    """``0..9``, ``1..26`` or ``cat, dog`` for messages."""
    classes = list(classes)
    if all(c.lstrip("-").isdigit() for c in classes) and \
            [int(c) for c in classes] == list(range(int(classes[0]), int(classes[0]) + len(classes))):
        return f"{classes[0]}..{classes[-1]}"
    shown = ", ".join(classes[:8])
    return shown + (f", ... ({len(classes)} in all)" if len(classes) > 8 else "")


def check_classes(classes, n_classes: int, where) -> list[str]:
    """A model file's recorded class names: ``n_classes`` distinct strings, or ValueError."""
    if (not isinstance(classes, list) or len(classes) != n_classes or not all(isinstance(c, str) for c in classes)
            or len(set(classes)) != len(classes)):
        raise ValueError(f"{where}: bad classes record: expected {n_classes} distinct names, got {classes!r:.200}")
    return classes
