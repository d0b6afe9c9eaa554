"""``mf.load_dataset``: any labelled image set mnistfast reads, with its classes and image shape.

Sources, told apart by what the path is:

- ``None``: the MNIST copy shipped with the package;
- a directory of IDX files: MNIST's four names, or others with the same endings (EMNIST's
  ``emnist-letters-train-images-idx3-ubyte.gz``, ...), of any image size;
- a Kaggle ``.csv`` (``label,pixel0,...``; one set, of which a seeded 10 % is held out as the
  test split);
- a Keras ``.npz`` (``x_train``, ``y_train``, ``x_test``, ``y_test``; ``(N, H, W)`` or
  channels-last ``(N, H, W, C)``);
- a folder of PNG/JPEG images with one subfolder per class (one set, split as a CSV is), or with
  ``train`` and ``test`` subfolders that each hold such class folders.

The classes come from the labels (see ``mnistfast.classes``): the training labels' range for
integers, the sorted folder names for images.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .classes import class_names, classes_from_labels, describe, encode_labels
from . import data as data_files
from .data import ACCEPTED, _normalize, _sniff, has_idx_files, load_csv, read_idx, read_idx_dir, \
    train_val_split
from .data_checks import DataFormatError
from .image_files import class_folders, images_in, is_image_file, parse_size, read_class_folder, read_image, \
    read_images, resize_images

TRAINING = "the training labels span"

# The share of a one-set source (a CSV, an image folder) held out, seeded, as its test split.
HELD_OUT = 0.1


@dataclass
class Dataset:
    """A labelled image set: ``train`` and ``test`` are ``(X, y)`` with ``X`` raw uint8 pixels
    ``(N, C*H*W)`` in (C, H, W) order and ``y`` int64 indices into ``classes``, the user's label
    names; ``image_shape`` is ``(C, H, W)``; ``source`` names what was read."""

    train: tuple
    test: tuple
    classes: list
    image_shape: tuple
    source: str

    @property
    def n_classes(self) -> int:
        """How many classes the labels define."""
        return len(self.classes)

    def describe(self) -> str:
        """One line: the source, sizes, image shape and classes."""
        c, h, w = self.image_shape
        return (f"{self.source}: {len(self.train[1])} training and {len(self.test[1])} test images of {h}x{w}"
                f"{' RGB' if c == 3 else ''}, {self.n_classes} classes ({describe(self.classes)})")


def load_dataset(path=None, *, resize=None, channels: int | None = None, seed: int = 0,
                 verify: bool | None = None) -> Dataset:
    """Read a labelled image set (see the module docstring for the sources).

    ``resize``: ``(H, W)``, ``28`` or ``"32x24"``: bring every image to that size (bilinear);
    without it, images of mixed sizes are refused. ``channels``: 1 (grayscale) or 3 (RGB); by
    default image files become grayscale and arrays keep their channels. ``seed`` picks the held-
    out test split of a one-set source. ``verify`` checks the bundled copy's md5 sums (on by
    default for it). Malformed input raises :class:`DataFormatError` naming the file.
    """
    size = None if resize is None else parse_size(resize)
    sets, source, one_set = _read_sets(path, size, channels, verify)
    if one_set:  # one labelled set: the classes over all of it, then the seeded split
        (X, labels, where), = sets
        classes = classes_from_labels(labels, where)
        (Xtr, ytr), (Xte, yte) = train_val_split(X, encode_labels(labels, classes, where, TRAINING), HELD_OUT,
                                                 seed)
    else:
        (Xtr, ltr, wtr), (Xte, lte, wte) = sets
        classes = classes_from_labels(ltr, wtr)
        ytr, yte = encode_labels(ltr, classes, wtr, TRAINING), encode_labels(lte, classes, wte, TRAINING)
        if Xtr.shape[1:] != Xte.shape[1:]:
            raise DataFormatError(f"{wte}: the test images are {_size(Xte)}, the training images {_size(Xtr)}"
                                  + ("" if size else ": give --resize HxW to bring them to one size"))
    return Dataset(train=(_flat(Xtr), ytr), test=(_flat(Xte), yte), classes=classes,
                   image_shape=tuple(int(d) for d in Xtr.shape[1:]), source=source)


def load_test_split(path, classes, *, held_out: bool, seed: int = 0, resize=None, channels: int | None = None,
                    verify: bool | None = None) -> tuple:
    """``(X, y)``: test images ``(N, C, H, W)`` of ``path`` and their indices into a model's
    ``classes``. Of a two-split source, its test files or arrays (only those are read); of a
    one-set source, the seeded split :func:`load_dataset` holds out when ``held_out`` (the model
    trained on the rest), else all of it; of one image file, that image, labelled by the name of
    the folder that holds it."""
    size = None if resize is None else parse_size(resize)
    p = None if path is None else Path(os.fspath(path))
    if p is not None and p.is_file() and is_image_file(p):
        if p.parent.name not in classes:
            raise DataFormatError(f"{p}: an image is labelled by the folder holding it, and {p.parent.name!r} is not "
                                  f"one of the model's classes ({describe(classes)}); predict takes unlabelled images")
        return read_image(p, channels or 1, size)[None], encode_labels(np.array([p.parent.name]), classes, p)
    sets, _, one_set = _read_sets(path, size, channels, verify, splits=("test",))
    X, labels, where = sets[-1]
    y = encode_labels(labels, classes, where)
    if one_set and held_out:
        _, (X, y) = train_val_split(X, y, HELD_OUT, seed)
    return X, y


def model_test_set(model, path, *, held_out: bool, seed: int = 0, resize: bool = False) -> tuple:
    """``(X, y)`` for scoring ``model`` on ``path`` (see :func:`load_test_split`): raw pixels as
    the model takes them, labels as indices into its classes. ``resize`` brings images of another
    size to the model's; a model trained with resizing resizes anyway."""
    classes = class_names(model)
    image_shape = model_image_shape(model)
    resize = resize or bool((model.trained_on or {}).get("resize"))
    X, y = load_test_split(path, classes, held_out=held_out, seed=seed, channels=image_shape[0],
                           resize=image_shape[1:] if resize else None)
    return fit_to_model(X, image_shape, resize, path or "the bundled MNIST"), y


