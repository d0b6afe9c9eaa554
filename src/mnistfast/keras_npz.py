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
    """``[(images, labels), ...]`` for ``splits``: uint8 ``(N, C, H, W)`` and the integer labels
    as stored; DataFormatError naming the file and the problem."""
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
            x_name, y_name = (f"{path} {key}" for key in SPLITS[split])
            if images.dtype != np.uint8:
                raise DataFormatError(f"{path}: {SPLITS[split][0]!r} is {images.dtype}, expected uint8 pixels")
            images = _nchw(images, path, SPLITS[split][0])
            if labels.dtype.kind not in "iu" or labels.ndim != 1:
                raise DataFormatError(f"{path}: {SPLITS[split][1]!r} is {labels.dtype} {labels.shape}, expected "
                                      "integer labels (N,)")
            if labels.size and labels.min() < 0:
                raise DataFormatError(f"{path}: {SPLITS[split][1]!r} holds a negative label, {labels.min()}")
            check_pair(images[:, 0], labels, x_name, y_name)
            out.append((images, labels.astype(np.int64)))
    return out


def _nchw(images: np.ndarray, path, key) -> np.ndarray:
    """``(N, H, W)``, ``(N, H, W, C)`` (Keras's channels-last) or square ``(N, H*W)`` images as
    ``(N, C, H, W)``."""
    side = int(round(images.shape[1] ** 0.5)) if images.ndim == 2 else 0
    if images.ndim == 2 and side * side == images.shape[1]:
        return images.reshape(-1, 1, side, side)
    if images.ndim == 3:
        return images[:, None]
    if images.ndim == 4 and images.shape[3] in (1, 3):
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    raise DataFormatError(f"{path}: {key!r} has shape {images.shape}, expected (N, H, W) or (N, H, W, 1 or 3)")


def _member(archive, info, path, key) -> np.ndarray:
    try:
        with archive.open(info) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataFormatError(f"{path}: its {key!r} array cannot be read ({e})") from None
