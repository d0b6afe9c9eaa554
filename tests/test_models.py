"""Sequential models: the CNN on cpp reproduces the numpy reference run, no model code touches
backend arrays, layouts match PyTorch, and the model API (summary, save/load, params) holds."""

import numpy as np
import pytest
from opaque_backend import OpaqueBackend

import mnistfast as mf
from mnistfast.testing import assert_close


class StepLosses(mf.Callback):
    def __init__(self):
        self.losses = []

    def on_batch_end(self, step, logs):
        self.losses.append(logs["loss"])


def cnn_with_dropout(backend, seed=0):
    layers = mf.presets.basic_cnn_layers()
    layers.insert(6, mf.Dropout(0.25))  # after Dense(128, relu)
    return mf.Sequential(layers, input_shape=(1, 28, 28), backend=backend, seed=seed)


def test_cpp_cnn_training_reproduces_numpy(mnist_small):
    (X, y), _ = mnist_small
    X, y = X[:760], y[:760]  # 24 Adam steps of 32; the last batch has 24 rows
    runs = {}
    for backend in ("numpy", "cpp"):
        model = cnn_with_dropout(backend, seed=11)
        steps = StepLosses()
        model.fit(X, y, epochs=1, batch_size=32, optimizer=mf.optim.Adam(lr=2e-3), verbose=0, callbacks=[steps])
        runs[backend] = (np.array(steps.losses), model.get_params())
    (loss_np, w_np), (loss_cpp, w_cpp) = runs["numpy"], runs["cpp"]
    assert len(loss_np) == 24
    assert loss_np[-4:].mean() < 0.6 * loss_np[:4].mean()  # it learns
    assert_close(loss_cpp, loss_np, "cnn_training_loss", "per-step loss")
    for k, (a, b) in enumerate(zip(w_cpp, w_np)):
        assert_close(a, b, "cnn_training_weights", f"param {k}")


def test_no_model_code_touches_backend_arrays(mnist_small):
    (X, y), (Xt, yt) = mnist_small
    be = OpaqueBackend()
    layers = [mf.Conv2D(4, 3, padding="same", use_bias=False), mf.BatchNorm(), mf.ReLU(), mf.MaxPool2D(2),
              mf.Conv2D(6, 3, activation="relu"), mf.MaxPool2D(2), mf.Flatten(), mf.Dense(16, activation="relu"),
              mf.Dropout(0.2), mf.Dense(10), mf.Tanh(), mf.Reshape((1, 2, 5)), mf.Flatten(), mf.Dense(10)]
    model = mf.Sequential(layers, input_shape=(1, 28, 28), backend=be, seed=0)
    for opt in (mf.optim.SGD(lr=0.05, momentum=0.9, nesterov=True, clipnorm=1.0), mf.optim.AdamW(clipvalue=5.0)):
        model.fit(X[:300], y[:300], epochs=1, batch_size=64, optimizer=opt, validation_data=(Xt[:50], yt[:50]),
                  verbose=0)
    model.fit(X[:64], y[:64], epochs=1, batch_size=32, shuffle=False, verbose=0)
    assert model.predict(Xt[:20]).shape == (20,)
    assert model.predict_proba(Xt[:20]).shape == (20, 10)
    assert 0 <= model.evaluate(Xt[:50], yt[:50])["accuracy"] <= 1
    model.loss_and_grads(X[:8], y[:8])
    assert len(model.get_params()) == 13 and be.calls > 400  # every kernel call went through the wrapper


def test_layouts_match_pytorch(mnist_small):
    torch = pytest.importorskip("torch", reason="the PyTorch cross-check needs torch (pip install torch)")
    from torch import nn

    (X, _), _ = mnist_small
    model = mf.CNN("basic", backend="cpp", seed=4)
    net = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Linear(128, 64),
                        nn.ReLU(), nn.Linear(64, 10))
    params = model.get_params()
    with torch.no_grad():
        for module, (w, b) in zip([m for m in net if hasattr(m, "weight")], zip(params[::2], params[1::2])):
            module.weight.copy_(torch.from_numpy(w if w.ndim == 4 else w.T.copy()))  # Linear stores (out, in)
            module.bias.copy_(torch.from_numpy(b))
        want = net(torch.from_numpy(X[:64].reshape(-1, 1, 28, 28))).numpy()
    proba = model.predict_proba(X[:64])
    e = np.exp(want - want.max(axis=1, keepdims=True))
    assert_close(proba, e / e.sum(axis=1, keepdims=True), "conv")


