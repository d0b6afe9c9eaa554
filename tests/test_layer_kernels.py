"""The layer and optimizer kernels of every backend against the float64 NumPy reference.

Shapes sweep the edges: batch 1 and odd batches, channels 1, 3, 7 and 32, spatial sizes that are
not multiples of anything, stride 2, valid and same padding, and batches large enough that the
C++ kernels split the work into several chunks and threads.
"""

import numpy as np
import pytest
from conftest import f64, uniform

from mnistfast.backends.numpy_backend import dropout_keep_mask
from mnistfast.layers.conv import Conv2D
from mnistfast.testing import assert_close

# (N, H, W, C, F, kernel, stride, padding)
CONV_CASES = [
    (1, 5, 5, 1, 1, 3, 1, "valid"),
    (3, 7, 9, 3, 5, 3, 1, "same"),
    (2, 8, 8, 7, 4, 3, 2, "same"),
    (2, 9, 7, 7, 3, 3, 2, "valid"),
    (5, 6, 6, 2, 17, 1, 1, "valid"),  # 1x1: the pointwise path
    (3, 11, 10, 4, 6, 5, 2, "same"),
    (4, 28, 28, 1, 32, 3, 1, "valid"),  # the basic CNN's first layer
    (33, 13, 13, 32, 64, 3, 1, "valid"),  # its second layer; 33 images span several chunks
]


def conv_geometry(h, w, c, f, k, stride, padding):
    layer = Conv2D(f, k, stride=stride, padding=padding)
    oh, ow, _ = layer.compute_output_shape((h, w, c))
    return (oh, ow), (layer.kernel, layer.stride, layer.pad)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_forward(backend, ref, rng, case, relu):
    n, h, w, c, f, k, stride, padding = case
    (oh, ow), geom = conv_geometry(h, w, c, f, k, stride, padding)
    x, wt, b = uniform(rng, n, h, w, c), uniform(rng, k * k * c, f), uniform(rng, f)
    got = backend.conv2d_forward(x, wt, b, np.empty((n, oh, ow, f), np.float32), *geom, relu=relu)
    want = ref.conv2d_forward(*f64(x, wt, b), np.empty((n, oh, ow, f)), *geom, relu=relu)
    assert_close(got, want, "conv", str(case))
    no_bias = backend.conv2d_forward(x, wt, None, np.empty((n, oh, ow, f), np.float32), *geom)
    assert_close(no_bias, ref.conv2d_forward(*f64(x, wt), None, np.empty((n, oh, ow, f)), *geom), "conv")


def test_conv2d_forward_matches_a_direct_sum(ref, rng):
    """The reference's im2col against the definition, one output pixel at a time."""
    x, wt = rng.normal(size=(1, 5, 6, 2)), rng.normal(size=(3 * 3 * 2, 4))
    out = ref.conv2d_forward(x, wt, None, np.empty((1, 3, 3, 4)), (3, 3), (2, 2), (1, 1))
    w4 = wt.reshape(3, 3, 2, 4)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    for oy in range(3):
        for ox in range(3):
            want = np.einsum("yxc,yxcf->f", xp[0, 2 * oy : 2 * oy + 3, 2 * ox : 2 * ox + 3], w4)
            np.testing.assert_allclose(out[0, oy, ox], want, rtol=1e-12)


@pytest.mark.parametrize("with_dx", [True, False])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_backward(backend, ref, rng, case, with_dx):
    n, h, w, c, f, k, stride, padding = case
    (oh, ow), geom = conv_geometry(h, w, c, f, k, stride, padding)
    x, wt, dy = uniform(rng, n, h, w, c), uniform(rng, k * k * c, f), uniform(rng, n, oh, ow, f)
    dw, db = np.empty_like(wt), np.empty(f, np.float32)
    dx = np.full_like(x, np.nan) if with_dx else None
    backend.conv2d_backward(dy, x, wt, dw, db, dx, *geom)
    dw_r, db_r, dx_r = np.empty(wt.shape), np.empty(f), np.empty(x.shape)
    ref.conv2d_backward(*f64(dy, x, wt), dw_r, db_r, dx_r, *geom)
    assert_close(dw, dw_r, "conv", f"dw {case}")
    assert_close(db, db_r, "conv", f"db {case}")  # a sum over N*OH*OW rows, as long as a GEMM's
    if with_dx:
        assert_close(dx, dx_r, "conv", f"dx {case}")