def fit_to_model(X: np.ndarray, image_shape, resize: bool, where) -> np.ndarray:
    """Images ``(N, C, H, W)`` as flat pixels for a model that takes ``image_shape``: channels
    converted, the size brought to the model's when ``resize``, else a size that differs refused
    with DataFormatError naming ``where``."""
    c, h, w = image_shape
    if X.shape[1] != c:
        X = to_channels(X, c)
    if X.shape[2:] != (h, w):
        if not resize:
            raise DataFormatError(f"{where}: the images are {_size(X)}, the model takes {h}x{w}: give --resize "
                                  "to bring them to its size")
        X = resize_images(X, (h, w))
    return _flat(X)


def model_image_shape(model) -> tuple:
    """The ``(C, H, W)`` a model's inputs are: recorded, its input shape, or a square of its flat
    inputs (an MLP of 784 inputs takes 28x28)."""
    model = getattr(model, "models", [model])[0]  # an ensemble's members take the same images
    if getattr(model, "image_shape", None) is not None:
        return tuple(model.image_shape)
    shape = tuple(model.input_shape)
    if len(shape) == 3:
        return shape
    side = int(round(shape[0] ** 0.5))
    if side * side != shape[0]:
        raise ValueError(f"the model takes {shape[0]} inputs, which are not a square image; it records no image "
                         "shape, so it cannot read image files")
    return (1, side, side)


def read_inputs(path, channels: int = 1, resize=None):
    """Images to predict on: ``(X, names)`` with ``X`` uint8 ``(N, C, H, W)`` and ``names`` the
    image files' paths (relative to a folder given) or None for arrays. Accepts a Kaggle
    ``test.csv`` (a label column is ignored), an IDX image file, a directory of IDX files or a
    Keras npz (their test images), one PNG/JPEG, or a folder of them (subfolders included)."""
    path = Path(os.fspath(path))
    size = None if resize is None else parse_size(resize)
    if path.is_file() and is_image_file(path):
        return read_image(path, channels, size)[None], [path.name]
    if path.is_dir() and not has_idx_files(path):
        files = images_in(path, recursive=True)
        if files:
            return read_images(files, channels, size), [str(f.relative_to(path)) for f in files]
    if path.is_dir() or (path.suffix.lower() == ".npz" and path.is_file()):
        return _read_sets(path, size, channels, None, splits=("test",))[0][-1][0], None
    if path.suffix.lower() == ".csv":
        X = _square(load_csv(path)[0])
    else:
        images = read_idx(path)
        if images.ndim != 3:
            raise DataFormatError(f"{path}: expected an IDX image file (3-D), got {images.ndim}-D data")
        X = images[:, None]
    return _adjust(X, size, channels), None


