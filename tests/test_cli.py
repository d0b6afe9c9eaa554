"""``mnistfast train`` end to end on a small real subset, and its error handling."""

import json
import subprocess
import sys

import pytest

import mnistfast as mf
from mnistfast.cli import main


def test_train_writes_history_and_model(small_mnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--data", str(small_mnist_dir), "--epochs", "2", "--batch-size", "64",
               "--layers", "784,64,10", "--out", str(out), "--validation-split", "0.1"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "Epoch 2/2" in printed and "test accuracy:" in printed
    history = json.loads((out / "history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "time", "lr"} <= set(history["epochs"][0])
    assert history["test_accuracy"] > 0.8
    model = mf.load_model(out / "model.npz")
    (_, _), (Xt, yt) = mf.load_mnist(small_mnist_dir)
    assert model.evaluate(Xt, yt)["accuracy"] == pytest.approx(history["test_accuracy"])


def test_python_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "mnistfast", "train", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--batch-size" in r.stdout and "--lr-schedule" in r.stdout


def test_bad_data_path_is_a_clean_error(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "mnistfast: error:" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_layers_must_fit_the_data(small_mnist_dir, tmp_path, capsys):
    assert main(["train", "--data", str(small_mnist_dir), "--layers", "100,10", "--out", str(tmp_path)]) == 2
    assert "--layers starts with 100 inputs but the images have 784 pixels" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--layers", "784,a"], "--layers must be integers like 784,128,64,10"),
    (["--lr", "-1"], "argument --lr: must be positive"),
    (["--model", "resnet"], "argument --model: invalid choice: 'resnet'"),
    (["--optimizer", "rmsprop"], "argument --optimizer: invalid choice"),
])
def test_bad_flag_values(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_train_cnn(small_mnist_dir, tmp_path, capsys):
    out = tmp_path / "cnn"
    rc = main(["train", "--model", "cnn", "--data", str(small_mnist_dir), "--epochs", "1", "--out", str(out),
               "--verbose", "0", "--threads", "1"])
    assert rc == 0
    history = json.loads((out / "history.json").read_text())
    assert history["config"]["model"] == "cnn" and "Adam(lr=0.001" in history["config"]["optimizer"]
    assert history["test_accuracy"] > 0.8  # 3000 images, one epoch: measured 0.9
    model = mf.load_model(out / "model.npz")
    assert [p.shape for p in model.get_params()][0] == (32, 1, 3, 3)


def test_layers_flag_is_for_the_mlp(tmp_path, capsys):
    assert main(["train", "--model", "cnn", "--layers", "784,10", "--out", str(tmp_path)]) == 2
    assert "--layers, --dropout, --batchnorm and --activation apply to --model mlp only" in capsys.readouterr().err


def test_every_flag_is_explained_once(capsys):
    """Each command's help explains every flag, shows a default at most once, and has no raw RST
    (issue 23, finding 6: ten flags read "(default: the recipe's) (default: None)")."""
    import argparse
    import re

    from mnistfast.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, sub in commands.items():
        unexplained = [a.dest for a in sub._actions if a.option_strings and a.dest != "help" and not a.help]
        assert not unexplained, (name, unexplained)
        text = " ".join(sub.format_help().split())
        assert "``" not in text and "(default: None)" not in text and "(default: False)" not in text, name
        for flag in re.split(r"\s(?=--?[a-z])", text):
            assert flag.count("default") <= 1, (name, flag)


def test_eval_scores_the_data_the_model_was_trained_on(small_mnist_dir, tmp_path, capsys, monkeypatch):
    """``eval`` without ``--data`` takes the run's data (issue 23, finding 3: it scored the bundled
    MNIST without a word), from any working directory; other data is named in the first line."""
    out = tmp_path / "run"
    assert main(["train", "--data", str(small_mnist_dir), "--epochs", "1", "--layers", "784,32,10",
                 "--verbose", "0", "--out", str(out)]) == 0
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    assert main(["eval", str(out / "model.npz")]) == 0
    first, rest = capsys.readouterr().out.split("\n", 1)
    assert first == f"evaluating on the test split of the data the model was trained on: {small_mnist_dir.resolve()}"
    report = json.loads((out / "eval.json").read_text())
    history = json.loads((out / "history.json").read_text())
    assert report["data"] == str(small_mnist_dir.resolve()) and report["accuracy"] == history["test_accuracy"]
    assert main(["eval", str(out / "model.npz"), "--out", str(tmp_path / "bundled.json"),
                 "--data", str(mf.data.bundled_mnist_dir())]) == 0
    first = capsys.readouterr().out.split("\n", 1)[0]
    assert first.startswith(f"note: evaluating on {mf.data.bundled_mnist_dir()}, not on the data the model was "
                            f"trained on ({small_mnist_dir.resolve()})")
