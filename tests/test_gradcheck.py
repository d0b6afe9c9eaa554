"""The reference MLP's backward pass against central finite differences, in float64."""

import numpy as np
import pytest

import mnistfast as mf
from mnistfast.testing import assert_close

H = 1e-6


@pytest.mark.parametrize("layers", [(6, 5, 4, 3), (9, 3), (784, 16, 10)])
def test_reference_gradients_match_finite_differences(layers, rng):
    model = mf.MLP(layers, backend="numpy", dtype=np.float64, seed=3)
    X = rng.normal(size=(11, layers[0]))
    y = rng.integers(0, layers[-1], 11)
    _, grads = model.loss_and_grads(X, y)
    for k, (p, g) in enumerate(zip(model.params, grads)):
        # Every element of small tensors; a seeded sample of the 784-wide first layer.
        flat = p.reshape(-1)
        picks = range(flat.size) if flat.size <= 200 else rng.choice(flat.size, 200, replace=False)
        numeric = []
        for j in picks:
            saved = flat[j]
            flat[j] = saved + H
            plus, _ = model.loss_and_grads(X, y)
            flat[j] = saved - H
            minus, _ = model.loss_and_grads(X, y)
            flat[j] = saved
            numeric.append((plus - minus) / (2 * H))
        assert_close(g.reshape(-1)[list(picks)], np.array(numeric), "gradcheck", f"param {k}")


def test_cpp_gradients_match_reference(rng):
    X = rng.uniform(0, 1, size=(50, 784)).astype(np.float32)
    y = rng.integers(0, 10, 50)
    ref = mf.MLP(backend="numpy", dtype=np.float64, seed=0)
    cpp = mf.MLP(backend="cpp", seed=0)
    loss_ref, g_ref = ref.loss_and_grads(X, y)
    loss, g = cpp.loss_and_grads(X, y)
    assert_close(loss, loss_ref, "softmax_xent", "loss")
    for k, (a, b) in enumerate(zip(g, g_ref)):
        assert_close(a, b, "linear", f"grad {k}")
