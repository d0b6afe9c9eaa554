"""PNG and JPEG images through Pillow (the ``images`` extra): single files, folders of them, and a
folder with one subfolder of images per class.

Images come back as uint8 ``(N, C, H, W)``: grayscale (``channels=1``, the default) or RGB
(``channels=3``). All images of one set must share a size, unless ``resize=(H, W)`` brings each to
that size (bilinear); the first image of another size is named otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import memory
from .data_checks import DataFormatError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Larger than any image a digit classifier takes, small enough that one header cannot ask for
# gigabytes before the memory budget sees the whole set.
MAX_IMAGE_PIXELS = 1 << 26
# One image is decoded, converted, possibly resized, and copied into the stacked array.
LOAD_COPIES = 3


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError('reading PNG and JPEG images needs Pillow: pip install "mnistfast[images]"') from None
    return Image


def is_image_file(path: Path) -> bool:
    """A PNG or JPEG by its name."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def images_in(folder: Path, recursive: bool = False) -> list[Path]:
    """The folder's image files (and its subfolders', if ``recursive``), sorted by path."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and is_image_file(p)
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def parse_size(text) -> tuple[int, int]:
    """``28``, ``"28"`` or ``"32x24"`` (height x width) as ``(H, W)``; ValueError otherwise."""
    if isinstance(text, (tuple, list)) and len(text) == 2:
        h, w = text
    else:
        parts = str(text).lower().replace("×", "x").split("x")
        try:
            h, w = (int(parts[0]), int(parts[0])) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
        except ValueError:
            raise ValueError(f"resize: expected a size like 28 or 32x24 (height x width), got {text!r}") from None
        if len(parts) > 2:
            raise ValueError(f"resize: expected a size like 28 or 32x24 (height x width), got {text!r}")
    if not (isinstance(h, int) and isinstance(w, int) and 1 <= h <= 4096 and 1 <= w <= 4096):
        raise ValueError(f"resize: height and width must be integers in 1..4096, got {text!r}")
    return h, w


def _mode(channels: int) -> str:
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    return "L" if channels == 1 else "RGB"


def read_image(path: Path, channels: int = 1, resize=None) -> np.ndarray:
    """One image file as uint8 ``(C, H, W)``, converted to ``channels`` and resized to ``resize``."""
    Image = _pillow()
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise DataFormatError(f"{path}: {im.height}x{im.width} pixels, more than the "
                                      f"{MAX_IMAGE_PIXELS} mnistfast reads in one image")
            im = im.convert(_mode(channels))
            if resize is not None and (im.height, im.width) != tuple(resize):
                im = im.resize((resize[1], resize[0]), Image.BILINEAR)
            a = np.asarray(im, dtype=np.uint8)
    except (DataFormatError, MemoryError):
        raise
    except FileNotFoundError:
        raise DataFormatError(f"{path}: file not found") from None
    except Exception as e:  # noqa: BLE001 - a decoder fed broken bytes fails in ways of its own
        raise DataFormatError(f"{path}: not a readable PNG or JPEG image ({type(e).__name__}: {e})") from None
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def resize_images(X: np.ndarray, size) -> np.ndarray:
    """uint8 ``(N, C, H, W)`` brought to ``size = (H, W)`` image by image (bilinear); unchanged
    when it already has that size."""
    if X.shape[2:] == tuple(size):
        return X
    Image = _pillow()
    h, w = size
    memory.check(LOAD_COPIES * len(X) * X.shape[1] * h * w, f"resizing {len(X)} images to {h}x{w}")
    out = np.empty((len(X), X.shape[1], h, w), dtype=np.uint8)
    for i, x in enumerate(X):
        im = Image.fromarray(x[0] if x.shape[0] == 1 else x.transpose(1, 2, 0))
        r = np.asarray(im.resize((w, h), Image.BILINEAR), dtype=np.uint8)
        out[i] = r[None] if r.ndim == 2 else r.transpose(2, 0, 1)
    return out


def read_images(paths, channels: int = 1, resize=None) -> np.ndarray:
    """The images at ``paths`` stacked as uint8 ``(N, C, H, W)``; without ``resize`` they must
    share one size, or DataFormatError names the first that does not."""
    if not paths:
        raise DataFormatError("no images to read")
    first = read_image(paths[0], channels, resize)
    memory.check(LOAD_COPIES * len(paths) * first.size, f"{paths[0].parent}: {len(paths)} images of "
                                                          f"{first.shape[1]}x{first.shape[2]} pixels")
    out = np.empty((len(paths), *first.shape), dtype=np.uint8)
    out[0] = first
    for i, path in enumerate(paths[1:], start=1):
        image = read_image(path, channels, resize)
        if image.shape != first.shape:
            raise DataFormatError(f"{path}: {image.shape[1]}x{image.shape[2]} pixels, but {paths[0]} is "
                                  f"{first.shape[1]}x{first.shape[2]}: bring them to one size with --resize (resize= "
                                  "in the API)")
        out[i] = image
    return out


def class_folders(folder: Path) -> list[Path]:
    """The subfolders of ``folder`` that hold images, sorted by name (hidden ones left out)."""
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".") and images_in(d))


def read_class_folder(folder: Path, channels: int = 1, resize=None):
    """A folder with one subfolder of images per class: uint8 ``(N, C, H, W)`` images and their
    class names (the subfolders' names)."""
    classes = class_folders(folder)
    if not classes:
        raise DataFormatError(f"{folder}: no subfolders of PNG or JPEG images (a folder of images needs one "
                              "subfolder per class, named for the class)")
    files, names = [], []
    for d in classes:
        found = images_in(d, recursive=True)
        files += found
        names += [d.name] * len(found)
    return read_images(files, channels, resize), np.array(names)