def _read_sets(path, size, channels, verify, splits=("train", "test")):
    """``([(X (N, C, H, W), labels, where), ...], source, one_set)``: the one set of a one-set
    source (a CSV, a folder of class folders; ``one_set`` true), else one per split asked for."""
    if path is None:
        path, verify = data_files.bundled_mnist_dir(), True if verify is None else verify
        source = "the bundled MNIST"
    else:
        source = str(path)
    path = Path(os.fspath(path))
    one_set = False
    if path.is_dir() and has_idx_files(path):
        sets = [(X[:, None], y, where) for X, y, where in read_idx_dir(path, bool(verify), splits)]
    elif path.is_dir() and _split_folders(path):
        sets = [_class_folder(path / split, size, channels) for split in splits]
    elif path.is_dir():
        if not any(path.iterdir()):
            raise DataFormatError(f"{path}: the folder is empty; accepted: {ACCEPTED}")
        if not class_folders(path):
            raise DataFormatError(f"{path}: holds neither IDX files nor subfolders of PNG/JPEG images; accepted: "
                                  f"{ACCEPTED}")
        sets, one_set = [_class_folder(path, size, channels)], True
    elif path.suffix.lower() == ".csv":
        X, y = load_csv(path)
        if y is None:
            raise DataFormatError(f"{path}: this CSV has no label column, so it holds no labelled images (a test.csv "
                                  "is for predict)")
        sets, one_set = [(_square(X), y, path)], True
    elif path.suffix.lower() == ".npz" and path.is_file():
        from .keras_npz import SPLITS, read_keras_npz

        arrays = read_keras_npz(path, splits=splits)
        sets = [(X, y, f"{path} {SPLITS[split][1]}") for (X, y), split in zip(arrays, splits)]
    elif not path.exists():
        raise DataFormatError(f"{path}: no such file or directory")
    else:
        raise DataFormatError(f"{path}: not a format mnistfast reads{_sniff(path)}; accepted: {ACCEPTED}")
    return [(_adjust(X, size, channels), y, where) for X, y, where in sets], source, one_set


def _split_folders(path: Path) -> bool:
    return (path / "train").is_dir() and (path / "test").is_dir()


def _class_folder(folder: Path, size, channels):
    X, names = read_class_folder(folder, channels or 1, size)
    return X, names, folder


def _square(X):
    side = int(round(X.shape[1] ** 0.5))
    return X.reshape(len(X), 1, side, side)


def _adjust(X, size, channels):
    """``X`` brought to ``channels`` and ``size``, where asked for."""
    if channels is not None and X.shape[1] != channels:
        X = to_channels(X, channels)
    return X if size is None else resize_images(X, size)


def to_channels(X: np.ndarray, channels: int) -> np.ndarray:
    """uint8 ``(N, C, H, W)`` as grayscale (ITU-R 601-2 luma, as Pillow converts) or as RGB (the
    gray channel three times)."""
    if channels == 3:
        return np.repeat(X, 3, axis=1)
    if channels != 1:
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    rgb = X.astype(np.uint32)
    luma = (rgb[:, 0] * 299 + rgb[:, 1] * 587 + rgb[:, 2] * 114 + 500) // 1000
    return luma[:, None].astype(np.uint8)


def _flat(X):
    return X.reshape(len(X), -1)


def _size(X):
    return f"{X.shape[2]}x{X.shape[3]}" + (f" with {X.shape[1]} channels" if X.shape[1] != 1 else "")


def load_mnist(path=None, normalize: str = "scale", validation_split: float = 0.0, seed: int = 0,
               verify: bool | None = None):
    """Load MNIST (or another labelled image set) as float32 ``(N, pixels)`` images and int64
    class indices.

    ``path``: ``None`` for the copy shipped with the package (works offline), or any source
    :func:`mnistfast.load_dataset` reads: a directory of IDX files (``.gz`` or raw), a Kaggle
    ``train.csv`` (which has no test split: 10 % of it, seeded, becomes the test set), a Keras
    ``mnist.npz``, or a folder of PNG/JPEG images with one subfolder per class. Labels come back
    as class indices; ``load_dataset`` also gives the classes' names and the image shape.

    ``normalize``: ``"scale"`` (``/255`` into [0, 1]), ``"standardize"`` (per-pixel mean/std of the
    training set), ``"none"`` (raw 0..255 as float32) or ``None``: the raw uint8 pixels, for a model
    to preprocess itself (see ``mf.Preprocessing``).

    ``validation_split``: if > 0, that fraction of the training set (seeded by ``seed``) is held out
    and the result is ``(train, val, test)`` instead of ``(train, test)``.

    ``verify``: check md5 sums against the published files; on by default for the bundled copy.
    """
    data = load_dataset(path, seed=seed, verify=verify)
    (Xtr, ytr), (Xte, yte) = data.train, data.test
    if normalize is not None:
        Xtr, Xte = _normalize(Xtr, Xte, normalize)
    if validation_split:
        (Xtr, ytr), (Xval, yval) = train_val_split(Xtr, ytr, validation_split, seed)
        return (Xtr, ytr), (Xval, yval), (Xte, yte)
    return (Xtr, ytr), (Xte, yte)
