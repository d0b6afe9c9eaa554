"""bf16 mixed precision: choosing it, the NumPy reference's bf16 mode, the C++ kernels against it,
and a bf16 training run against the fp32 one.

The C++ bf16 GEMM kernels round their operands exactly as the reference does, so where a kernel is
a GEMM (dense layers, im2col convolutions) the float32 tolerances apply; the paths that keep float32
operands (a one-channel direct convolution) or round elsewhere (Winograd rounds the transformed
tiles) differ from the reference by bf16's own rounding: the "bf16" tolerance.
"""

import json

import numpy as np
import pytest
from conftest import f64, uniform

import mnistfast as mf
from mnistfast import _core
from mnistfast.bf16 import round_to_bf16
from mnistfast.layers.conv import Conv2D
from mnistfast.precision import describe, resolve
from mnistfast.testing import assert_close, assert_close_scaled

# generic-bf16 runs everywhere; avx512bf16 where the CPU has it (tested apart in test_gemm_bf16).
BF16_KERNELS = _core.available_bf16_gemm_kernels()


def cpp(kernel, conv="auto"):
    return mf.get_backend("cpp", gemm_kernel=kernel, conv_algorithm=conv)


def ref_bf16():
    ref = mf.get_backend("numpy", dtype=np.float64)
    ref.set_precision("bf16")
    return ref


# -- choosing the precision ----------------------------------------------------------------------
def test_fp32_is_the_default_and_bf16_switches_the_gemm_kernel():
    be = mf.get_backend("cpp")
    assert be.precision == "fp32" and be.gemm_kernel in _core.available_gemm_kernels()
    fp32_kernel = be.gemm_kernel
    if be.bf16_support is None:
        with pytest.raises(ValueError, match="AVX512-BF16"):
            be.set_precision("bf16")
        return
    be.set_precision("bf16")
    assert be.gemm_kernel == be.bf16_kernel == "avx512bf16"
    be.set_precision("fp32")
    assert be.gemm_kernel == fp32_kernel


def test_a_bf16_kernel_named_at_construction_starts_in_bf16():
    be = cpp("generic-bf16")
    assert be.precision == "bf16" and be.bf16_support == "emulated"
    be.set_precision("fp32")
    assert be.gemm_kernel == "generic"
    if "avx512bf16" in BF16_KERNELS:
        assert mf.get_backend("cpp", precision="bf16").gemm_kernel == "avx512bf16"
    else:
        with pytest.raises(ValueError, match="AVX512-BF16"):
            mf.get_backend("cpp", precision="bf16")


@pytest.mark.parametrize("bad", ["fp16", "auto", None])
def test_set_precision_rejects_anything_else(bad):
    with pytest.raises(ValueError, match="precision"):
        mf.get_backend("numpy").set_precision(bad)


def test_resolve_auto_picks_bf16_only_on_hardware():
    assert resolve("auto", mf.get_backend("numpy")) == ("fp32", None)  # emulation is never automatic
    be = mf.get_backend("cpp")
    want = "bf16" if "avx512bf16" in BF16_KERNELS else "fp32"
    assert resolve("auto", be) == (want, None)
    assert resolve("fp32", be) == ("fp32", None)
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve("half", be)


@pytest.fixture
def no_bf16_cpu(monkeypatch):
    """The cpp backend on a CPU without AVX512-BF16, simulated: only the portable kernel is listed."""
    from mnistfast.backends import cpp_backend

    monkeypatch.setattr(cpp_backend._core, "available_bf16_gemm_kernels", lambda: ["generic-bf16"])


def test_bf16_without_the_instructions_runs_fp32_with_a_note(no_bf16_cpu, mnist_small, capsys):
    be = mf.get_backend("cpp")
    assert be.bf16_support is None
    effective, note = resolve("bf16", be)
    assert effective == "fp32" and "AVX512-BF16" in note
    (X, y), _ = mnist_small
    model = mf.MLP(backend=be, seed=0)
    model.fit(X[:256], y[:256], epochs=1, verbose=1, precision="bf16")
    err = capsys.readouterr().err
    assert err.count("mnistfast: note: bf16 is not available") == 1
    assert be.precision == "fp32"
    model.fit(X[:256], y[:256], epochs=1, verbose=0, precision="bf16")
    assert "note" not in capsys.readouterr().err  # verbose=0 is silent


def test_fit_precision_lasts_for_the_fit_only(mnist_small):
    (X, y), _ = mnist_small
    be = cpp("generic")
    seen = []

    class Watch(mf.Callback):
        def on_batch_end(self, step, logs):
            seen.append((be.precision, be.gemm_kernel))

    be._kernel_of["bf16"] = "generic-bf16"  # bf16 emulated by the portable kernel, on any CPU
    model = mf.MLP(backend=be, seed=0)
    model.fit(X[:256], y[:256], epochs=1, verbose=0, precision="bf16", callbacks=[Watch()])
    assert set(seen) == {("bf16", "generic-bf16")}
    assert be.precision == "fp32" and be.gemm_kernel == "generic"
    with pytest.raises(ValueError, match="precision must be one of"):
        model.fit(X[:256], y[:256], epochs=1, verbose=0, precision="bfloat16")


