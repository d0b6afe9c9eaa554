"""Backward passes against central finite differences, in float64 on the numpy reference."""

import numpy as np
import pytest

import mnistfast as mf
from mnistfast.testing import assert_close

H = 1e-6
MAX_PICKS = 60  # elements checked per parameter tensor (all of the small ones)


def check_gradients(model, X, y, rng):
    """Every layer's analytic gradient (internal layout) against central differences of the loss."""
    dropouts = [layer for layer in model.layers if isinstance(layer, mf.Dropout)]

    def loss():
        for d in dropouts:
            d.step = 0  # the same mask for every evaluation
        value, _ = model.loss_and_grads(X, y)
        return value

    loss()
    analytic = [[g.copy() for g in layer.grads] for layer in model.layers]
    checked = 0
    for i, layer in enumerate(model.layers):
        for k, p in enumerate(layer.params):
            flat = p.reshape(-1)
            picks = range(flat.size) if flat.size <= MAX_PICKS else rng.choice(flat.size, MAX_PICKS, replace=False)
            numeric = []
            for j in picks:
                saved = flat[j]
                flat[j] = saved + H
                plus = loss()
                flat[j] = saved - H
                minus = loss()
                flat[j] = saved
                numeric.append((plus - minus) / (2 * H))
            got = analytic[i][k].reshape(-1)[list(picks)]
            assert np.abs(got).max() > 1e-6, f"layer {i} param {k}: gradient is all zero, the check proves nothing"
            assert_close(got, np.array(numeric), "gradcheck", f"layer {i} ({type(layer).__name__}) param {k}")
            checked += 1
    return checked


def make(layers, input_shape, seed=3):
    return mf.Sequential(layers, input_shape=input_shape, backend="numpy", dtype=np.float64, seed=seed)


IMG = (2, 7, 6)  # C, H, W: odd sizes
CASES = {
    "dense": ([mf.Dense(5, activation="relu"), mf.Dense(4), mf.Dense(3)], (6,)),
    "mlp 784-16-10": ([mf.Dense(16, activation="relu"), mf.Dense(10)], (784,)),
    "activation layers": ([mf.Dense(6), mf.LeakyReLU(0.1), mf.Dense(5), mf.Sigmoid(), mf.Dense(5), mf.Tanh(),
                           mf.Dense(4), mf.ReLU(), mf.Dense(3)], (5,)),
    "conv valid": ([mf.Conv2D(3, 3), mf.Flatten(), mf.Dense(3)], IMG),
    "conv same stride 2 no bias": ([mf.Conv2D(4, 3, stride=2, padding="same", use_bias=False, activation="relu"),
                                    mf.Flatten(), mf.Dense(3)], IMG),
    "conv 1x1 and 5x5": ([mf.Conv2D(3, 1), mf.Conv2D(2, 5, padding="same"), mf.Flatten(), mf.Dense(3)], IMG),
    "maxpool": ([mf.Conv2D(3, 2, activation="relu"), mf.MaxPool2D(2), mf.Flatten(), mf.Dense(3)], IMG),
    "global avg pool": ([mf.Conv2D(4, 3, padding="same"), mf.GlobalAvgPool2D(), mf.Dense(3)], IMG),
    "batchnorm": ([mf.Dense(6, activation="relu"), mf.BatchNorm(), mf.Dense(3)], (5,)),
    "batchnorm on images": ([mf.Conv2D(3, 3, use_bias=False), mf.BatchNorm(), mf.ReLU(), mf.Flatten(), mf.Dense(3)],
                            IMG),
    "dropout": ([mf.Dense(8, activation="relu"), mf.Dropout(0.3), mf.Dense(3)], (5,)),
    "reshape": ([mf.Dense(2 * 3 * 4), mf.Reshape((2, 3, 4)), mf.Conv2D(2, 2), mf.Flatten(), mf.Dense(3)], (5,)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_layer_gradients(case, rng):
    layers, shape = CASES[case]
    model = make(layers, shape)
    X = rng.normal(size=(5, *shape))
    y = rng.integers(0, 3 if case != "mlp 784-16-10" else 10, 5)
    assert check_gradients(model, X, y, rng) == sum(len(layer.params) for layer in model.layers)


def test_small_cnn_gradients(rng):
    """A whole CNN of the basic preset's shape, scaled down, with dropout."""
    model = make([mf.Conv2D(4, 3, activation="relu"), mf.MaxPool2D(2), mf.Conv2D(6, 3, activation="relu"),
                  mf.MaxPool2D(2), mf.Flatten(), mf.Dense(8, activation="relu"), mf.Dropout(0.25), mf.Dense(5)],
                 (1, 14, 14))
    X = rng.uniform(0, 1, size=(6, 1, 14, 14))
    y = rng.integers(0, 5, 6)
    assert check_gradients(model, X, y, rng) == 8


def test_cpp_gradients_match_reference(rng):
    X = rng.uniform(0, 1, size=(50, 784)).astype(np.float32)
    y = rng.integers(0, 10, 50)
    for build in (lambda be, **kw: mf.MLP(backend=be, seed=0, **kw), lambda be, **kw: mf.CNN("basic", backend=be, **kw)):
        ref = build("numpy", dtype=np.float64)
        cpp = build("cpp")
        loss_ref, g_ref = ref.loss_and_grads(X, y)
        loss, g = cpp.loss_and_grads(X, y)
        assert_close(loss, loss_ref, "softmax_xent", "loss")
        for k, (a, b) in enumerate(zip(g, g_ref)):
            assert_close(a, b, "conv", f"grad {k}")
