"""Training on cpp reproduces the numpy reference run; a short run learns; models round-trip."""

import io
import sys

import numpy as np
import pytest

import mnistfast as mf
from mnistfast.testing import assert_close


class StepLosses(mf.Callback):
    def __init__(self):
        self.losses = []

    def on_batch_end(self, step, logs):
        self.losses.append(logs["loss"])


@pytest.mark.parametrize("shuffle", [True, False])
def test_cpp_training_reproduces_numpy(mnist_small, shuffle):
    (X, y), _ = mnist_small
    X, y = X[:1000], y[:1000]  # batch 32 does not divide 1000: the last batch has 8 rows
    runs = {}
    for backend in ("numpy", "cpp"):
        model = mf.MLP(backend=backend, seed=7)
        steps = StepLosses()
        model.fit(X, y, epochs=2, batch_size=32, lr=0.1, shuffle=shuffle, verbose=0, callbacks=[steps])
        runs[backend] = (np.array(steps.losses), model.get_params())
    (loss_np, w_np), (loss_cpp, w_cpp) = runs["numpy"], runs["cpp"]
    assert len(loss_np) == 64
    assert loss_np[-1] < 0.6 * loss_np[0]
    assert_close(loss_cpp, loss_np, "training_loss", "per-step loss")
    for k, (a, b) in enumerate(zip(w_cpp, w_np)):
        assert_close(a, b, "training_weights", f"param {k}")


def test_shuffle_false_takes_batches_in_order(mnist_small):
    (X, y), _ = mnist_small
    a = mf.MLP(backend="numpy", seed=1)
    a.fit(X[:64], y[:64], epochs=1, batch_size=32, shuffle=False, verbose=0)
    b = mf.MLP(backend="numpy", seed=1)
    for lo in (0, 32):
        b.fit(X[lo:lo + 32], y[lo:lo + 32], epochs=1, batch_size=32, shuffle=False, verbose=0)
    for p, q in zip(a.get_params(), b.get_params()):
        np.testing.assert_array_equal(p, q)