@pytest.mark.parametrize("shape,pool", [((1, 2, 2, 1), 2), ((3, 7, 9, 5), 2), ((2, 26, 26, 32), 2),
                                        ((4, 11, 11, 64), 2), ((2, 9, 8, 3), 3)])
@pytest.mark.parametrize("relu_mask", [False, True])
def test_maxpool(backend, ref, rng, shape, pool, relu_mask):
    n, h, w, c = shape
    x = uniform(rng, *shape)
    x[0, 0, 0, 0] = x[0, 0, 1, 0] = 2.0  # a tie: the first in row-major window order wins
    pooled = (n, h // pool, w // pool, c)
    out, arg = np.empty(pooled, np.float32), np.empty(pooled, np.int32)
    backend.maxpool_forward(x, out, arg, pool)
    out_r, arg_r = np.empty(pooled), np.empty(pooled, np.int32)
    ref.maxpool_forward(x.astype(np.float64), out_r, arg_r, pool)
    assert_close(out, out_r, "pool", "out")
    np.testing.assert_array_equal(arg, arg_r)
    dy = uniform(rng, *pooled)
    dx = np.full(shape, np.nan, np.float32)
    backend.maxpool_backward(dy, arg, out, dx, pool, relu_mask)
    dx_r = np.empty(shape)
    ref.maxpool_backward(dy.astype(np.float64), arg_r, out_r, dx_r, pool, relu_mask)
    assert_close(dx, dx_r, "pool", "dx")
    assert np.count_nonzero(dx) <= dy.size


# (N, H, W, C, F, kernel, padding, pool): the cpp backend fuses the single-channel ones and, by
# Winograd, 3x3 ones of 16+ channels with a 2x2 pool; the others (three channels, F not a multiple
# of 8) take the composition, which every backend inherits.
CONV_POOL_CASES = [
    (3, 28, 28, 1, 32, 3, "valid", 2),  # the basic CNN's first layer: 26 -> 13
    (2, 28, 28, 1, 24, 5, "valid", 2),  # the fast CNN's: 24 -> 12
    (9, 13, 11, 1, 16, 3, "same", 2),  # odd sizes: the last row and column are dropped; 9 images: 2 chunks
    (2, 10, 10, 1, 8, 3, "valid", 3),
    (2, 9, 9, 3, 8, 3, "valid", 2),  # three channels: no fused kernel
    (2, 9, 9, 1, 12, 3, "valid", 2),  # F not a multiple of 8: no fused kernel
    (5, 13, 13, 32, 64, 3, "valid", 2),  # the basic CNN's second layer: 11 -> 5, by Winograd on cpp
    (2, 8, 7, 16, 24, 3, "same", 2),
]


@pytest.mark.parametrize("case", CONV_POOL_CASES)
def test_conv2d_maxpool_is_conv_then_pool(backend, ref, rng, case):
    n, h, w, c, f, k, padding, pool = case
    (oh, ow), geom = conv_geometry(h, w, c, f, k, 1, padding)
    pooled = (n, oh // pool, ow // pool, f)
    x, wt, b, dy = uniform(rng, n, h, w, c), uniform(rng, k * k * c, f), uniform(rng, f), uniform(rng, *pooled)
    for relu in (False, True):
        conv_r = ref.conv2d_forward(*f64(x, wt, b), np.empty((n, oh, ow, f)), *geom, relu=relu)
        out_r, arg_r = np.empty(pooled), np.empty(pooled, np.int32)
        ref.maxpool_forward(conv_r, out_r, arg_r, pool)
        out, arg = np.full(pooled, np.nan, np.float32), np.full(pooled, -1, np.int32)
        backend.conv2d_maxpool_forward(x, wt, b, out, arg, *geom, (oh, ow), pool, relu)
        assert_close(out, out_r, "conv", f"out {case} relu={relu}")
        # argmax may differ only where float32 rounding reorders near-equal window values
        assert np.mean(arg == arg_r) > 0.99, case
        dconv_r = np.empty((n, oh, ow, f))
        ref.maxpool_backward(dy.astype(np.float64), arg, out.astype(np.float64), dconv_r, pool, relu)
        dw_r, db_r = np.empty(wt.shape), np.empty(f)
        dx_r = np.empty(x.shape)
        ref.conv2d_backward(dconv_r, x.astype(np.float64), wt.astype(np.float64), dw_r, db_r, dx_r, *geom)
        dw, db, dx = np.full_like(wt, np.nan), np.full(f, np.nan, np.float32), np.full_like(x, np.nan)
        backend.conv2d_maxpool_backward(dy, arg, out, x, wt, dw, db, *geom, (oh, ow), pool, relu, dx)
        assert_close(dw, dw_r, "conv", f"dw {case} relu={relu}")
        assert_close(db, db_r, "conv", f"db {case} relu={relu}")
        assert_close(dx, dx_r, "conv", f"dx {case} relu={relu}")
        dw_first = np.full_like(wt, np.nan)  # a first layer: no dx
        backend.conv2d_maxpool_backward(dy, arg, out, x, wt, dw_first, None, *geom, (oh, ow), pool, relu)
        assert_close(dw_first, dw_r, "conv", f"dw without dx {case} relu={relu}")


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 5, 7, 4), (8, 7, 7, 128)])
def test_global_avgpool(backend, ref, rng, shape):
    x, dy = uniform(rng, *shape), uniform(rng, shape[0], shape[3])
    out = backend.global_avgpool_forward(x, np.empty((shape[0], shape[3]), np.float32))
    assert_close(out, ref.global_avgpool_forward(x.astype(np.float64), np.empty(out.shape)), "reduction")
    dx = backend.global_avgpool_backward(dy, np.empty(shape, np.float32))
    assert_close(dx, ref.global_avgpool_backward(dy.astype(np.float64), np.empty(shape)), "reduction")