def test_describe_names_the_kernel():
    assert describe(mf.get_backend("numpy"), "fp32") == "fp32"
    assert describe(mf.get_backend("numpy"), "bf16") == "bf16 (emulated)"
    if "avx512bf16" in BF16_KERNELS:
        assert describe(mf.get_backend("cpp"), "bf16") == "bf16 (avx512bf16)"


# -- the reference ------------------------------------------------------------------------------
def test_reference_rounds_every_gemm_operand(rng):
    a, b = uniform(rng, 37, 53), uniform(rng, 53, 29)
    ref = ref_bf16()
    got = ref.gemm(*f64(a, b))
    want = round_to_bf16(a).astype(np.float64) @ round_to_bf16(b).astype(np.float64)
    np.testing.assert_array_equal(got, want)
    plain = a.astype(np.float64) @ b
    assert np.abs(got - plain).max() > 1e-3  # bf16 rounding (2**-9 relative) shows at K = 53
    x, w, bias = uniform(rng, 5, 53), uniform(rng, 53, 29), uniform(rng, 29)
    np.testing.assert_array_equal(ref.linear_forward(*f64(x, w, bias), np.empty((5, 29))),
                                  round_to_bf16(x).astype(np.float64) @ round_to_bf16(w) + bias)


# -- the C++ kernels against the reference -------------------------------------------------------
@pytest.mark.parametrize("kernel", BF16_KERNELS)
@pytest.mark.parametrize("n,k,f", [(1, 1, 1), (13, 70, 5), (128, 784, 128), (33, 129, 64)])
def test_dense_kernels_match_the_bf16_reference(kernel, n, k, f, rng):
    be, ref = cpp(kernel), ref_bf16()
    x, w, b, dy = uniform(rng, n, k), uniform(rng, k, f), uniform(rng, f), uniform(rng, n, f)
    y = be.linear_forward(x, w, b, np.empty((n, f), np.float32), relu=True)
    assert_close(y, ref.linear_forward(*f64(x, w, b), np.empty((n, f)), relu=True), "linear", "forward")
    mask = np.maximum(x, 0)  # the ReLU before this layer
    dx = be.linear_backward_input(dy, w, mask, np.empty((n, k), np.float32))
    assert_close(dx, ref.linear_backward_input(*f64(dy, w, mask), np.empty((n, k))), "linear", "backward input")
    dw, db = np.empty((k, f), np.float32), np.empty(f, np.float32)
    be.linear_weight_grad(x, dy, dw, db)
    rdw, rdb = np.empty((k, f)), np.empty(f)
    ref.linear_weight_grad(*f64(x, dy), rdw, rdb)
    assert_close(dw, rdw, "linear", "weight grad")
    assert_close(db, rdb, "reduction", "bias grad (float32 sums)")


# (N, H, W, C, F, kernel, stride, padding)
CONV_CASES = [
    (3, 7, 9, 3, 5, 3, 1, "same"),
    (2, 9, 7, 7, 3, 3, 2, "valid"),
    (5, 6, 6, 2, 17, 1, 1, "valid"),
    (4, 28, 28, 1, 32, 3, 1, "valid"),  # the basic CNN's first layer: the direct kernel, float32 operands
    (9, 13, 13, 32, 64, 3, 1, "valid"),  # its second: Winograd under "auto", rounding the transformed tiles
]


@pytest.mark.parametrize("kernel", BF16_KERNELS)
@pytest.mark.parametrize("algorithm", ["im2col", "auto"])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_kernels_match_the_bf16_reference(kernel, algorithm, case, rng):
    n, h, w, c, f, k, stride, padding = case
    layer = Conv2D(f, k, stride=stride, padding=padding)
    oh, ow, _ = layer.compute_output_shape((h, w, c))
    geom = (layer.kernel, layer.stride, layer.pad)
    be, ref = cpp(kernel, algorithm), ref_bf16()
    # Paths whose operands are not the reference's bf16 GEMM operands (see the module docstring).
    winograd = algorithm == "auto" and k == 3 and stride == 1 and c >= 16 and f >= 16
    x, b, dy = uniform(rng, n, h, w, c), uniform(rng, f), uniform(rng, n, oh, ow, f)
    wt = (uniform(rng, k * k * c, f) * np.sqrt(6 / (k * k * c))).astype(np.float32)  # He scale, as trained

    def check(got, want, exact_rounding, what):
        if exact_rounding:
            assert_close(got, want, "conv", f"{what} {case}")
        else:
            assert_close_scaled(got, want, "bf16", f"{what} {case}")

    got = be.conv2d_forward(x, wt, b, np.empty((n, oh, ow, f), np.float32), *geom)
    want = ref.conv2d_forward(*f64(x, wt, b), np.empty((n, oh, ow, f)), *geom)
    check(got, want, not (c == 1 or winograd), "forward")
    dw, db, dx = np.empty_like(wt), np.empty(f, np.float32), np.empty_like(x)
    be.conv2d_backward(dy, x, wt, dw, db, dx, *geom)  # with dx, one channel runs as im2col too
    rdw, rdb, rdx = np.empty(wt.shape), np.empty(f), np.empty(x.shape)
    ref.conv2d_backward(*f64(dy, x, wt), rdw, rdb, rdx, *geom)
    check(dw, rdw, not winograd, "weight grad")
    check(dx, rdx, not winograd, "input grad")
    assert_close(db, rdb, "reduction", f"bias grad {case}")


