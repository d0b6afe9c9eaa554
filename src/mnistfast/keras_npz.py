"""Keras's ``mnist.npz`` layout: one ``.npz`` holding ``x_train``, ``y_train``, ``x_test`` and
``y_test`` (what ``keras.datasets.mnist.load_data`` downloads). Members are read one at a time and
only those asked for; each is checked against the memory budget by its size in the archive's
directory before it is expanded, and nothing is unpickled."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from . import memory
from .data_checks import DataFormatError, check_pair

SPLITS = {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")}
# An array is read from its member once and copied into the caller's split and dtype.
LOAD_COPIES = 3


def read_keras_npz(path, splits=("train", "test")) -> list:
    """``[(images, labels), ...]`` for ``splits``: uint8 ``(N, 28, 28)`` and integer labels as
    stored; DataFormatError naming the file and the problem."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataFormatError(f"{path}: not a readable .npz archive ({e})") from None
    with archive:
        members = {Path(info.filename).stem: info for info in archive.infolist()}
        out = []
        for split in splits:
            arrays = []
            for key in SPLITS[split]:
                if key not in members:
                    raise DataFormatError(f"{path}: no {key!r} array; a Keras mnist.npz holds "
                                          f"{', '.join(k for pair in SPLITS.values() for k in pair)}")
                memory.check(LOAD_COPIES * members[key].file_size, f"{path}: its {key!r} array")
                arrays.append(_member(archive, members[key], path, key))
            images, labels = arrays
            if images.dtype != np.uint8:
                raise DataFormatError(f"{path}: {SPLITS[split][0]!r} is {images.dtype}, expected uint8 pixels")
            if images.ndim == 2 and images.shape[1] == 28 * 28:
                images = images.reshape(-1, 28, 28)
            if images.ndim != 3:
                raise DataFormatError(f"{path}: {SPLITS[split][0]!r} has shape {images.shape}, expected (N, 28, 28)")
            if labels.dtype.kind not in "iu" or labels.ndim != 1:
                raise DataFormatError(f"{path}: {SPLITS[split][1]!r} is {labels.dtype} {labels.shape}, expected "
                                      "integer labels (N,)")
            if labels.size and labels.min() < 0:
                raise DataFormatError(f"{path}: {SPLITS[split][1]!r} holds a negative label, {labels.min()}")
            check_pair(images, labels, f"{path} {SPLITS[split][0]}", f"{path} {SPLITS[split][1]}")
            out.append((images, labels.astype(np.int64)))
    return out


def _member(archive, info, path, key) -> np.ndarray:
    try:
        with archive.open(info) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataFormatError(f"{path}: its {key!r} array cannot be read ({e})") from None
