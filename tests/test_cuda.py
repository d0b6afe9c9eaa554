"""The cuda backend as a whole: training reproduces the numpy reference step by step with opaque
arrays, device inputs are used in place, and a missing GPU gives a clear error.

Its kernels are covered with every other backend's by the parametrized kernel suite. Without a
GPU all of this runs in Numba's CUDA simulator (conftest switches it on) on small models: images
are MNIST digits subsampled to 10 x 10 or 7 x 7 so that a step takes a fraction of a second.
"""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import CUDA_SIMULATED, needs_cuda
from opaque_backend import OpaqueBackend

import mnistfast as mf
from mnistfast.testing import assert_close


class StepLosses(mf.Callback):
    def __init__(self):
        self.losses = []

    def on_batch_end(self, step, logs):
        self.losses.append(logs["loss"])


@pytest.fixture(scope="module")
def small_digits(mnist):
    """(X 7x7 flat, X 10x10 images, y): real digits, subsampled."""
    (X, y), _ = mnist
    img = X[:400].reshape(-1, 28, 28)
    return img[:, ::4, ::4].reshape(-1, 49).copy(), img[:, 4:24:2, 4:24:2][:, None].copy(), y[:400]


def run(model_fn, backend, X, y, **fit):
    model = model_fn(backend)
    steps = StepLosses()
    model.fit(X, y, verbose=0, callbacks=[steps], **fit)
    return np.array(steps.losses), model


def mlp(backend):
    return mf.Sequential([mf.Dense(24, activation="relu"), mf.Dense(16), mf.ReLU(), mf.Dense(10)],
                         input_shape=(49,), backend=backend, seed=3)


def cnn(backend):
    layers = [mf.Conv2D(4, 3, activation="relu"), mf.MaxPool2D(2), mf.Conv2D(6, 3, padding="same", use_bias=False),
              mf.BatchNorm(), mf.ReLU(), mf.Flatten(), mf.Dropout(0.25), mf.Dense(10)]
    return mf.Sequential(layers, input_shape=(1, 10, 10), backend=backend, seed=5)


@needs_cuda
def test_cuda_mlp_training_reproduces_numpy(small_digits):
    X, _, y = small_digits
    X, y = X[:300], y[:300]  # batch 32: 10 steps an epoch, the last with 12 rows
    fit = dict(epochs=2, batch_size=32, lr=0.2)
    loss_np, m_np = run(mlp, "numpy", X, y, **fit)
    cuda = OpaqueBackend(mf.get_backend("cuda"))  # model code that touched a device array would fail
    loss_cu, m_cu = run(mlp, cuda, X, y, **fit)
    assert len(loss_np) == 20 and loss_np[-3:].mean() < 0.85 * loss_np[:3].mean()
    assert_close(loss_cu, loss_np, "training_loss", "per-step loss")
    for k, (a, b) in enumerate(zip(m_cu.get_params(), m_np.get_params())):
        assert_close(a, b, "training_weights", f"param {k}")
    assert cuda.calls > 200


@needs_cuda
def test_cuda_cnn_training_reproduces_numpy(small_digits):
    """Conv, pooling, batch norm, dropout and Adam, with the same dropout masks on both."""
    _, X, y = small_digits
    X, y = X[:120], y[:120]  # 6 Adam steps of 20
    runs = {}
    for name in ("numpy", "cuda"):
        be = OpaqueBackend(mf.get_backend("cuda")) if name == "cuda" else name
        runs[name] = run(cnn, be, X, y, epochs=1, batch_size=20, optimizer=mf.optim.Adam(lr=3e-3))
    (loss_np, m_np), (loss_cu, m_cu) = runs["numpy"], runs["cuda"]
    assert len(loss_np) == 6 and loss_np[-2:].mean() < loss_np[:2].mean()
    assert_close(loss_cu, loss_np, "cnn_training_loss", "per-step loss")
    for k, (a, b) in enumerate(zip(m_cu.get_params(), m_np.get_params())):
        assert_close(a, b, "cnn_training_weights", f"param {k}")
    # Inference (running batch-norm statistics) agrees too.
    assert_close(m_cu.predict_proba(X[:40]), m_np.predict_proba(X[:40]), "conv")


