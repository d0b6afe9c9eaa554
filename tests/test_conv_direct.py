"""The single-channel direct convolution (csrc/conv/direct/) on every ISA build of it.

The cpp backend sends a stride-1 convolution of one input channel to a direct kernel compiled once
per ISA and chosen with the GEMM kernel, so each available ``gemm_kernel`` is checked here against
the float64 reference; the naive kernel takes the im2col path, which the same cases then cover too.
"""

import numpy as np
import pytest
from conftest import f64, uniform

import mnistfast as mf
from mnistfast import _core
from mnistfast.layers.conv import Conv2D
from mnistfast.testing import assert_close

KERNELS = _core.available_gemm_kernels()

# (N, H, W, F, kernel, padding, bias): filter counts of the compiled set (multiples of 8 up to 64)
# plus ones outside it (fall back to im2col); 19 images span several partial-sum chunks of 8.
CASES = [
    (19, 28, 28, 32, 3, "valid", True),  # the basic CNN's first layer
    (3, 28, 28, 24, 5, "valid", True),  # the fast CNN's
    (2, 28, 28, 32, 3, "same", False),  # the improved CNN's (batch norm follows: no bias)
    (1, 9, 7, 8, 5, "same", True),
    (5, 6, 11, 64, 3, "valid", True),
    (2, 7, 7, 12, 3, "valid", True),  # F not a multiple of 8
    (2, 9, 9, 16, 4, "same", True),  # an even kernel width
    (3, 12, 10, 16, 5, "valid", True),  # F = 16, 40, 48, 56: whole vectors plus 8-float tails on AVX-512
    (2, 8, 9, 40, 3, "same", False),
    (9, 10, 8, 48, 3, "valid", True),
    (1, 7, 11, 56, 5, "same", True),
]


def geometry(h, w, f, k, padding):
    layer = Conv2D(f, k, padding=padding)
    oh, ow, _ = layer.compute_output_shape((h, w, 1))
    return (oh, ow), (layer.kernel, layer.stride, layer.pad)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("case", CASES)
def test_single_channel_conv_matches_the_reference(rng, ref, kernel, case):
    n, h, w, f, k, padding, with_bias = case
    be = mf.get_backend("cpp", gemm_kernel=kernel)
    (oh, ow), geom = geometry(h, w, f, k, padding)
    x, wt, dy = uniform(rng, n, h, w, 1), uniform(rng, k * k, f), uniform(rng, n, oh, ow, f)
    b = uniform(rng, f) if with_bias else None
    for relu in (False, True):
        got = be.conv2d_forward(x, wt, b, np.full((n, oh, ow, f), np.nan, np.float32), *geom, relu=relu)
        b_r = None if b is None else b.astype(np.float64)
        want = ref.conv2d_forward(*f64(x, wt), b_r, np.empty((n, oh, ow, f)), *geom, relu=relu)
        assert_close(got, want, "conv", f"{kernel} {case} relu={relu}")
    dw, db = np.full_like(wt, np.nan), np.full(f, np.nan, np.float32)
    be.conv2d_backward(dy, x, wt, dw, db, None, *geom)
    dw_r, db_r = np.empty(wt.shape), np.empty(f)
    ref.conv2d_backward(*f64(dy, x, wt), dw_r, db_r, None, *geom)
    assert_close(dw, dw_r, "conv", f"dw {kernel} {case}")
    assert_close(db, db_r, "conv", f"db {kernel} {case}")
    dw2 = np.full_like(wt, np.nan)
    be.conv2d_backward(dy, x, wt, dw2, None, None, *geom)
    np.testing.assert_array_equal(dw2, dw)  # without db, dw is the same numbers


