"""Keras's mnist.npz as --data and as predict's input, and files of other kinds named for what
they are (issue 23, finding 1: `--data mnist.npz` and `predict --data img.png` failed with
"wrong magic number 0x504b0304 / 0x89504e47")."""

import csv
import json
import re

import numpy as np
import pytest

import mnistfast as mf
from mnistfast.cli import main
from mnistfast.data import DataFormatError, bundled_mnist_dir, read_idx


@pytest.fixture(scope="module")
def keras_npz(tmp_path_factory):
    images = read_idx(bundled_mnist_dir() / "train-images-idx3-ubyte.gz")
    labels = read_idx(bundled_mnist_dir() / "train-labels-idx1-ubyte.gz")
    path = tmp_path_factory.mktemp("keras") / "mnist.npz"
    np.savez_compressed(path, x_train=images[:2000], y_train=labels[:2000], x_test=images[2000:2300],
                        y_test=labels[2000:2300])
    return path


def test_train_eval_and_predict_on_a_keras_npz(keras_npz, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(keras_npz), "--epochs", "1", "--layers", "784,32,10", "--verbose", "0",
                 "--out", str(out)]) == 0
    history = json.loads((out / "history.json").read_text())
    assert history["test_accuracy"] > 0.5  # one epoch on 2000 images
    capsys.readouterr()
    assert main(["eval", str(out / "model.npz")]) == 0
    assert capsys.readouterr().out.startswith(f"evaluating on the test split of the data the model was trained on: "
                                              f"{keras_npz.resolve()}")
    assert json.loads((out / "eval.json").read_text())["samples"] == 300
    assert main(["predict", str(out / "model.npz"), "--data", str(keras_npz), "--out", str(tmp_path / "s.csv")]) == 0
    rows = list(csv.reader((tmp_path / "s.csv").open()))
    assert len(rows) == 301 and rows[0] == ["ImageId", "Label"]


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("kind, message", [
    ("missing", "no 'y_test' array; a Keras mnist.npz holds x_train, y_train, x_test, y_test"),
    ("float", "'x_train' is float32, expected uint8 pixels"),
    ("shape", "the test images are 28x28, the training images 10x10: give --resize"),
    ("labels", "y_test: label 12 at index 1 is out of range: not one of the classes the training labels span (1..4)"),
    ("count", "has 4 images but"),
    ("pickle", "its 'y_train' array cannot be read"),
    ("not_zip", "not a readable .npz archive"),
])
def test_a_bad_npz_is_one_line(tmp_path, kind, message):
    x, y = np.zeros((4, 28, 28), np.uint8), np.array([1, 2, 3, 4], np.uint8)
    arrays = {"x_train": x, "y_train": y, "x_test": x, "y_test": y}
    if kind == "missing":
        del arrays["y_test"]
    elif kind == "float":
        arrays["x_train"] = x.astype(np.float32)
    elif kind == "shape":
        arrays["x_train"] = np.zeros((4, 10, 10), np.uint8)
    elif kind == "labels":
        arrays["y_test"] = np.array([1, 12, 3, 4], np.uint8)
    elif kind == "count":
        arrays["y_train"] = y[:3]
    elif kind == "pickle":
        arrays["y_train"] = np.array([{"a": 1}] * 4, dtype=object)
    path = tmp_path / "mnist.npz"
    if kind == "not_zip":
        path.write_bytes(b"not a zip archive")
    else:
        _npz(path, **arrays)
    with pytest.raises(DataFormatError, match=re.escape(message)):
        mf.load_mnist(path)


def test_an_npz_member_over_the_memory_budget_is_refused_before_it_expands(tmp_path, monkeypatch):
    big = np.zeros((3000, 28, 28), np.uint8)  # 2.4 MB expanded, a few KB compressed
    path = tmp_path / "mnist.npz"
    np.savez_compressed(path, x_train=big, y_train=np.zeros(3000, np.uint8), x_test=big[:1], y_test=np.zeros(1, np.uint8))
    assert path.stat().st_size < 100_000
    monkeypatch.setenv("MNISTFAST_MAX_MEMORY", "1M")
    with pytest.raises(ValueError, match="its 'x_train' array would need 6.7 MiB, more than the memory budget"):
        mf.load_mnist(path)


@pytest.mark.parametrize("start, what", [(b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff\xe0", "a JPEG image"),
                                         (b"PK\x03\x04", "a zip archive")])
def test_files_of_other_kinds_are_named_with_the_formats_accepted(tmp_path, capsys, start, what):
    mf.MLP([784, 10]).save(tmp_path / "m.npz")
    path = tmp_path / "picture.bin"
    path.write_bytes(start + bytes(64))
    assert main(["predict", str(tmp_path / "m.npz"), "--data", str(path), "--out", str(tmp_path / "s.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"it is {what}" in err and "a Keras mnist.npz" in err
    assert not (tmp_path / "s.csv").exists()
    with pytest.raises(DataFormatError, match=f"{what}.*accepted: a directory of IDX files"):
        mf.load_mnist(path)