@needs_cuda
def test_fit_on_device_arrays_matches_fit_on_host_arrays(small_digits):
    """A GPU array given to fit is trained on in place (images NCHW, transposed on the device), with
    the same steps as the host copy of it; labels may live on the device too."""
    from numba import cuda

    _, X, y = small_digits
    X, y = X[:48], y[:48]
    fit = dict(epochs=1, batch_size=16, lr=0.05, validation_split=0.25)
    host = cnn("cuda")
    h_host = host.fit(X, y, verbose=0, **fit)
    dev = cnn("cuda")
    h_dev = dev.fit(cuda.to_device(X), cuda.to_device(y), verbose=0, **fit)
    assert h_dev.history["loss"] == h_host.history["loss"]
    assert h_dev.history["val_accuracy"] == h_host.history["val_accuracy"]
    bad = y.copy()
    bad[3] = 10
    with pytest.raises(ValueError, match=r"y\[3\] = 10 is not a class label"):
        dev.fit(cuda.to_device(X), cuda.to_device(bad), verbose=0)


@needs_cuda
def test_device_inputs_are_used_in_place(small_digits):
    from numba import cuda

    _, X, y = small_digits
    model = cnn("cuda")
    X_dev = cuda.to_device(X[:12])  # NCHW on the device, as a CuPy or PyTorch array would be
    np.testing.assert_array_equal(model.predict(X_dev), model.predict(X[:12]))
    assert_close(model.predict_proba(X_dev), model.predict_proba(X[:12]), "elementwise")
    flat = cuda.to_device(X[:12].reshape(12, -1))
    assert model.evaluate(flat, y[:12]) == pytest.approx(model.evaluate(X[:12], y[:12]))
    with pytest.raises(TypeError, match="dtype float64"):
        model.predict(cuda.to_device(X[:4].astype(np.float64)))
    with pytest.raises(ValueError, match="shape"):
        model.predict(cuda.to_device(np.ascontiguousarray(X[:4, :, :5])))
    bad = X[:4].copy()
    bad[1, 0, 2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.predict(cuda.to_device(bad))
    with pytest.raises(TypeError, match="GPU array"):
        cnn("numpy").predict(X_dev)


@needs_cuda
def test_cuda_kernels_check_their_arguments():
    be = mf.get_backend("cuda")
    x = be.to_device(np.ones((4, 3), np.float32))
    with pytest.raises(TypeError, match="cuda device array"):
        be.bias_grad(np.ones((4, 3), np.float32), be.empty((3,)))
    with pytest.raises(ValueError, match=r"out has shape \(4,\), expected \(3,\)"):
        be.bias_grad(x, be.empty((4,)))
    with pytest.raises(TypeError, match="dtype float32"):
        be.relu_backward(x, be.to_device(np.ones((4, 3)), dtype=np.float64), be.empty((4, 3)))
    with pytest.raises(ValueError, match="inner dimensions"):
        be.gemm(x, x)
    with pytest.raises(ValueError, match="pool 5"):
        be.maxpool_forward(be.empty((1, 4, 4, 1)), be.empty((1, 0, 0, 1)), be.empty((1, 0, 0, 1), np.int32), 5)
    with pytest.raises(ValueError, match="rate"):
        be.dropout(x, be.empty((4, 3)), 1.0, 0, 0)
    with pytest.raises(TypeError, match="already a device array"):
        be.to_device(x)
    with pytest.raises(ValueError, match="copy_from_host"):
        be.copy_from_host(x, np.ones(3))


@pytest.mark.skipif(not CUDA_SIMULATED, reason="on a GPU, bench/gpu_check.sh runs the real thing")
def test_the_gpu_check_runs_under_the_simulator(tmp_path):
    """Every section of `mnistfast bench --backend cuda --quick` runs, on tiny stand-ins, and the
    report on disk holds them all (the timings mean nothing here)."""
    from mnistfast.bench import cuda as bench_cuda
    lines = []
    report = bench_cuda.run(quick=True, log=lines.append, out=tmp_path / "gpu.json")
    assert json.loads((tmp_path / "gpu.json").read_text()) == json.loads(json.dumps(report))
    assert report["machine"]["simulator"] and len(report["gemm"]) == 1 and report["step_gemms"]
    assert [row["config"].split(" batch")[0] for row in report["train"]] == ["MLP stand-in SGD", "CNN stand-in Adam"]
    assert report["step_kernels"] and all(k["us"] >= 0 for k in report["step_kernels"])
    assert report["launches_per_step"]["basic CNN"] == len(report["step_kernels"])
    assert report["host_overhead_s_per_step"] > 0
    assert any("launches" in line for line in lines)


@needs_cuda
def test_time_to_accuracy_runs_the_recipe_in_one_fit(monkeypatch):
    """The recipe's schedule runs whole (one fit, its own optimizer and schedule), and training
    stops after the first epoch at the target."""
    from mnistfast.bench import cuda as bench_cuda

    fits, epochs_run = [], []
    real_fit = mf.Sequential.fit

    def fit(self, X, y, **kwargs):
        fits.append(kwargs)
        history = real_fit(self, X, y, **kwargs)
        epochs_run.append(len(history.history["time"]))
        return history

    monkeypatch.setattr(mf.Sequential, "fit", fit)
    recipe = mf.presets.RECIPES["cnn-fast"]
    monkeypatch.setitem(mf.presets.RECIPES, "cnn-fast", dataclasses.replace(recipe, epochs=3, batch_size=8))
    monkeypatch.setitem(mf.presets.CNN_ARCHITECTURES, "fast",
                        lambda n_classes=10: [mf.Conv2D(2, 5), mf.MaxPool2D(4), mf.Flatten(), mf.Dense(n_classes)])
    rng = np.random.default_rng(0)
    X, y = rng.random((8, 784), dtype=np.float32), rng.integers(0, 10, 8)
    spent, acc = bench_cuda.time_to_accuracy(mf.get_backend("cuda"), X, y, X, y, target=0.0)
    assert len(fits) == 1 and type(fits[0]["lr_schedule"]).__name__ == "OneCycle", fits
    assert epochs_run == [1]  # the target (0 %) was met after the first of the recipe's 3 epochs
    assert spent is not None and spent > 0 and 0.0 <= acc <= 1.0


def test_kernels_compile_for_a_real_gpu():
    """Every kernel through Numba's CUDA target to sm_90 PTX (the simulator checks no types), with
    the SGEMM's accumulators in registers (no local memory) and no double precision in it."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    script = os.path.join(os.path.dirname(__file__), "compile_ptx.py")
    done = subprocess.run([sys.executable, script], env=env, capture_output=True, text=True)
    if done.returncode == 3:
        pytest.skip(done.stdout.strip())
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "compiled 31 kernels" in done.stdout, done.stdout
    sgemms = [line for line in done.stdout.splitlines() if line.startswith("gemm.sgemm")]
    assert len(sgemms) == 5, sgemms  # two tile shapes, whole-K and split-K each, and the split's finish
    assert all("f64 0 local 0" in line for line in sgemms), sgemms
    # The 16-deep slice is written out: every multiply-add of a slice is its own FFMA. A split-K
    # kernel has no other FMA (its epilogue is the finish kernel's), so the count is exact.
    from mnistfast.backends.cuda.launch import GPU

    fma = {line.split(":")[0]: int(line.rsplit("fma ", 1)[1]) for line in sgemms}
    for bm, bn, bk, tm, tn in GPU.gemm_tiles:
        assert fma[f"gemm.sgemm_split_k_{bm}x{bn}"] == bk * tm * tn, fma
        assert fma[f"gemm.sgemm_{bm}x{bn}"] >= bk * tm * tn, fma


def test_import_does_not_need_numba():
    # The cpp backend where it is built (the GPU check runs from a source tree without it).
    code = ("import sys, mnistfast\ntry:\n    mnistfast.get_backend('cpp')\nexcept ImportError:\n"
            "    mnistfast.get_backend('numpy')\nassert 'numba' not in sys.modules, 'numba imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.skipif(not CUDA_SIMULATED, reason="checks the error where no GPU is present; this machine has one")
def test_missing_gpu_is_a_clear_error():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    code = "import mnistfast as mf\ntry:\n    mf.get_backend('cuda')\nexcept RuntimeError as e:\n    print(e)\n"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "cuda backend unavailable" in out and ("GPU" in out or "numba-cuda" in out), out


@pytest.mark.skipif(not CUDA_SIMULATED, reason="checks the Numba CUDA simulator, which is off")
def test_simulator_threads_of_a_block_share_one_shared_array(monkeypatch):
    """Threads that reach cuda.shared.array together get one array, however their switches fall.

    A slow allocation widens the window in which the simulator's own lookup (check, then set)
    hands some threads private arrays; mnistfast's kernels would then read garbage."""
    import threading
    import time

    from numba.cuda.simulator.kernelapi import FakeCUDAShared

    import mnistfast.backends.cuda.launch  # noqa: F401  (installs the locked lookup)

    allocate = np.empty
    monkeypatch.setattr(np, "empty", lambda *a, **k: (time.sleep(1e-3), allocate(*a, **k))[1])
    shared, start, got = FakeCUDAShared(0), threading.Barrier(8), []

    def thread():
        start.wait()
        got.append(shared.array((4,), np.float32))

    threads = [threading.Thread(target=thread) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8 and len({id(a) for a in got}) == 1
