"""The file readers: IDX files (one, or a directory of them) and Kaggle CSVs. ``load_mnist`` and
``load_dataset`` (``mnistfast.dataset``) build data sets from them.

Every reader validates what it reads and raises :class:`DataFormatError` naming the file and
the problem; nothing is returned half-loaded.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from . import memory
from .data_checks import DataFormatError, check_pair

__all__ = [
    "DataFormatError",
    "bundled_mnist_dir",
    "load_csv",
    "read_idx",
    "train_val_split",
]

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049

# Standard file stems and the md5 of their uncompressed bytes (the published MNIST files).
MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb"),
    "train_labels": ("train-labels-idx1-ubyte", "a25bea736e30d166cdddb491f175f624"),
    "test_images": ("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"),
    "test_labels": ("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637"),
}


def bundled_mnist_dir() -> Path:
    return Path(__file__).resolve().parent / "datasets" / "mnist"


# Limits on what a file may claim, so that a hostile or broken file cannot exhaust memory:
# MNIST's largest file is 47 MB uncompressed.
MAX_IDX_BYTES = 1 << 30
MAX_CSV_BYTES = 1 << 30


# What --data and predict accept, for the messages about files that are none of them.
ACCEPTED = ("a directory of IDX files, an IDX file, a Kaggle .csv, a Keras mnist.npz (x_train, y_train, "
            "x_test, y_test), or a folder of PNG/JPEG images with one subfolder per class")


def _describe_start(raw: bytes) -> str:
    head = raw[:64].lstrip().lower()
    if raw[:2] == b"\x1f\x8b":
        return " (it looks gzip-compressed: give it a .gz name)"
    for magic, what in ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
                        (b"PK\x03\x04", "a zip archive: a Keras mnist.npz needs the .npz suffix")):
        if raw.startswith(magic):
            return f" (it is {what}; accepted: {ACCEPTED})"
    if head.startswith((b"<!doctype", b"<html", b"<?xml", b"<head")):
        return " (it looks like an HTML page, not MNIST data)"
    return ""


def _sniff(path: Path) -> str:
    """What the start of ``path`` says it is (" (a PNG image)"), or nothing."""
    try:
        with open(path, "rb") as f:
            said = _describe_start(f.read(64))
    except OSError:
        return ""
    return said.split(";")[0] + ")" if said else ""


def _open_binary(path: Path):
    """The file opened for reading, or DataFormatError naming what is wrong with it."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise DataFormatError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataFormatError(f"{path}: is a directory, expected a file") from None
    except PermissionError:
        raise DataFormatError(f"{path}: permission denied (the file is not readable)") from None
    except OSError as e:
        raise DataFormatError(f"{path}: cannot open ({e.strerror or e})") from None


