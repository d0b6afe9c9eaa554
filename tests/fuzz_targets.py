"""The readers' contract, shared by the Hypothesis tests (tests/test_fuzz.py) and the coverage-
guided fuzzer (fuzz/fuzz_readers.py): whatever the bytes, a reader returns well-formed data or
raises its documented error - DataFormatError for data files, ValueError for model files - and
nothing else (no other exception, no crash, no hang)."""

import gzip
import os

import numpy as np

import mnistfast as mf
from mnistfast.data import DataFormatError, load_csv, read_idx


def _write(workdir, name, data: bytes):
    path = os.path.join(workdir, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def idx_target(data: bytes, workdir, gz: bool) -> None:
    path = _write(workdir, "data-idx-ubyte" + (".gz" if gz else ""), data)
    try:
        arr = read_idx(path)
    except DataFormatError:
        return
    assert arr.dtype == np.uint8 and arr.ndim in (1, 3) and arr.size > 0


def csv_target(data: bytes, workdir) -> None:
    path = _write(workdir, "train.csv", data)
    try:
        X, y = load_csv(path)
    except DataFormatError:
        return
    side = int(round(X.shape[1] ** 0.5))
    assert X.dtype == np.uint8 and X.ndim == 2 and side * side == X.shape[1] > 0 and len(X) > 0
    assert y is None or (y.dtype == np.int64 and y.shape == (len(X),) and y.min() >= 0)


def image_target(data: bytes, workdir) -> None:
    """A PNG or JPEG file (Pillow decodes it): an image (C, H, W) or DataFormatError."""
    from mnistfast.image_files import read_image

    path = _write(workdir, "image.png", data)
    for channels in (1, 3):
        try:
            image = read_image(path, channels)
        except DataFormatError:
            return
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[0] == channels and image.size > 0


def model_target(data: bytes, workdir) -> None:
    path = _write(workdir, "model.npz", data)
    try:
        model = mf.load_model(path, backend="numpy")
    except ValueError:
        return
    assert all(np.isfinite(p).all() for p in model.get_params())


def storage_target(url: str) -> None:
    """A search storage URL opens a study or is a ValueError naming it (never a driver's own
    exception). Only URLs that stay on this machine: a server name would wait on the network."""
    import optuna

    from mnistfast.search import _open_study, _storage_url, make_sampler

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        study = _open_study(optuna, "fuzz", _storage_url(url), make_sampler("random", 0), attempts=1)
    except ValueError as e:
        assert str(e).startswith("search storage "), e
        return
    assert study.study_name == "fuzz"


def seed_inputs():
    """Valid files of each kind, for the fuzzer's corpus and the mutation tests."""
    rng = np.random.default_rng(0)
    images = np.array([2051, 3, 28, 28], ">u4").tobytes() + rng.integers(0, 256, 3 * 784, dtype=np.uint8).tobytes()
    labels = np.array([2049, 3], ">u4").tobytes() + bytes([1, 7, 9])
    header = "label," + ",".join(f"pixel{i}" for i in range(784))
    rows = "\n".join(f"{k}," + ",".join(str(v) for v in rng.integers(0, 256, 784)) for k in (3, 0))
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        model_path = os.path.join(d, "m.npz")
        mf.Sequential([mf.Dense(4, activation="relu"), mf.Dense(10)], input_shape=(6,), backend="numpy").save(model_path)
        with open(model_path, "rb") as f:
            model = f.read()
    return {"idx": [images, labels], "idx_gz": [gzip.compress(images), gzip.compress(labels)],
            "csv": [(header + "\n" + rows + "\n").encode()], "model": [model], "image": _images(rng)}


def _images(rng) -> list:
    """A small gray PNG, an RGB PNG and a JPEG, or none without Pillow."""
    try:
        from PIL import Image
    except ImportError:
        return []
    import io

    out = []
    for mode, shape, fmt in (("L", (8, 6), "PNG"), ("RGB", (5, 7, 3), "PNG"), ("RGB", (8, 8, 3), "JPEG")):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(buf, fmt)
        out.append(buf.getvalue())
    return out