@pytest.mark.parametrize("rows,cols", [(2, 1), (7, 3), (128, 10), (1000, 32), (3 * 13 * 13, 7)])
def test_batchnorm(backend, ref, rng, rows, cols):
    x = uniform(rng, rows, cols) * 3 + 5  # far from zero mean: the variance must not cancel
    gamma, beta, dy = uniform(rng, cols), uniform(rng, cols), uniform(rng, rows, cols)
    state = [np.zeros(cols, np.float32), np.ones(cols, np.float32)]
    y, sm, si = np.empty_like(x), np.empty(cols, np.float32), np.empty(cols, np.float32)
    backend.batchnorm_forward_train(x, gamma, beta, y, sm, si, *state, 1e-5, 0.1)
    state_r = [np.zeros(cols), np.ones(cols)]
    y_r, sm_r, si_r = np.empty(x.shape), np.empty(cols), np.empty(cols)
    ref.batchnorm_forward_train(*f64(x, gamma, beta), y_r, sm_r, si_r, *state_r, 1e-5, 0.1)
    for name, a, b in [("y", y, y_r), ("mean", sm, sm_r), ("invstd", si, si_r), ("running_mean", state[0], state_r[0]),
                       ("running_var", state[1], state_r[1])]:
        assert_close(a, b, "batchnorm", name)
    dx, dg, db = np.empty_like(x), np.empty(cols, np.float32), np.empty(cols, np.float32)
    backend.batchnorm_backward(dy, x, gamma, sm, si, dx, dg, db)
    dx_r, dg_r, db_r = np.empty(x.shape), np.empty(cols), np.empty(cols)
    ref.batchnorm_backward(*f64(dy, x, gamma), sm_r, si_r, dx_r, dg_r, db_r)
    for name, a, b in [("dx", dx, dx_r), ("dgamma", dg, dg_r), ("dbeta", db, db_r)]:
        assert_close(a, b, "batchnorm", name)
    yi = backend.batchnorm_forward_infer(x, gamma, beta, *state, np.empty_like(x), 1e-5)
    assert_close(yi, ref.batchnorm_forward_infer(*f64(x, gamma, beta), *state_r, np.empty(x.shape), 1e-5), "batchnorm")