def test_the_bf16_tolerance_separates_rounding_from_mistakes(rng):
    """Under the "bf16" tolerance a float32 GEMM (operands not rounded at all) still matches the
    bf16 reference, and a wrong operand (a weight read in the wrong order) does not."""
    x, w = uniform(rng, 64, 288), uniform(rng, 288, 64)
    want = ref_bf16().gemm(*f64(x, w))
    assert_close_scaled(x.astype(np.float64) @ w, want, "bf16")
    with pytest.raises(AssertionError):
        assert_close_scaled(x.astype(np.float64) @ w.reshape(64, 288).T.reshape(288, 64), want, "bf16")


# -- training ------------------------------------------------------------------------------------
class StepLosses(mf.Callback):
    def __init__(self):
        self.losses = []

    def on_batch_end(self, step, logs):
        self.losses.append(logs["loss"])


@pytest.mark.parametrize("model_name", ["mlp", "cnn"])
def test_bf16_training_follows_the_fp32_loss_curve(model_name, mnist_small):
    """The same run in fp32 and in bf16 (the hardware kernel where the CPU has one, else the
    portable one): the per-step losses stay within the stated band and both runs learn."""
    (X, y), _ = mnist_small
    X, y = (X[:1536], y[:1536]) if model_name == "mlp" else (X[:512].reshape(-1, 1, 28, 28), y[:512])
    bf16_kernel = BF16_KERNELS[-1]
    curves = {}
    for precision in ("fp32", "bf16"):
        be = cpp(mf.get_backend("cpp").gemm_kernel if precision == "fp32" else bf16_kernel)
        model = mf.MLP(backend=be, seed=3) if model_name == "mlp" else mf.CNN("basic", backend=be, seed=3)
        steps = StepLosses()
        model.fit(X, y, epochs=2, batch_size=64, optimizer="adam", verbose=0, callbacks=[steps])
        curves[precision] = np.array(steps.losses)
    fp32, bf16 = curves["fp32"], curves["bf16"]
    assert fp32[-4:].mean() < 0.5 * fp32[:4].mean() and bf16[-4:].mean() < 0.5 * bf16[:4].mean()
    assert_close(bf16, fp32, "bf16_training_loss", f"{model_name} per-step loss")


# -- the command line ----------------------------------------------------------------------------
def _train(small_mnist_dir, tmp_path, precision):
    from mnistfast.cli import main

    out = tmp_path / f"run_{precision}"
    rc = main(["train", "--data", str(small_mnist_dir), "--epochs", "2", "--layers", "784,64,10", "--verbose", "0",
               "--precision", precision, "--out", str(out)])
    assert rc == 0
    return json.loads((out / "history.json").read_text())


@pytest.mark.parametrize("precision", ["fp32", "bf16", "auto"])
def test_train_precision_is_named_in_the_log_and_recorded(precision, small_mnist_dir, tmp_path, capsys):
    history = _train(small_mnist_dir, tmp_path, precision)
    printed = capsys.readouterr()
    runs = "bf16" if precision == "bf16" or (precision == "auto" and "avx512bf16" in BF16_KERNELS) else "fp32"
    if precision == "bf16" and "avx512bf16" not in BF16_KERNELS:
        runs = "fp32"
        assert printed.err.count("mnistfast: note: bf16 is not available") == 1
    else:
        assert "note" not in printed.err
    named = "precision bf16 (avx512bf16)" if runs == "bf16" else "precision fp32"
    assert named in printed.out
    assert history["config"]["precision"] == runs
    assert history["test_accuracy"] > 0.8


def test_train_bf16_without_the_instructions_says_so_once(no_bf16_cpu, small_mnist_dir, tmp_path, capsys):
    history = _train(small_mnist_dir, tmp_path, "bf16")
    printed = capsys.readouterr()
    assert printed.err.count("mnistfast: note: bf16 is not available on this CPU") == 1
    assert "precision fp32" in printed.out and history["config"]["precision"] == "fp32"


# -- the bench's bf16 contenders -----------------------------------------------------------------
def test_bench_runs_pytorch_bf16_autocast_when_installed(mnist_small):
    from mnistfast.bench.cpu import have_torch, mnistfast_fast_cnn_run, torch_fast_cnn_run

    (X, y), (Xt, yt) = mnist_small
    seconds, accuracy = mnistfast_fast_cnn_run(X, y, Xt[:500], yt[:500], 2, precision="bf16")
    assert seconds > 0 and accuracy > 0.5
    if not have_torch():
        pytest.skip("torch is not installed: the bench leaves its PyTorch columns empty")
    seconds, accuracy = torch_fast_cnn_run(X, y, Xt[:500], yt[:500], 2, bf16_autocast=True)
    assert seconds > 0 and accuracy > 0.5
