"""The recipes behind `mnistfast train --model ...` on small subsets (the full-accuracy runs are
in test_accuracy_slow.py), the ensemble option and seed 001's regularizers from the CLI."""

import json

import numpy as np
import pytest

import mnistfast as mf
from mnistfast.cli import main


@pytest.mark.parametrize("model,epochs,floor", [("cnn-fast", 2, 0.75), ("cnn-improved", 1, 0.5), ("cnn-deep", 1, 0.5)])
def test_cnn_recipes_learn_on_a_subset(small_mnist_dir, tmp_path, capsys, model, epochs, floor):
    out = tmp_path / model
    assert main(["train", "--model", model, "--data", str(small_mnist_dir), "--epochs", str(epochs),
                 "--verbose", "0", "--out", str(out)]) == 0
    record = json.loads((out / "history.json").read_text())
    assert record["test_accuracy"] > floor
    printed = capsys.readouterr().out
    if model in ("cnn-improved", "cnn-deep"):
        assert "RandomAffine(rotation=0.03, translation=0.06, zoom=0.05" in printed
        assert record["config"]["validation_split"] == 0.1 and "val_loss" in record["epochs"][0]
    else:  # the public recipe's optimizer and warm-up, not the schedule's defaults
        assert "Adam(lr=0.01," in printed and "betas=(0.7, 0.9)" in record["config"]["optimizer"]
    assert record["config"]["lr_schedule"].lower().startswith("onecycle")


def test_ensemble_option_trains_members_and_saves_their_average(small_mnist_dir, tmp_path, capsys):
    out = tmp_path / "ens"
    assert main(["train", "--layers", "784,32,10", "--data", str(small_mnist_dir), "--epochs", "1", "--ensemble",
                 "3", "--verbose", "0", "--out", str(out)]) == 0
    record = json.loads((out / "history.json").read_text())
    assert [m["config"]["seed"] for m in record["members"]] == [0, 1, 2]
    ens = mf.load_model(out / "model.npz")
    assert isinstance(ens, mf.Ensemble) and len(ens.models) == 3
    (_, _), (Xt, yt) = mf.load_mnist(small_mnist_dir, normalize=None)
    assert ens.evaluate(Xt, yt)["accuracy"] == pytest.approx(record["test_accuracy"])
    assert "ensemble of 3: test accuracy" in capsys.readouterr().out
    assert main(["eval", str(out / "model.npz"), "--data", str(small_mnist_dir)]) == 0  # an ensemble file too
    assert json.loads((out / "eval.json").read_text())["accuracy"] == pytest.approx(record["test_accuracy"])


def test_regularizers_from_the_cli(small_mnist_dir, tmp_path):
    out = tmp_path / "reg"
    assert main(["train", "--layers", "784,64,32,10", "--data", str(small_mnist_dir), "--epochs", "2",
                 "--dropout", "0.2", "--batchnorm", "--activation", "leaky_relu", "--weight-decay", "1e-4",
                 "--clipvalue", "5", "--optimizer", "adam", "--lr", "1e-3", "--verbose", "0", "--out", str(out)]) == 0
    model = mf.load_model(out / "model.npz")
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Dense", "BatchNorm", "LeakyReLU", "Dropout"] * 2 + ["Dense"]
    record = json.loads((out / "history.json").read_text())
    assert "weight_decay=0.0001" in record["config"]["optimizer"] and "clipvalue=5.0" in record["config"]["optimizer"]
    assert record["test_accuracy"] > 0.6  # 2 epochs on 2700 images: it learns


def test_default_mlp_keeps_its_layout():
    m = mf.MLP()
    assert [type(layer).__name__ for layer in m.layers] == ["Dense"] * 3
    assert [p.shape for p in m.get_params()] == [(784, 128), (128,), (128, 64), (64,), (64, 10), (10,)]
    assert np.isfinite(m.get_params()[0]).all()


def test_a_recipe_keeps_its_optimizer_and_schedule_options_only_for_its_own_choices():
    from mnistfast.presets import RECIPES
    from mnistfast.schedules import OneCycle

    own = RECIPES["cnn-fast"].fit_kwargs()
    assert own["optimizer"].betas == (0.7, 0.9) and own["optimizer"].lr == 1e-2
    assert isinstance(own["lr_schedule"], OneCycle) and own["lr_schedule"].pct_start == 0.3
    other = RECIPES["cnn-fast"].fit_kwargs(optimizer="sgd", lr_schedule="cosine")
    assert type(other["optimizer"]).__name__ == "SGD" and other["lr_schedule"] == "cosine"