@pytest.mark.parametrize("kind,alpha", [("relu", 0.0), ("leaky_relu", 0.1), ("sigmoid", 0.0), ("tanh", 0.0)])
@pytest.mark.parametrize("shape", [(1,), (7, 13), (3, 5, 5, 7), (300, 300)])
def test_activations(backend, ref, rng, kind, alpha, shape):
    x, dy = uniform(rng, *shape) * 4, uniform(rng, *shape)
    y = backend.activation_forward(x, np.empty_like(x), kind, alpha)
    y_r = ref.activation_forward(x.astype(np.float64), np.empty(shape), kind, alpha)
    assert_close(y, y_r, "elementwise", kind)
    dx = backend.activation_backward(dy, y, np.empty_like(dy), kind, alpha)
    assert_close(dx, ref.activation_backward(*f64(dy, y), np.empty(shape), kind, alpha), "elementwise", kind)
    backend.activation_backward(dy, y, dy, kind, alpha)  # in place is allowed
    assert_close(dy, dx, "elementwise", "in place")


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 0.9])
@pytest.mark.parametrize("shape", [(1,), (128, 128), (3, 7, 7, 5)])
def test_dropout_same_mask_everywhere(backend, ref, rng, rate, shape):
    x = uniform(rng, *shape)
    y = backend.dropout(x, np.empty_like(x), rate, 42, 7)
    y_r = ref.dropout(x.astype(np.float64), np.empty(shape), rate, 42, 7)
    assert_close(y, y_r, "elementwise")
    keep = dropout_keep_mask(x.size, rate, 42, 7).reshape(shape)
    np.testing.assert_array_equal(y != 0, keep & (x != 0))
    if x.size > 1000:
        assert abs(keep.mean() - (1 - rate)) < 0.01  # the generator is unbiased
    other = backend.dropout(x, np.empty_like(x), rate, 42, 8)
    if rate > 0 and x.size > 1000:
        assert (other != y).any()  # another step, another mask


def test_dropout_bits_are_pinned(cpp):
    """The generator is a file format of sorts: the same (seed, step) must give the same mask in
    every version and on every backend. These bits were recorded when it was introduced."""
    pinned = {(0.5, 1, 1): [0, 0, 1, 0, 1, 1, 0, 1, 0, 0, 0, 0, 1, 1, 1, 0],
              (0.25, 7, 3): [1, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1]}
    for (rate, seed, step), bits in pinned.items():
        assert dropout_keep_mask(16, rate, seed, step).astype(int).tolist() == bits
        kept = cpp.dropout(np.ones(16, np.float32), np.empty(16, np.float32), rate, seed, step)
        assert (kept != 0).astype(int).tolist() == bits
    assert dropout_keep_mask(10_000, 0.5, 3, 5).mean() == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 3, 5), (4, 784, 1), (3, 121, 64), (2, 33, 65)])
def test_batched_transpose(backend, rng, shape):
    x = uniform(rng, *shape)
    out = backend.batched_transpose(x, np.empty((shape[0], shape[2], shape[1]), np.float32))
    np.testing.assert_array_equal(out, x.transpose(0, 2, 1))


OPT_SIZES = [1, 7, 1000, 70_001]


@pytest.mark.parametrize("n", OPT_SIZES)
@pytest.mark.parametrize("momentum,nesterov,wd,scale,clip", [(0.0, False, 0.0, 1.0, 0.0), (0.9, False, 0.0, 1.0, 0.0),
                                                             (0.9, True, 1e-2, 0.5, 0.0), (0.5, False, 0.0, 1.0, 0.3)])