@pytest.mark.parametrize("kernel", KERNELS)
def test_single_channel_conv_does_not_depend_on_the_thread_count(rng, kernel):
    (oh, ow), geom = geometry(28, 28, 32, 3, "valid")
    x, wt, dy = uniform(rng, 37, 28, 28, 1), uniform(rng, 9, 32), uniform(rng, 37, oh, ow, 32)
    b = uniform(rng, 32)
    results = []
    for threads in (1, 2, 3):
        be = mf.get_backend("cpp", threads=threads, gemm_kernel=kernel)
        out = be.conv2d_forward(x, wt, b, np.empty((37, oh, ow, 32), np.float32), *geom, relu=True)
        dw, db = np.empty_like(wt), np.empty(32, np.float32)
        be.conv2d_backward(dy, x, wt, dw, db, None, *geom)
        results.append((out, dw, db))
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("kernel", KERNELS)
def test_fused_conv_pool_on_every_isa_matches_the_composition(rng, kernel):
    """conv2d_maxpool_* (fused for one channel) against conv2d_* then maxpool_* on the same backend."""
    be = mf.get_backend("cpp", gemm_kernel=kernel)
    (oh, ow), geom = geometry(28, 28, 32, 3, "valid")
    n, pooled = 19, (19, 13, 13, 32)
    x, wt, b, dy = uniform(rng, n, 28, 28, 1), uniform(rng, 9, 32), uniform(rng, 32), uniform(rng, *pooled)
    conv = be.conv2d_forward(x, wt, b, np.empty((n, oh, ow, 32), np.float32), *geom, relu=True)
    out_c, arg_c = np.empty(pooled, np.float32), np.empty(pooled, np.int32)
    be.maxpool_forward(conv, out_c, arg_c, 2)
    out, arg = np.empty(pooled, np.float32), np.empty(pooled, np.int32)
    be.conv2d_maxpool_forward(x, wt, b, out, arg, *geom, (oh, ow), 2, True)
    np.testing.assert_array_equal(out, out_c)  # the same arithmetic, in cache instead of memory
    np.testing.assert_array_equal(arg, arg_c)
    dconv = np.empty_like(conv)
    be.maxpool_backward(dy, arg, out, dconv, 2, True)
    dw_c, db_c = np.empty_like(wt), np.empty(32, np.float32)
    be.conv2d_backward(dconv, x, wt, dw_c, db_c, None, *geom)
    dw, db = np.empty_like(wt), np.empty(32, np.float32)
    be.conv2d_maxpool_backward(dy, arg, out, x, wt, dw, db, *geom, (oh, ow), 2, True)
    np.testing.assert_array_equal(dw, dw_c)
    np.testing.assert_array_equal(db, db_c)


def test_fused_conv_pool_names_a_bad_argmax(rng):
    be = mf.get_backend("cpp")
    (oh, ow), geom = geometry(12, 12, 8, 3, "valid")
    x, wt = uniform(rng, 2, 12, 12, 1), uniform(rng, 9, 8)
    out, arg = np.empty((2, 5, 5, 8), np.float32), np.empty((2, 5, 5, 8), np.int32)
    be.conv2d_maxpool_forward(x, wt, None, out, arg, *geom, (oh, ow), 2)
    arg[1, 2, 3, 4] = 10 * 10 * 8  # one past the end of its image
    with pytest.raises(ValueError, match=r"argmax entry 308 = 800 is outside an image of 800 elements"):
        be.conv2d_maxpool_backward(out, arg, out, x, wt, np.empty_like(wt), None, *geom, (oh, ow), 2)
    with pytest.raises(ValueError, match="a 3x3 pool does not fit the 2x2 conv output"):
        be.conv2d_maxpool_forward(x, wt, None, out, arg, *geom, (2, 2), 3)


def test_maxpool_backward_sends_an_argmax_outside_its_window_where_it_points(rng, ref):
    """cpp's 2x2 backward writes each window's own elements in one pass; an argmax that points
    elsewhere in its image (no forward pass makes one) still puts the gradient there, as the
    reference's scatter does, standalone and inside the fused kernel."""
    be = mf.get_backend("cpp")
    x, dy = uniform(rng, 3, 10, 10, 8), uniform(rng, 3, 5, 5, 8)
    out, arg = np.empty((3, 5, 5, 8), np.float32), np.empty((3, 5, 5, 8), np.int32)
    be.maxpool_forward(x, out, arg, 2)
    # Window (4, 4), channel 0: an element that did not win there (so nothing else writes it).
    target = next(t for t in (8 * 10 + 8, 8 * 10 + 9, 9 * 10 + 8, 9 * 10 + 9) if t * 8 != arg[1, 4, 4, 0]) * 8
    arg[1, 0, 0, 0] = target
    dx, dx_r = np.full(x.shape, np.nan, np.float32), np.empty(x.shape)
    be.maxpool_backward(dy, arg, out, dx, 2)
    ref.maxpool_backward(*f64(dy), arg, *f64(out), dx_r, 2)
    np.testing.assert_array_equal(dx, dx_r.astype(np.float32))
    assert dx[1].reshape(-1)[target] == dy[1, 0, 0, 0] and dx[1, 0:2, 0:2, 0].sum() == 0


def test_a_conv_absorbs_the_pool_after_it():
    model = mf.Sequential([mf.layers.Conv2D(8, 3, activation="relu"), mf.layers.MaxPool2D(2),
                           mf.layers.Conv2D(8, 3, activation="relu"), mf.layers.MaxPool2D(2), mf.layers.Flatten(),
                           mf.layers.Dense(10)], input_shape=(1, 16, 16))
    assert [p.skip for p in model.plan.layers] == [False, True, False, True, False, False]
    table, fusions = model.summary(print_fn=None).split("Fusions:")
    assert table.count("MaxPool2D") == 2  # still two layers to the user
    assert "layer 0 (Conv2D) also computes layer 1 (MaxPool2D)" in fusions
