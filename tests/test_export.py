"""Models out of the package (issue 23): the ONNX graph run in onnxruntime, and the torch.export
program run by PyTorch, give predict_proba's probabilities (``TOLERANCES["export"]``) and labels,
for every layer kind, every preprocessing, the presets and an ensemble; safetensors holds the
weights and config; the CLI writes each."""

import importlib.util
import json

import numpy as np
import pytest

import mnistfast as mf
from mnistfast.cli import main
from mnistfast.testing import TOLERANCES, assert_close

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is a test dependency (pip install '.[test]')")


def run_onnx(path, pixels):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"pixels": pixels.reshape(len(pixels), -1)})[0]


def run_torch(path, pixels):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (.ci/run installs it)")
    module = torch.export.load(str(path)).module()
    with torch.no_grad():
        return module(torch.from_numpy(pixels.reshape(len(pixels), -1))).numpy()


RUNNERS = {"onnx": run_onnx, "torch": run_torch}


def assert_same_predictions(got, want):
    assert_close(got, want, "export")
    top2 = np.sort(want, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * TOLERANCES["export"].atol  # not a tie within the tolerance
    np.testing.assert_array_equal(got.argmax(1)[clear], want.argmax(1)[clear])


def trained(model, mnist, kind="scale"):
    (X, y), _ = mnist
    raw = (X[:512] * 255).round().astype(np.uint8).reshape(512, -1)
    model.preprocessing = mf.Preprocessing(kind).fit(raw)
    model.fit(raw, y[:512], epochs=1, batch_size=64, verbose=0, optimizer=mf.optim.Adam(2e-3))
    return model


@pytest.fixture(scope="module")
def pixels(mnist):
    _, (Xt, _) = mnist
    return (Xt[:300] * 255).round().astype(np.uint8).reshape(300, -1)


EVERY_LAYER = [  # each layer kind, batch norm folded (after a conv or dense) and on its own
    lambda: [mf.Conv2D(6, 3, padding="same", activation="relu"), mf.MaxPool2D(2), mf.Conv2D(8, 3, use_bias=False),
             mf.BatchNorm(), mf.ReLU(), mf.Conv2D(8, 3, stride=2, padding="same"), mf.LeakyReLU(0.1),
             mf.BatchNorm(), mf.GlobalAvgPool2D(), mf.Dense(16), mf.BatchNorm(), mf.Tanh(), mf.Dropout(0.3),
             mf.Dense(10)],
    lambda: [mf.Reshape((784,)), mf.Dense(32, activation="relu"), mf.Sigmoid(), mf.Reshape((2, 4, 4)),
             mf.Conv2D(4, 2, stride=(1, 2), padding="same"), mf.Flatten(), mf.Dense(10)],
]


@pytest.mark.parametrize("fmt", ["onnx", "torch"])
@pytest.mark.parametrize("layers", EVERY_LAYER, ids=["conv_bn_pool", "reshape_dense"])
@pytest.mark.parametrize("kind", ["scale", "standardize", "none"])
def test_every_layer_and_preprocessing_exports(mnist, pixels, tmp_path, layers, kind, fmt):
    model = trained(mf.Sequential(layers(), input_shape=(1, 28, 28), seed=2), mnist, kind)
    model.export(tmp_path / "m", format=fmt)
    assert_same_predictions(RUNNERS[fmt](tmp_path / "m", pixels), model.predict_proba(pixels))


@pytest.mark.parametrize("fmt", ["onnx", "torch"])
@pytest.mark.parametrize("preset", ["mlp", "basic", "improved", "fast", "deep"])
def test_the_presets_export(mnist, pixels, tmp_path, preset, fmt):
    model = trained(mf.MLP(seed=1) if preset == "mlp" else mf.CNN(preset, seed=1), mnist, "standardize")
    model.export(tmp_path / "m", format=fmt)
    assert_same_predictions(RUNNERS[fmt](tmp_path / "m", pixels), model.predict_proba(pixels))


@pytest.mark.parametrize("fmt", ["onnx", "torch"])
def test_an_ensemble_exports_as_its_averaged_probabilities(mnist, pixels, tmp_path, fmt):
    members = [trained(mf.MLP([784, 32, 10], seed=s), mnist) for s in (1, 2, 3)]
    ensemble = mf.Ensemble(members)
    ensemble.export(tmp_path / "e", format=fmt)
    got = RUNNERS[fmt](tmp_path / "e", pixels)
    assert_same_predictions(got, ensemble.predict_proba(pixels))
    batch_of_one = RUNNERS[fmt](tmp_path / "e", pixels[:1])  # the batch axis is dynamic
    assert_close(batch_of_one, got[:1], "export")


def test_safetensors_holds_the_weights_and_config(mnist, tmp_path):
    from safetensors.numpy import load_file
    from safetensors import safe_open

    model = trained(mf.CNN("basic", seed=1), mnist, "standardize")
    model.export(tmp_path / "m.safetensors", format="safetensors")
    tensors = load_file(str(tmp_path / "m.safetensors"))
    for name, want in zip(model.param_names(), model.get_params()):
        np.testing.assert_array_equal(tensors[name], want.astype(np.float32))
    np.testing.assert_array_equal(tensors["preprocessing.mean"], model.preprocessing.mean)
    with safe_open(str(tmp_path / "m.safetensors"), "np") as f:
        config = json.loads(f.metadata()["config"])
    assert config["layers"] == model.get_config()["layers"] and config["input_shape"] == [1, 28, 28]


def test_export_refuses_what_it_cannot_write(tmp_path):
    model = mf.MLP([784, 10])
    with pytest.raises(ValueError, match="unknown format 'keras'; choose one of onnx, safetensors, torch"):
        model.export(tmp_path / "m.keras", format="keras")
    assert list(tmp_path.iterdir()) == []

    class Odd(mf.layers.activations._Activation):
        kind = "odd"

    odd = mf.Sequential([mf.Dense(10), Odd()], input_shape=(784,))
    with pytest.raises(ValueError, match="no ONNX form for the activation 'odd'"):
        odd.export(tmp_path / "odd.onnx")
    if importlib.util.find_spec("torch"):
        with pytest.raises(ValueError, match="no torch form for the activation 'odd'"):
            odd.export(tmp_path / "odd.pt", format="torch")
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_the_cli_exports_a_trained_run(small_mnist_dir, tmp_path, capsys, pixels):
    out = tmp_path / "run"
    assert main(["train", "--data", str(small_mnist_dir), "--epochs", "1", "--layers", "784,32,10",
                 "--verbose", "0", "--out", str(out)]) == 0
    assert main(["export", str(out / "model.npz")]) == 0
    assert f"wrote {out / 'model.onnx'}" in capsys.readouterr().out
    model = mf.load_model(out / "model.npz")
    assert_same_predictions(run_onnx(out / "model.onnx", pixels), model.predict_proba(pixels))
    assert main(["export", str(out / "model.npz"), "--format", "safetensors", "--out", str(tmp_path / "w.st")]) == 0
    assert (tmp_path / "w.st").stat().st_size > 4 * model.count_params()
    (tmp_path / "taken").mkdir()
    assert main(["export", str(out / "model.npz"), "--out", str(tmp_path / "taken")]) == 2
    assert "mnistfast: error:" in capsys.readouterr().err


def test_the_cli_writes_a_torch_program(small_mnist_dir, tmp_path, capsys, pixels):
    out = tmp_path / "run"
    assert main(["train", "--data", str(small_mnist_dir), "--epochs", "1", "--model", "cnn-fast", "--verbose", "0",
                 "--out", str(out)]) == 0
    assert main(["export", str(out / "model.npz"), "--format", "torch"]) == 0
    assert f"wrote {out / 'model.pt2'}" in capsys.readouterr().out
    assert_same_predictions(run_torch(out / "model.pt2", pixels), mf.load_model(out / "model.npz").predict_proba(pixels))