class _Stream:
    """Reads a raw or gzip file a piece at a time, never more than asked for, turning gzip
    failures into DataFormatError. Keeps the md5 of what it has read."""

    def __init__(self, path: Path):
        self.path = path
        self.raw = _open_binary(path)
        self.f = gzip.GzipFile(fileobj=self.raw, mode="rb") if path.suffix == ".gz" else self.raw
        self.md5 = hashlib.md5()

    CHUNK = 1 << 20

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes: fewer only at the end of the data. Memory grows with what the file
        really holds, not with what a header claims."""
        parts, got = [], 0
        try:
            while got < n:
                part = self.f.read(min(self.CHUNK, n - got))
                if not part:
                    break
                parts.append(part)
                got += len(part)
        except gzip.BadGzipFile:
            self.raw.seek(0)
            start = self.raw.read(64)
            hint = _describe_start(start) if start[:2] != b"\x1f\x8b" else ""
            raise DataFormatError(f"{self.path}: not gzip data, although the name ends in .gz{hint}") from None
        except EOFError:
            raise DataFormatError(f"{self.path}: the gzip data ends early: the file is truncated "
                                  "(an interrupted download?)") from None
        except (OSError, zlib.error) as e:
            raise DataFormatError(f"{self.path}: corrupt gzip data ({e})") from None
        out = b"".join(parts)
        self.md5.update(out)
        return out

    def close(self):
        self.f.close()
        self.raw.close()


# Peak memory per byte, for the budget: parsing a CSV takes about 11 bytes for each byte of a file
# of single-digit cells (measured: 513 MB for a 47 MB file), fewer for real pixels; an IDX file's
# bytes are read, copied into the array, and become float32 pixels (4 bytes each) in training.
CSV_PARSE_BYTES_PER_BYTE = 12
IDX_LOAD_COPIES = 6


def read_idx(path, expected_md5: str | None = None) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw) into a uint8 array.

    Images (magic 2051) come back as ``(count, rows, cols)``, labels (magic 2049) as ``(count,)``.
    If ``expected_md5`` is given, the uncompressed bytes must match it. The header is checked
    before the data is read, and no more data is read (or decompressed) than it promises.
    """
    path = Path(path)
    stream = _Stream(path)
    try:
        head = stream.read(8)
        if len(head) < 8:
            raise DataFormatError(f"{path}: truncated header ({len(head)} bytes, an IDX header needs at least 8)")
        magic, count = struct.unpack(">II", head)
        if magic == IMAGES_MAGIC:
            dims = stream.read(8)
            if len(dims) < 8:
                raise DataFormatError(f"{path}: truncated header ({8 + len(dims)} bytes, an IDX image header has 16)")
            rows, cols = struct.unpack(">II", dims)
            if rows == 0 or cols == 0:
                raise DataFormatError(f"{path}: the header says each image is {rows}x{cols} pixels")
            shape, kind = (count, rows, cols), "images"
        elif magic == LABELS_MAGIC:
            shape, kind = (count,), "labels"
        else:
            raise DataFormatError(
                f"{path}: wrong magic number 0x{magic:08x}, expected 0x{IMAGES_MAGIC:08x} (images) "
                f"or 0x{LABELS_MAGIC:08x} (labels){_describe_start(head)}"
            )
        if count == 0:
            raise DataFormatError(f"{path}: the header says the file holds 0 {kind}")
        expected = math.prod(shape)  # Python ints: a hostile header cannot overflow them
        if expected > MAX_IDX_BYTES:
            raise DataFormatError(f"{path}: the header promises {expected} bytes of {kind} {shape}, more than the "
                                  f"{MAX_IDX_BYTES >> 20} MiB limit for an IDX file")
        memory.check(IDX_LOAD_COPIES * expected, f"{path}: the {expected} bytes of {kind} its header promises")
        data = stream.read(expected)
        if len(data) < expected:
            raise DataFormatError(f"{path}: truncated data: header promises {expected} bytes, file has {len(data)}")
        extra = len(stream.read(1 << 16))
        if extra:
            more = "at least " if extra == 1 << 16 else ""
            raise DataFormatError(f"{path}: {more}{extra} trailing bytes after the {expected} the header promises")
    finally:
        stream.close()
    if expected_md5 is not None:
        digest = stream.md5.hexdigest()
        if digest != expected_md5:
            raise DataFormatError(f"{path}: checksum mismatch: md5 {digest}, expected {expected_md5}")
    return np.frombuffer(data, dtype=np.uint8).reshape(shape).copy()


# Other names an IDX set may carry (EMNIST's emnist-letters-train-images-idx3-ubyte.gz, ...).
IDX_PATTERNS = {
    "train_images": ("*train-images*-idx3-ubyte",), "train_labels": ("*train-labels*-idx1-ubyte",),
    "test_images": ("*t10k-images*-idx3-ubyte", "*test-images*-idx3-ubyte"),
    "test_labels": ("*t10k-labels*-idx1-ubyte", "*test-labels*-idx1-ubyte"),
}


def has_idx_files(directory: Path) -> bool:
    """Whether ``directory`` holds an IDX test or training image file (MNIST's name or another)."""
    return any(_matches(directory, key) for key in ("train_images", "test_images"))


def _matches(directory: Path, key: str) -> list:
    found = {p for pattern in IDX_PATTERNS[key] for suffix in ("", ".gz") for p in directory.glob(pattern + suffix)}
    return sorted(p for p in found if p.is_file())


def _find_idx(directory: Path, key: str) -> Path:
    """The file of ``key`` (``train_images``, ...): MNIST's name, else the one file whose name has
    the same ending (``emnist-letters-train-images-idx3-ubyte.gz``)."""
    stem = MNIST_FILES[key][0]
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    found = _matches(directory, key)
    if len(found) == 1:
        return found[0]
    if found:
        raise DataFormatError(f"{directory}: {len(found)} files could be the {key.replace('_', ' ')} "
                              f"({', '.join(p.name for p in found[:4])}): keep one set of IDX files per directory")
    raise DataFormatError(f"{directory}: no {stem}.gz or {stem} (or another name ending in "
                          f"{IDX_PATTERNS[key][0][1:]}[.gz]) in this directory")


def read_idx_dir(directory: Path, verify: bool = False, splits=("train", "test")) -> list:
    """``[(images (N, H, W), labels (N,), label_path), ...]`` of ``splits`` from a directory of
    IDX files; ``verify`` checks the published MNIST md5 sums."""
    out = {}
    for key, (stem, md5) in MNIST_FILES.items():
        if key.split("_")[0] not in splits:
            continue
        path = _find_idx(directory, key)
        out[key] = (read_idx(path, md5 if verify else None), path)
    for split in splits:
        (x, xp), (y, yp) = out[f"{split}_images"], out[f"{split}_labels"]
        check_pair(x, y, xp, yp)
    return [(out[f"{split}_images"][0], out[f"{split}_labels"][0], out[f"{split}_labels"][1]) for split in splits]