def test_short_run_learns(mnist_small):
    (X, y), (Xt, yt) = mnist_small
    model = mf.MLP(backend="cpp", seed=0)
    history = model.fit(X, y, epochs=3, batch_size=64, lr=0.2, validation_data=(Xt, yt), verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    result = model.evaluate(Xt, yt)
    assert result["accuracy"] > 0.88, result  # chance is 0.10
    assert history.history["val_accuracy"][-1] == result["accuracy"]


def test_cosine_schedule_anneals(mnist_small):
    (X, y), _ = mnist_small
    h = mf.MLP(backend="cpp", seed=0).fit(X[:256], y[:256], epochs=4, lr=0.4, lr_schedule="cosine", verbose=0)
    lrs = h.history["lr"]
    assert lrs[0] == 0.4 and all(a > b for a, b in zip(lrs, lrs[1:])) and lrs[-1] > 0


def test_same_seed_same_run(mnist_small):
    (X, y), _ = mnist_small
    params = []
    for _ in range(2):
        model = mf.MLP(backend="cpp", seed=5)
        model.fit(X[:500], y[:500], epochs=1, batch_size=50, verbose=0)
        params.append(model.get_params())
    for p, q in zip(*params):
        np.testing.assert_array_equal(p, q)


def test_save_load_round_trip(tmp_path, mnist_small):
    (X, y), (Xt, _) = mnist_small
    model = mf.MLP([784, 32, 10], backend="cpp", seed=0)
    model.fit(X[:500], y[:500], epochs=1, verbose=0)
    model.save(tmp_path / "m.npz")
    loaded = mf.load_model(tmp_path / "m.npz")
    assert [p.shape for p in loaded.get_params()] == [(784, 32), (32,), (32, 10), (10,)]
    np.testing.assert_array_equal(loaded.predict_proba(Xt), model.predict_proba(Xt))
    np.testing.assert_array_equal(loaded.predict(Xt), model.predict(Xt))
    assert not list(tmp_path.glob("*.tmp"))


def test_predict_proba_is_a_distribution(mnist_small):
    (_, _), (Xt, _) = mnist_small
    p = mf.MLP(backend="cpp", seed=0).predict_proba(Xt[:100])
    assert p.shape == (100, 10) and (p >= 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)


def test_get_set_params(mnist_small):
    a, b = mf.MLP(backend="cpp", seed=0), mf.MLP(backend="numpy", seed=1)
    b.set_params(a.get_params())
    for p, q in zip(a.get_params(), b.get_params()):
        np.testing.assert_array_equal(p, q)
    assert [p.shape for p in a.get_params()] == [(784, 128), (128,), (128, 64), (64,), (64, 10), (10,)]
    assert all(p.dtype == np.float32 for p in a.get_params())


@pytest.mark.parametrize("X_shape,msg", [((10, 783), r"X has shape \(10, 783\), expected \(n_samples, 784\)"),
                                         ((784,), r"X has shape \(784,\)")])
def test_fit_rejects_bad_x_shape(X_shape, msg):
    with pytest.raises(ValueError, match=msg):
        mf.MLP(backend="cpp").fit(np.zeros(X_shape, np.float32), np.zeros(10, np.int64), verbose=0)


def test_fit_rejects_bad_labels():
    model, X = mf.MLP(backend="cpp"), np.zeros((4, 784), np.float32)
    with pytest.raises(ValueError, match=r"y\[2\] = 10 is not a class label in 0..9"):
        model.fit(X, np.array([0, 1, 10, 2]), verbose=0)
    with pytest.raises(ValueError, match=r"y has shape \(3,\), expected \(4,\)"):
        model.fit(X, np.array([0, 1, 2]), verbose=0)
    with pytest.raises(TypeError, match="integer class labels"):
        model.fit(X, np.array([0.5, 1, 2, 3]), verbose=0)


def test_fit_rejects_bad_values():
    model, X, y = mf.MLP(backend="cpp"), np.zeros((4, 784), np.float32), np.zeros(4, np.int64)
    X_nan = X.copy()
    X_nan[1, 3] = np.nan
    with pytest.raises(ValueError, match="X contains NaN or Inf"):
        model.fit(X_nan, y, verbose=0)
    with pytest.raises(TypeError, match="X has dtype <U1"):
        model.fit(np.full((4, 784), "a"), y, verbose=0)
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        model.fit(X, y, lr=-1, verbose=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        model.fit(X, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="lr_schedule must be"):
        model.fit(X, y, lr_schedule="linear", verbose=0)


def test_divergence_is_reported(mnist_small):
    (X, y), _ = mnist_small
    with pytest.raises(FloatingPointError, match="training diverged"):
        mf.MLP(backend="cpp", seed=0).fit(X[:512], y[:512], lr=1e5, epochs=3, verbose=0)


def test_bad_layers_and_backend():
    with pytest.raises(ValueError, match="at least two positive integers"):
        mf.MLP([784])
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        mf.MLP(backend="tpu")
    with pytest.raises(ValueError, match="only float32"):
        mf.MLP(backend="cpp", dtype=np.float64)


def test_load_model_rejects_non_models(tmp_path):
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a mnistfast model file: it is a text file"):
        mf.load_model(bad)
    np.savez(tmp_path / "y.npz", W1=np.zeros(3))
    with pytest.raises(ValueError, match="no 'config' entry"):
        mf.load_model(tmp_path / "y.npz")
    with pytest.raises(FileNotFoundError):
        mf.load_model(tmp_path / "missing.npz")


def test_verbose_progress_prints_epochs(mnist_small, capsys):
    (X, y), _ = mnist_small
    mf.MLP(backend="cpp", seed=0).fit(X[:512], y[:512], epochs=2, batch_size=32, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "8/16" in out  # a progress line in the middle of the epoch
    assert "16/16 -" in out and "loss:" in out and "accuracy:" in out


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_on_a_terminal_is_a_bar_per_epoch_that_leaves_one_line(mnist_small, monkeypatch):
    """A tqdm bar redrawn in place with rate, time left and the running metrics; each epoch then
    leaves only its summary line (issue 23, finding 4: the old bar scrolled ~40 lines an epoch)."""
    from mnistfast import progress

    (X, y), _ = mnist_small
    term = Terminal()
    monkeypatch.setattr(progress.ProgressBar, "REDRAW_S", 0.0)
    monkeypatch.setattr(sys, "stdout", term)
    mf.MLP(backend="cpp", seed=0).fit(X[:512], y[:512], epochs=2, batch_size=32, verbose=1)
    text = term.getvalue()
    drawn = [seg for seg in text.replace("\n", "\r").split("\r") if "step/s" in seg]
    assert all(seg.startswith("Epoch ") and "<" in seg for seg in drawn)  # the time spent < the time left
    assert sum("loss " in seg and " acc " in seg for seg in drawn) >= 10
    lines = [line.split("\r")[-1] for line in text.split("\n") if line.split("\r")[-1].strip()]
    assert len(lines) == 2 and lines[0].startswith("Epoch 1/2 - 16/16 - ") and "accuracy: " in lines[0]


def test_piped_progress_has_rate_and_time_left(mnist_small, capsys):
    (X, y), _ = mnist_small
    mf.MLP(backend="cpp", seed=0).fit(X[:512], y[:512], epochs=1, batch_size=32, verbose=1)
    out = capsys.readouterr().out
    assert "\r" not in out and "steps/s" in out and "s left" in out


def test_an_interrupted_epoch_takes_its_bar_off_the_line(mnist_small, monkeypatch):
    """So that ``mnistfast: interrupted`` starts a line of its own."""
    from mnistfast import progress

    (X, y), _ = mnist_small
    term = Terminal()
    monkeypatch.setattr(progress.ProgressBar, "REDRAW_S", 0.0)
    monkeypatch.setattr(sys, "stdout", term)

    class Interrupt(mf.Callback):
        def on_batch_end(self, step, logs):
            if step == 5:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        mf.MLP(backend="cpp", seed=0).fit(X[:512], y[:512], epochs=1, batch_size=32, verbose=1,
                                          callbacks=[Interrupt()])
    text = term.getvalue()
    assert "step/s" in text and text.endswith("\r") and not text.split("\r")[-2].strip()


def test_thread_count_belongs_to_the_backend(tmp_path):
    import os
    import subprocess
    import sys

    assert mf.get_backend("cpp", threads=1).threads == 1
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        mf.get_backend("cpp", threads=0)
    code = "import mnistfast as mf; print(mf.get_backend('cpp').threads)"
    env = dict(os.environ, MNISTFAST_NUM_THREADS="3")
    # From tmp_path: the repository root must not shadow the installed package.
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert r.stdout.strip() == "3", r.stderr
    env["MNISTFAST_NUM_THREADS"] = "many"
    r = subprocess.run([sys.executable, "-c", "import mnistfast"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr  # importing never fails on the variable
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode != 0 and "MNISTFAST_NUM_THREADS='many' is not a positive integer" in r.stderr


def test_backends_with_different_settings_coexist(rng):
    a, b = rng.uniform(-1, 1, (64, 96)).astype(np.float32), rng.uniform(-1, 1, (96, 80)).astype(np.float32)
    fast, oracle = mf.get_backend("cpp", threads=2), mf.get_backend("cpp", threads=1, gemm_kernel="naive")
    assert oracle.gemm_kernel == "naive" and fast.gemm_kernel != "naive"
    x, y = fast.gemm(a, b), oracle.gemm(a, b)
    assert_close(x, y, "gemm")
    assert fast.gemm_kernel != "naive"  # the other object's setting did not leak


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_training_is_bitwise_reproducible_for_any_thread_count(mnist_small, model):
    (X, y), _ = mnist_small
    runs = []
    for threads in (2, 2, 1):
        be = mf.get_backend("cpp", threads=threads)
        m = mf.MLP(backend=be, seed=2) if model == "mlp" else mf.CNN("basic", backend=be, seed=2)
        m.fit(X[:1000], y[:1000], epochs=1, batch_size=128, optimizer=mf.optim.Adam(), verbose=0)
        runs.append(m.get_params())
    for p, q, r in zip(*runs):
        np.testing.assert_array_equal(p, q)
        np.testing.assert_array_equal(p, r)  # every kernel's summation order is thread-independent


@pytest.mark.parametrize("backend", ["numpy", "cpp"])
def test_folded_plain_sgd_matches_the_separate_update(mnist_small, backend):
    """Plain SGD on an MLP is applied inside the weight-gradient GEMMs (W += -lr x^T dy); the
    same optimizer with clipping switched on (a bound never reached) takes the separate path."""
    (X, y), _ = mnist_small
    X, y = X[:600], y[:600]
    folded, separate = mf.optim.SGD(0.1), mf.optim.SGD(0.1, clipvalue=1e30)
    assert folded.plain_sgd and not separate.plain_sgd
    assert not mf.optim.SGD(0.1, momentum=0.9).plain_sgd and not mf.optim.Adam().plain_sgd
    runs = []
    for opt in (folded, separate):
        model = mf.MLP(backend=backend, seed=3)
        steps = StepLosses()
        model.fit(X, y, epochs=2, batch_size=32, optimizer=opt, lr_schedule="cosine", verbose=0, callbacks=[steps])
        runs.append((np.array(steps.losses), model.get_params()))
        assert opt.iterations == 2 * 19  # a folded step is still a step (the schedule counts them)
        assert model.plan.folds_sgd(opt) == (opt is folded)
    assert_close(runs[0][0], runs[1][0], "training_loss", "per-step loss")
    for k, (a, b) in enumerate(zip(runs[0][1], runs[1][1])):
        assert_close(a, b, "training_weights", f"param {k}")
    assert not np.array_equal(runs[0][1][0], mf.MLP(backend=backend, seed=3).get_params()[0])  # it trained


@pytest.mark.parametrize("backend", ["numpy", "cpp"])
@pytest.mark.parametrize("shuffle", [True, False])
def test_fit_reads_the_training_arrays_in_place_and_leaves_them_alone(mnist_small, backend, shuffle):
    """Host backends train on the caller's X and y without copying them (to_device(copy=False));
    nothing writes to them, batch views included."""
    (X, y), _ = mnist_small
    X, y = X[:300].reshape(-1, 1, 28, 28).copy(), y[:300].astype(np.int64)
    X0, y0 = X.copy(), y.copy()
    model = mf.Sequential([mf.Conv2D(4, 3, activation="relu"), mf.MaxPool2D(2), mf.Flatten(), mf.Dropout(0.2),
                           mf.Dense(10)], input_shape=(1, 28, 28), backend=backend)
    model.fit(X, y, epochs=1, batch_size=64, shuffle=shuffle, verbose=0, optimizer=mf.optim.Adam(1e-3))
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
    be = model.backend
    assert np.shares_memory(be.to_device(X, copy=False), X) and not np.shares_memory(be.to_device(X), X)
    X64 = X.astype(np.float64)
    converted = be.to_device(X64, copy=False)  # another dtype: a converted copy
    assert converted.dtype == np.float32 and not np.shares_memory(converted, X64)
