"""The user's own data through the command line (issue 23, finding 1): IDX sets of other label
ranges and image sizes, Keras npz, Kaggle CSVs of other sizes, folders of PNGs per class; class
names kept by the model and written by predict; predict and eval on image files; and each kind of
bad input as one line that names the file, with nothing written."""

import csv
import json

import numpy as np
import pytest

import mnistfast as mf
from mnistfast.cli import main
from mnistfast.testing import assert_close
from own_data_sets import images, write_idx_set, write_image_folder

pytest.importorskip("PIL", reason="the image-folder tests need Pillow (the images extra)")


def _train(data, out, *extra):
    return main(["train", "--data", str(data), "--epochs", "2", "--verbose", "0", "--out", str(out), *extra])


def _rows(path):
    return list(csv.reader(open(path)))


@pytest.fixture(scope="module")
def letters(tmp_path_factory):
    """An EMNIST-letters-style set: its file names, labels 1..26."""
    return write_idx_set(tmp_path_factory.mktemp("letters"), prefix="emnist-letters-", labels_from=1, n_classes=26,
                         n_train=1040, n_test=260)


def test_emnist_letters_labels_come_back_as_given(letters, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(letters, out) == 0
    assert "26 classes (1..26)" in capsys.readouterr().out
    model = mf.load_model(out / "model.npz")
    assert model.n_classes == 26 and model.classes == [str(k) for k in range(1, 27)]
    assert json.loads((out / "history.json").read_text())["test_accuracy"] > 0.9
    # predict writes the user's labels, 1..26, not the indices 0..25
    test_images = next(letters.glob("*test-images*"))
    assert main(["predict", str(out / "model.npz"), "--data", str(test_images), "--out", str(tmp_path / "s.csv")]) == 0
    labels = mf.read_idx(next(letters.glob("*test-labels*")))
    predicted = np.array([int(r[1]) for r in _rows(tmp_path / "s.csv")[1:]])
    assert predicted.min() >= 1 and (predicted == labels).mean() > 0.9
    assert main(["eval", str(out / "model.npz")]) == 0
    report = json.loads((out / "eval.json").read_text())
    assert report["samples"] == 260 and [row["name"] for row in report["per_class"]][:2] == ["1", "2"]
    assert main(["predict", str(out / "model.npz"), "--data", str(test_images), "--proba",
                 "--out", str(tmp_path / "p.csv")]) == 0
    assert _rows(tmp_path / "p.csv")[0][:3] == ["ImageId", "1", "2"]


@pytest.mark.parametrize("model, side", [("mlp", 32), ("cnn", 32), ("cnn-fast", 64)])
def test_presets_take_the_data_image_size(model, side, tmp_path):
    data = write_idx_set(tmp_path / "set", side=side, n_train=300, n_test=60, n_classes=5)
    out = tmp_path / "run"
    assert _train(data, out, "--model", model, "--batch-size", "32") == 0
    m = mf.load_model(out / "model.npz")
    assert m.n_classes == 5 and int(np.prod(m.input_shape)) == side * side
    assert json.loads((out / "history.json").read_text())["test_accuracy"] > 0.6


def test_a_cnn_refuses_images_its_poolings_cannot_take(tmp_path, capsys):
    data = write_idx_set(tmp_path / "tiny", side=8, n_train=40, n_test=10, n_classes=2)
    assert _train(data, tmp_path / "run", "--model", "cnn") == 2
    err = capsys.readouterr().err
    assert err.startswith("mnistfast: error: the CNN preset 'basic' takes images of at least 10x10 pixels")
    assert not (tmp_path / "run").exists()


def test_a_folder_of_pngs_per_class(tmp_path, capsys):
    folder = write_image_folder(tmp_path / "pets", side=28)
    out = tmp_path / "run"
    assert _train(folder, out, "--channels", "3", "--model", "cnn-fast", "--epochs", "3") == 0
    assert "28x28 RGB, 3 classes (bird, cat, dog)" in capsys.readouterr().out
    model = mf.load_model(out / "model.npz")
    assert model.classes == ["bird", "cat", "dog"] and model.input_shape == (3, 28, 28)
    # one image, then the whole folder: File,Label with the class names
    one = folder / "cat" / "003.png"
    assert main(["predict", str(out / "model.npz"), "--data", str(one), "--out", str(tmp_path / "one.csv")]) == 0
    assert _rows(tmp_path / "one.csv") == [["File", "Label"], ["003.png", "cat"]]
    assert main(["predict", str(out / "model.npz"), "--data", str(folder), "--out", str(tmp_path / "all.csv")]) == 0
    rows = _rows(tmp_path / "all.csv")[1:]
    assert len(rows) == 120 and np.mean([r[0].split("/")[0] == r[1] for r in rows]) > 0.9
    # eval on the folder the model was trained on scores its held-out 10 %; on one image, its class
    assert main(["eval", str(out / "model.npz")]) == 0
    assert json.loads((out / "eval.json").read_text())["samples"] == 12
    assert main(["eval", str(out / "model.npz"), "--data", str(one), "--out", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["samples"] == 1


def test_an_rgb_model_of_named_classes_exports_to_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="serving the exported graph needs onnxruntime")
    folder = write_image_folder(tmp_path / "pets", per_class=20, side=16)
    out = tmp_path / "run"
    assert _train(folder, out, "--channels", "3", "--model", "cnn-improved", "--epochs", "1") == 0
    assert main(["export", str(out / "model.npz")]) == 0
    session = ort.InferenceSession(str(out / "model.onnx"))
    assert json.loads(session.get_modelmeta().custom_metadata_map["classes"]) == ["bird", "cat", "dog"]
    pixels, _ = mf.dataset.read_inputs(folder, channels=3)
    pixels = pixels.reshape(len(pixels), -1)
    proba = session.run(["probabilities"], {"pixels": pixels})[0]
    model = mf.load_model(out / "model.npz")
    assert_close(proba, model.predict_proba(pixels), "export")


def test_mixed_sizes_need_resize(tmp_path, capsys):
    folder = write_image_folder(tmp_path / "mixed", side=28, per_class=20, channels=1, sizes=[28, 40])
    assert _train(folder, tmp_path / "a") == 2
    err = capsys.readouterr().err
    assert "001.png: 40x40 pixels, but" in err and "bring them to one size with --resize" in err and not (tmp_path / "a").exists()
    assert _train(folder, tmp_path / "b", "--resize", "20") == 0
    model = mf.load_model(tmp_path / "b" / "model.npz")
    assert model.input_shape == (400,) and model.image_shape == (1, 20, 20)
    # the model resizes what it reads as it did in training; predict without --resize refuses other sizes
    assert main(["eval", str(tmp_path / "b" / "model.npz")]) == 0
    big = folder / "cat" / "001.png"
    assert main(["predict", str(tmp_path / "b" / "model.npz"), "--data", str(big), "--out", str(tmp_path / "p.csv")]) == 2
    assert "the images are 40x40, the model takes 20x20: give --resize" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()
    assert main(["predict", str(tmp_path / "b" / "model.npz"), "--data", str(big), "--resize",
                 "--out", str(tmp_path / "p.csv")]) == 0


def test_train_and_test_subfolders(tmp_path):
    root = tmp_path / "split"
    write_image_folder(root / "train", per_class=30, channels=1)
    write_image_folder(root / "test", per_class=5, channels=1)
    from PIL import Image
    Image.open(root / "test" / "cat" / "000.png").convert("RGB").save(root / "test" / "cat" / "extra.jpg")  # a JPEG
    assert _train(root, tmp_path / "run") == 0
    assert main(["eval", str(tmp_path / "run" / "model.npz")]) == 0
    report = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert report["samples"] == 16 and report["accuracy"] > 0.8


def test_keras_npz_channels_last_rgb_and_a_square_csv(tmp_path):
    y = np.arange(200) % 4
    X = images(y, side=32, channels=3).transpose(0, 2, 3, 1)  # Keras's (N, H, W, C)
    np.savez(tmp_path / "rgb.npz", x_train=X[:160], y_train=y[:160], x_test=X[160:], y_test=y[160:])
    assert _train(tmp_path / "rgb.npz", tmp_path / "a", "--model", "cnn-fast") == 0
    assert mf.load_model(tmp_path / "a" / "model.npz").input_shape == (3, 32, 32)
    gray = images(y + 3, side=32)[:, 0].reshape(200, -1)  # labels 3..6
    header = "label," + ",".join(f"pixel{i}" for i in range(1024))
    np.savetxt(tmp_path / "train.csv", np.column_stack([y + 3, gray]), fmt="%d", delimiter=",", header=header,
               comments="")
    assert _train(tmp_path / "train.csv", tmp_path / "b") == 0
    model = mf.load_model(tmp_path / "b" / "model.npz")
    assert model.classes == ["3", "4", "5", "6"] and model.input_shape == (1024,)


def _corrupt_png(folder):
    write_image_folder(folder, per_class=5, channels=1)
    (folder / "cat" / "002.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return folder


def _one_class(folder):
    write_image_folder(folder, classes=("cat",), per_class=5, channels=1)
    return folder


def _empty(folder):
    folder.mkdir()
    return folder


def _no_images(folder):
    (folder / "cat").mkdir(parents=True)
    (folder / "cat" / "notes.txt").write_text("hello")
    return folder


def _test_label_outside(folder):
    write_idx_set(folder, n_classes=3, n_train=30, n_test=10)
    import gzip
    import struct
    y = np.full(10, 7, np.uint8)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(struct.pack(">II", 2049, 10) + y.tobytes()))
    return folder


@pytest.mark.parametrize("make, message", [
    (_corrupt_png, "002.png: not a readable PNG or JPEG image"),
    (_one_class, "every sample has the label cat: a classifier needs at least two classes"),
    (_empty, "the folder is empty; accepted: a directory of IDX files"),
    (_no_images, "holds neither IDX files nor subfolders of PNG/JPEG images; accepted:"),
    (_test_label_outside, "t10k-labels-idx1-ubyte.gz: label 7 at index 0 is out of range: not one of the classes "
                          "the training labels span (0..2)"),
])
def test_bad_own_data_is_one_line_and_writes_nothing(tmp_path, capsys, make, message):
    data = make(tmp_path / "data")
    assert _train(data, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert err.startswith("mnistfast: error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_predict_on_an_unknown_file_names_the_formats(tmp_path, capsys, letters):
    assert _train(letters, tmp_path / "run", "--epochs", "1") == 0
    (tmp_path / "img.webp").write_bytes(b"RIFF\x00\x00\x00\x00WEBP")
    assert main(["predict", str(tmp_path / "run" / "model.npz"), "--data", str(tmp_path / "img.webp"),
                 "--out", str(tmp_path / "s.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mnistfast: error: ") and "img.webp" in err and not (tmp_path / "s.csv").exists()


def test_eval_on_an_image_outside_the_classes_says_so(tmp_path, capsys):
    folder = write_image_folder(tmp_path / "pets", per_class=10, channels=1)
    assert _train(folder, tmp_path / "run", "--epochs", "1") == 0
    stray = tmp_path / "elsewhere" / "x.png"
    stray.parent.mkdir()
    (folder / "cat" / "000.png").rename(stray)
    assert main(["eval", str(tmp_path / "run" / "model.npz"), "--data", str(stray)]) == 2
    assert "an image is labelled by the folder holding it, and 'elsewhere' is not one of the model's classes" \
        in capsys.readouterr().err


def test_load_dataset_in_the_api(letters):
    data = mf.load_dataset(letters)
    assert data.classes[0] == "1" and data.n_classes == 26 and data.image_shape == (1, 28, 28)
    (X, y), (Xt, yt) = data.train, data.test
    assert X.dtype == np.uint8 and X.shape == (1040, 784) and y.min() == 0 and y.max() == 25
    assert Xt.shape == (260, 784) and yt.shape == (260,)