def _raise_csv_cell_error(path: Path, body: str, ncols: int) -> None:
    """Slow scan that names the first bad line; only runs once the fast parser has failed."""
    for r, line in enumerate(body.splitlines()):
        if not line.strip():
            continue
        cells = line.split(",")
        if len(cells) != ncols:
            raise DataFormatError(f"{path}: line {r + 2} has {len(cells)} cells, expected {ncols}")
        for c in cells:
            try:
                int(c)
            except ValueError:
                raise DataFormatError(f"{path}: line {r + 2}: non-numeric cell {c.strip()!r}") from None


def load_csv(path):
    """Read a Kaggle digit-recognizer CSV: ``label,pixel0..pixel783`` (``test.csv``: no label),
    or the same layout for any square image (``pixel0..pixel1023``: 32x32).

    Returns ``(X, y)`` with ``X`` uint8 ``(N, pixels)`` and ``y`` int64 (the labels as written),
    or ``y = None`` when the file has no label column.
    """
    path = Path(path)
    with _open_binary(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_CSV_BYTES:
            raise DataFormatError(f"{path}: {size} bytes, more than the {MAX_CSV_BYTES >> 20} MiB limit for a CSV "
                                  "(the Kaggle train.csv is 73 MB)")
        memory.check(CSV_PARSE_BYTES_PER_BYTE * size, f"{path}: parsing its {size} bytes")
        raw = f.read(MAX_CSV_BYTES + 1)
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark (saved by Excel and others) is not part of the header
    except UnicodeDecodeError:
        raise DataFormatError(f"{path}: not a text CSV file (not UTF-8){_describe_start(raw)}") from None
    header, _, body = text.partition("\n")
    header = header.strip()
    columns = [c.strip() for c in header.split(",")]
    has_label = columns[:1] == ["label"]
    pixels = [f"pixel{i}" for i in range(len(columns) - has_label)]
    side = math.isqrt(len(pixels))
    if columns[has_label:] != pixels or side * side != len(pixels) or not pixels:
        shown = ",".join(columns[:3]) + (",..." if len(columns) > 3 else "")
        raise DataFormatError(
            f"{path}: wrong CSV header '{shown}' ({len(columns)} columns); expected "
            "'label,pixel0,...,pixel783' or 'pixel0,...,pixel783' (any square number of pixels: 1024 for 32x32)"
        )
    ncols = len(columns)
    if not body.strip():
        raise DataFormatError(f"{path}: has a header but no data rows")
    try:
        data = np.loadtxt(io.StringIO(body), delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as e:
        _raise_csv_cell_error(path, body, ncols)
        raise DataFormatError(f"{path}: {e}") from None
    if data.shape[1] != ncols:
        _raise_csv_cell_error(path, body, ncols)
        raise DataFormatError(f"{path}: rows have {data.shape[1]} cells, expected {ncols}")
    X = data[:, 1:] if has_label else data
    if X.size and (X.min() < 0 or X.max() > 255):
        r = int(np.argmax(((X < 0) | (X > 255)).any(axis=1)))
        raise DataFormatError(f"{path}: line {r + 2}: pixel values must lie in 0..255")
    y = None
    if has_label:
        y = data[:, 0].copy()
        if y.size and y.min() < 0:
            r = int(np.argmax(y < 0))
            raise DataFormatError(f"{path}: line {r + 2}: label {y[r]} is negative; labels are class numbers 0, 1, ...")
    return X.astype(np.uint8), y


def train_val_split(X, y, fraction: float = 0.1, seed: int = 0):
    """Seeded random split: ``(X_train, y_train), (X_val, y_val)`` with ``fraction`` held out."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must lie strictly between 0 and 1, got {fraction}")
    n = len(X)
    n_val = int(round(n * fraction))
    if n_val == 0 or n_val == n:
        raise ValueError(f"validation fraction {fraction} of {n} samples leaves an empty split")
    perm = np.random.default_rng(seed).permutation(n)
    val, train = perm[:n_val], perm[n_val:]
    return (X[train], y[train]), (X[val], y[val])


def _normalize(X_train, X_test, normalize: str):
    X_train = X_train.reshape(len(X_train), -1).astype(np.float32)
    X_test = X_test.reshape(len(X_test), -1).astype(np.float32)
    if normalize == "scale":
        X_train /= 255.0
        X_test /= 255.0
    elif normalize == "standardize":
        # Per-pixel statistics of the training set only. Pixels that never vary in training
        # (the borders) keep unit scale instead of being divided by ~0.
        mean = X_train.mean(axis=0)
        std = X_train.std(axis=0)
        std[std < 1e-6] = 1.0
        X_train = (X_train - mean) / std
        X_test = (X_test - mean) / std
    elif normalize != "none":
        raise ValueError(f"normalize must be 'scale', 'standardize' or 'none', got {normalize!r}")
    return np.ascontiguousarray(X_train, dtype=np.float32), np.ascontiguousarray(X_test, dtype=np.float32)
