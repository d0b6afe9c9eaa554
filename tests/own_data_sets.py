"""Small generated data sets in every layout ``--data`` reads, for the own-data tests: each class
is a bright square at its own place on a noisy background, so a model learns it in one epoch."""

import gzip
import struct

import numpy as np


def images(labels, side=28, channels=1, seed=0, classes=None):
    """uint8 ``(N, C, side, side)``: class ``k`` (its index among ``classes``) lights a 4x4
    square at cell ``k`` of a grid over the image."""
    rng = np.random.default_rng(seed)
    classes = sorted(set(labels.tolist())) if classes is None else list(classes)
    per_row = max(1, (side - 2) // 5)
    X = rng.integers(0, 60, (len(labels), channels, side, side)).astype(np.uint8)
    for i, label in enumerate(labels.tolist()):
        k = classes.index(label)
        r, c = 1 + 5 * (k // per_row), 1 + 5 * (k % per_row)
        X[i, :, r : r + 4, c : c + 4] = 255
    return X


def write_idx_set(directory, prefix="", labels_from=0, n_classes=10, side=28, n_train=400, n_test=100):
    """A directory of the four IDX files, named ``{prefix}train-images-idx3-ubyte.gz`` and so on
    (``prefix="emnist-letters-"`` and the ``test`` names EMNIST uses), labels
    ``labels_from..labels_from + n_classes - 1``."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    classes = list(range(labels_from, labels_from + n_classes))
    test_word = "test" if prefix else "t10k"
    for split, n in (("train", n_train), (test_word, n_test)):
        y = np.array(classes * (n // n_classes + 1))[:n]
        rng.shuffle(y)
        X = images(y, side, seed=n, classes=classes)[:, 0]
        (directory / f"{prefix}{split}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(struct.pack(">IIII", 2051, *X.shape) + X.tobytes()))
        (directory / f"{prefix}{split}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(struct.pack(">II", 2049, len(y)) + y.astype(np.uint8).tobytes()))
    return directory


def write_image_folder(folder, classes=("bird", "cat", "dog"), per_class=40, side=28, channels=3, sizes=None):
    """``folder/<class>/<i>.png``: RGB (or gray) PNGs; ``sizes`` (a list of sides) gives each
    image in turn another size."""
    from PIL import Image

    for k, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        X = images(np.full(per_class, k), side, channels, seed=k, classes=range(len(classes)))
        for i, x in enumerate(X):
            im = Image.fromarray(x[0] if channels == 1 else x.transpose(1, 2, 0))
            if sizes:
                s = sizes[i % len(sizes)]
                im = im.resize((s, s))
            im.save(folder / name / f"{i:03d}.png")
    return folder