def test_fused_relu_masks_change_nothing(rng):
    """Dense(relu) -> Dense fuses the ReLU derivative into the next layer's GEMM; the unfused
    stack with a separate ReLU layer must give the same gradients."""
    X, y = rng.uniform(0, 1, size=(16, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, 16)
    fused = mf.Sequential([mf.Conv2D(3, 3, activation="relu"), mf.MaxPool2D(2), mf.Flatten(),
                           mf.Dense(12, activation="relu"), mf.Dense(10)], input_shape=(1, 8, 8), seed=1)
    plain = mf.Sequential([mf.Conv2D(3, 3), mf.ReLU(), mf.MaxPool2D(2), mf.Flatten(), mf.Dense(12), mf.ReLU(),
                           mf.Dense(10)], input_shape=(1, 8, 8), seed=1)
    plan = fused.plan.layers
    assert plan[0].pool == 2 and plan[1].skip  # the conv's ReLU is inside its pooled kernels
    assert plan[4].mask_input_grad and plan[3].output_grad_masked
    _, g1 = fused.loss_and_grads(X, y)
    _, g2 = plain.loss_and_grads(X, y)
    for a, b in zip(g1, g2):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", ["numpy", "cpp"])
def test_flatten_before_dense_folds_its_transpose_into_the_weights(rng, backend):
    """Flatten -> Dense passes channels-last data on and the Dense keeps its rows in that order;
    at the API nothing changes: the same parameters give the same outputs and gradients as an
    unfolded stack (a ReLU after the pooled ReLU outputs changes no value, only the layout path)."""
    X, y = rng.uniform(0, 1, size=(16, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, 16)
    head = [mf.Conv2D(3, 3, activation="relu"), mf.MaxPool2D(2), mf.Flatten()]
    folded = mf.Sequential([*head, mf.Dense(10)], input_shape=(1, 8, 8), seed=1, backend=backend)
    plain = mf.Sequential([mf.Conv2D(3, 3, activation="relu"), mf.MaxPool2D(2), mf.Flatten(), mf.ReLU(),
                           mf.Dense(10)], input_shape=(1, 8, 8), seed=1, backend=backend)
    assert folded.plan.layers[2].pass_through and not plain.plan.layers[2].pass_through
    params = folded.get_params()
    np.testing.assert_array_equal(params[2], plain.get_params()[2])  # the same seed, the same API weights
    plain.set_params(params)
    assert_close(folded.predict_proba(X), plain.predict_proba(X), "conv")
    (l1, g1), (l2, g2) = folded.loss_and_grads(X, y), plain.loss_and_grads(X, y)
    assert l1 == pytest.approx(l2, rel=1e-6)
    for a, b in zip(g1, g2):
        assert_close(a, b, "conv")
    folded.set_params(params)
    for a, b in zip(folded.get_params(), params):
        np.testing.assert_array_equal(a, b)


def test_cnn_learns_and_round_trips(mnist_small, tmp_path):
    (X, y), (Xt, yt) = mnist_small
    model = mf.Sequential([mf.Conv2D(8, 3, use_bias=False), mf.BatchNorm(), mf.ReLU(), mf.MaxPool2D(2),
                           mf.Flatten(), mf.Dropout(0.1), mf.Dense(10)], input_shape=(1, 28, 28), seed=0)
    history = model.fit(X[:3000], y[:3000], epochs=2, batch_size=64, optimizer=mf.optim.Adam(lr=3e-3),
                        lr_schedule="cosine", verbose=0)
    assert history.history["lr"] == [3e-3, pytest.approx(1.5e-3)]
    acc = model.evaluate(Xt, yt)["accuracy"]
    assert acc > 0.8, acc  # chance is 0.1; this seeded 2-epoch run reaches 0.859
    model.save(tmp_path / "cnn.npz")
    loaded = mf.load_model(tmp_path / "cnn.npz")
    for p, q in zip(model.get_params(), loaded.get_params()):
        np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(loaded.predict_proba(Xt[:100]), model.predict_proba(Xt[:100]))
    _, _, running_mean, running_var = model.get_params()[1:5]
    assert (running_var != 1).all() and (running_mean != 0).all()  # BatchNorm's statistics were saved
    # Inputs as (N, 784) and (N, 1, 28, 28) are the same images.
    np.testing.assert_array_equal(model.predict(Xt[:50]), model.predict(Xt[:50].reshape(-1, 1, 28, 28)))


def test_summary_and_param_layout():
    model = mf.CNN("basic", backend="numpy")
    text = model.summary(print_fn=None)
    assert "(None, 32, 26, 26)" in text and "(None, 1600)" in text and "Total params: 232,650" in text
    shapes = [p.shape for p in model.get_params()]
    assert shapes == [(32, 1, 3, 3), (32,), (64, 32, 3, 3), (64,), (1600, 128), (128,), (128, 64), (64,),
                      (64, 10), (10,)]
    assert model.param_names()[:2] == ["layer0.W", "layer0.b"]


def test_set_params_checks_everything_first():
    model = mf.CNN("basic", backend="cpp")
    before = model.get_params()
    bad = [p.copy() for p in before]
    bad[0] = bad[0] + 1
    bad[2] = bad[2].reshape(-1)
    with pytest.raises(ValueError, match=r"layer2.W has shape \(18432,\), expected \(64, 32, 3, 3\)"):
        model.set_params(bad)
    np.testing.assert_array_equal(model.get_params()[0], before[0])  # nothing was written
    bad = [p.copy() for p in before]
    bad[1] = np.full(bad[1].shape, 1e300)
    with pytest.raises(ValueError, match="beyond the float32 range"):
        model.set_params(bad)


def test_model_building_errors():
    with pytest.raises(ValueError, match=r"layer 0 \(Dense\): Dense needs a flat input.*Flatten"):
        mf.Sequential([mf.Dense(10)], input_shape=(1, 28, 28))
    with pytest.raises(ValueError, match="the last layer must output class scores"):
        mf.Sequential([mf.Conv2D(4, 3)], input_shape=(1, 28, 28))
    with pytest.raises(ValueError, match="a 5x5 kernel does not fit a 4x4 input"):
        mf.Sequential([mf.Conv2D(4, 5), mf.Flatten(), mf.Dense(2)], input_shape=(1, 4, 4))
    with pytest.raises(TypeError, match="non-empty list of layers"):
        mf.Sequential([])
    with pytest.raises(ValueError, match="padding must be 'valid' or 'same'"):
        mf.Conv2D(4, 3, padding="full")
    with pytest.raises(ValueError, match=r"expected \(n_samples, 1, 28, 28\) or \(n_samples, 784\)"):
        mf.CNN("basic").predict(np.zeros((2, 100), np.float32))
    with pytest.raises(ValueError, match="pass lr to the optimizer"):
        mf.MLP().fit(np.zeros((4, 784), np.float32), np.zeros(4), lr=0.1, optimizer=mf.optim.SGD(), verbose=0)


def test_optimizer_state_carries_over_fit_calls(mnist_small):
    (X, y), _ = mnist_small
    a, b = mf.MLP([784, 16, 10], seed=0), mf.MLP([784, 16, 10], seed=0)
    opt_a, opt_b = mf.optim.Adam(lr=1e-3), mf.optim.Adam(lr=1e-3)
    a.fit(X[:256], y[:256], epochs=2, batch_size=64, optimizer=opt_a, shuffle=False, verbose=0)
    for _ in range(2):
        b.fit(X[:256], y[:256], epochs=1, batch_size=64, optimizer=opt_b, shuffle=False, verbose=0)
    assert opt_a.iterations == opt_b.iterations == 8
    for p, q in zip(a.get_params(), b.get_params()):
        np.testing.assert_array_equal(p, q)


def test_clipnorm_bounds_the_update(rng):
    """SGD with clipnorm moves the parameters by at most lr * clipnorm in L2."""
    model = mf.MLP([20, 10], backend="numpy", seed=0)
    X, y = rng.normal(size=(32, 20)).astype(np.float32) * 100, rng.integers(0, 10, 32)
    before = np.concatenate([p.ravel() for p in model.get_params()])
    model.fit(X, y, epochs=1, batch_size=32, optimizer=mf.optim.SGD(lr=1.0, clipnorm=0.5), verbose=0)
    after = np.concatenate([p.ravel() for p in model.get_params()])
    assert np.linalg.norm(after - before) == pytest.approx(0.5, rel=1e-4)


def test_keras_names_are_taken(mnist):
    """Keras's ``strides=``, ``pool_size=`` and optimizer names do what they say there (issue 23,
    finding 6); ``trainable = False`` is refused, not ignored."""
    (X, y), _ = mnist
    X, y = X[:256].reshape(-1, 1, 28, 28), y[:256]

    def net(conv, pool):
        return mf.Sequential([conv, pool, mf.Flatten(), mf.Dense(10)], input_shape=(1, 28, 28), seed=4)

    keras = net(mf.Conv2D(4, 3, strides=2, padding="same"), mf.MaxPool2D(pool_size=(2, 2), strides=2))
    ours = net(mf.Conv2D(4, 3, stride=2, padding="same"), mf.MaxPool2D(2))
    assert keras.get_config() == ours.get_config()
    keras.fit(X, y, optimizer="adam", verbose=0)
    ours.fit(X, y, optimizer=mf.optim.Adam(lr=1e-3), verbose=0)
    for a, b in zip(keras.get_params(), ours.get_params()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        ours.fit(X, y, optimizer="rmsprop", verbose=0)
    with pytest.raises(ValueError, match="strides=1 differs from the pool 2"):
        mf.MaxPool2D(pool_size=2, strides=1)
    with pytest.raises(ValueError, match="stride=3 and strides=2 disagree"):
        mf.Conv2D(4, 3, stride=3, strides=2)
    with pytest.raises(ValueError, match="trainable=False is not supported"):
        ours.layers[0].trainable = False
    assert ours.layers[0].trainable is True