def test_sgd_step(backend, ref, rng, n, momentum, nesterov, wd, scale, clip):
    p, g, v = uniform(rng, n), uniform(rng, n), uniform(rng, n)
    p_r, v_r = f64(p, v)
    for _ in range(3):  # the velocity carries over
        backend.sgd_step(p, g, v if momentum else None, 0.1, momentum, nesterov, wd, scale, clip)
        ref.sgd_step(p_r, g.astype(np.float64), v_r, 0.1, momentum, nesterov, wd, scale, clip)
    assert_close(p, p_r, "optimizer", "param")
    if momentum:
        assert_close(v, v_r, "optimizer", "velocity")


@pytest.mark.parametrize("n", OPT_SIZES)
@pytest.mark.parametrize("wd,decoupled,scale,clip", [(0.0, False, 1.0, 0.0), (1e-2, False, 1.0, 0.0),
                                                     (1e-2, True, 0.5, 0.0), (0.0, False, 1.0, 0.2)])
def test_adam_step(backend, ref, rng, n, wd, decoupled, scale, clip):
    p, m, v = uniform(rng, n), np.zeros(n, np.float32), np.zeros(n, np.float32)
    p_r, m_r, v_r = f64(p, m, v)
    for step in range(1, 4):
        g = uniform(rng, n)
        backend.adam_step(p, g, m, v, 1e-2, 0.9, 0.999, 1e-8, wd, decoupled, step, scale, clip)
        ref.adam_step(p_r, g.astype(np.float64), m_r, v_r, 1e-2, 0.9, 0.999, 1e-8, wd, decoupled, step, scale, clip)
    for name, a, b in [("param", p, p_r), ("m", m, m_r), ("v", v, v_r)]:
        assert_close(a, b, "optimizer", name)


def test_adam_matches_hand_computation(ref):
    """One Adam step from zero state: p -= lr * g / (|g| + eps') whatever the betas."""
    p, g = np.array([1.0, -2.0]), np.array([0.5, -0.25])
    m, v = np.zeros(2), np.zeros(2)
    ref.adam_step(p, g, m, v, 0.1, 0.9, 0.999, 1e-8, 0.0, False, 1, 1.0, 0.0)
    np.testing.assert_allclose(p, [1.0 - 0.1, -2.0 + 0.1], rtol=1e-6)


def test_cpp_optimizer_state_never_goes_subnormal(cpp):
    """Moments that would decay below FLT_MIN (a dead unit's, gradient 0) become 0: subnormal
    operands cost the CPU a microcode assist on every multiply."""
    tiny = np.finfo(np.float32).tiny  # the smallest normal float32
    p, g = np.ones(4, np.float32), np.zeros(4, np.float32)
    m = np.array([tiny, -tiny, 1e-3, 0.0], np.float32)
    v = np.array([tiny, tiny, 1e-3, 0.0], np.float32)
    cpp.adam_step(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, 3, 1.0, 0.0)
    np.testing.assert_array_equal(m[:2], 0.0)  # 0.9 * tiny is subnormal: flushed
    np.testing.assert_array_equal(v[:2], 0.0)  # 0.999 * tiny as well
    assert m[2] == np.float32(0.9) * np.float32(1e-3)  # normal values are untouched
    velocity = np.array([tiny, 1.0], np.float32)
    cpp.sgd_step(np.ones(2, np.float32), np.zeros(2, np.float32), velocity, 0.1, 0.5, False, 0.0, 1.0, 0.0)
    np.testing.assert_array_equal(velocity, [0.0, 0.5])


@pytest.mark.parametrize("n", [1, 5, 70_001])
def test_sum_squares(backend, rng, n):
    x = uniform(rng, n)
    assert backend.sum_squares(x) == pytest.approx(float(np.sum(x.astype(np.float64) ** 2)), rel=1e-6)
