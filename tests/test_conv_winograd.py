"""The cpp backend's two algorithms for 3x3 stride-1 convolutions: Winograd F(2x2, 3x3)
(csrc/conv/winograd/) and im2col + GEMM, each forced through ``conv_algorithm`` and checked
against the float64 reference, and the ``auto`` choice between them. Winograd's tile transforms are
compiled once per ISA and picked with the GEMM kernel, so they are checked with every kernel."""

import numpy as np
import pytest
from conftest import f64, uniform

import mnistfast as mf
from mnistfast import _core
from mnistfast.layers.conv import Conv2D
from mnistfast.testing import assert_close

ALGORITHMS = ["winograd", "im2col"]
# Winograd with each GEMM kernel (each ISA's tile transforms), im2col with the default one.
SETTINGS = [("winograd", k) for k in _core.available_gemm_kernels()] + [("im2col", "auto")]

# (N, H, W, C, F, padding): odd image sizes leave half tiles at the right and bottom edges; 1 and 3
# channels make K = C GEMMs narrower than a micro-tile; 41 images span several chunks and groups.
CASES = [
    (1, 3, 3, 1, 1, "valid"),  # a single output pixel: one tile, three quarters of it past the edge
    (1, 4, 5, 3, 2, "same"),
    (3, 9, 8, 7, 5, "same"),
    (2, 6, 7, 3, 17, "valid"),
    (5, 13, 13, 32, 64, "valid"),  # the basic CNN's second layer
    (2, 14, 14, 32, 32, "same"),
    (41, 13, 11, 16, 24, "valid"),
    (2, 7, 7, 65, 33, "same"),
]


def geometry(h, w, c, f, padding):
    layer = Conv2D(f, 3, padding=padding)
    oh, ow, _ = layer.compute_output_shape((h, w, c))
    return (oh, ow), (layer.kernel, layer.stride, layer.pad)


def run(be, x, wt, b, dy, geom, with_dx=True, relu=False):
    n, oh, ow, f = dy.shape
    out = be.conv2d_forward(x, wt, b, np.full((n, oh, ow, f), np.nan, np.float32), *geom, relu=relu)
    dw, dx = np.full_like(wt, np.nan), np.full_like(x, np.nan) if with_dx else None
    db = None if b is None else np.full(f, np.nan, np.float32)
    be.conv2d_backward(dy, x, wt, dw, db, dx, *geom)
    return out, dw, db, dx


def inputs(rng, case):
    n, h, w, c, f, padding = case
    (oh, ow), geom = geometry(h, w, c, f, padding)
    x, wt, dy = uniform(rng, n, h, w, c), uniform(rng, 9 * c, f), uniform(rng, n, oh, ow, f)
    return x, wt, uniform(rng, f), dy, geom


@pytest.mark.parametrize("algorithm, kernel", SETTINGS)
@pytest.mark.parametrize("case", CASES)
def test_conv3x3_matches_the_reference(ref, rng, algorithm, kernel, case):
    be = mf.get_backend("cpp", conv_algorithm=algorithm, gemm_kernel=kernel)
    x, wt, b, dy, geom = inputs(rng, case)
    for relu in (False, True):
        out, dw, db, dx = run(be, x, wt, b, dy, geom, relu=relu)
        want = ref.conv2d_forward(*f64(x, wt, b), np.empty(dy.shape), *geom, relu=relu)
        assert_close(out, want, "conv", f"{algorithm} {case} relu={relu}")
    dw_r, db_r, dx_r = np.empty(wt.shape), np.empty(b.shape), np.empty(x.shape)
    ref.conv2d_backward(*f64(dy, x, wt), dw_r, db_r, dx_r, *geom)
    assert_close(dw, dw_r, "conv", f"dw {algorithm} {case}")
    assert_close(db, db_r, "conv", f"db {algorithm} {case}")
    assert_close(dx, dx_r, "conv", f"dx {algorithm} {case}")
    # Without a bias, and without dx (a first layer): the weight gradient is the same numbers.
    out_nb, dw_nb, _, _ = run(be, x, wt, None, dy, geom, with_dx=False)
    assert_close(out_nb, ref.conv2d_forward(*f64(x, wt), None, np.empty(dy.shape), *geom), "conv", "no bias")
    np.testing.assert_array_equal(dw_nb, dw)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_conv3x3_does_not_depend_on_the_thread_count(rng, algorithm):
    """Chunks run on any thread, but each weight-gradient group sums its chunks in a fixed order."""
    x, wt, b, dy, geom = inputs(rng, (67, 13, 13, 32, 64, "valid"))
    results = [run(mf.get_backend("cpp", threads=t, conv_algorithm=algorithm), x, wt, b, dy, geom) for t in (1, 2, 3)]
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


def test_auto_uses_winograd_where_it_pays(rng):
    """auto gives Winograd's numbers (bitwise) for 16+ channels in and out, im2col's below; the
    two algorithms round differently, so the comparison tells which one ran."""
    algos = {a: mf.get_backend("cpp", conv_algorithm=a) for a in ("auto", "winograd", "im2col")}
    for case, expected in (((3, 13, 13, 32, 64, "valid"), "winograd"), ((3, 13, 13, 8, 64, "valid"), "im2col"),
                           ((3, 13, 13, 32, 8, "valid"), "im2col")):
        x, wt, b, dy, geom = inputs(rng, case)
        got = {a: run(be, x, wt, b, dy, geom) for a, be in algos.items()}
        other = "im2col" if expected == "winograd" else "winograd"
        for a, b_ in zip(got["auto"], got[expected]):
            np.testing.assert_array_equal(a, b_)
        assert not np.array_equal(got["auto"][0], got[other][0]), f"{case}: auto matches {other} too"


def test_winograd_leaves_other_geometries_to_im2col(ref, rng):
    """A forced 'winograd' still computes 5x5 and strided convolutions, by im2col."""
    be = mf.get_backend("cpp", conv_algorithm="winograd")
    for k, stride in ((5, 1), (3, 2)):
        layer = Conv2D(6, k, stride=stride, padding="same")
        oh, ow, _ = layer.compute_output_shape((9, 9, 4))
        geom = (layer.kernel, layer.stride, layer.pad)
        x, wt = uniform(rng, 2, 9, 9, 4), uniform(rng, k * k * 4, 6)
        got = be.conv2d_forward(x, wt, None, np.empty((2, oh, ow, 6), np.float32), *geom)
        assert_close(got, ref.conv2d_forward(*f64(x, wt), None, np.empty((2, oh, ow, 6)), *geom), "conv", str(k))


def test_conv_algorithm_is_a_backend_setting():
    be = mf.get_backend("cpp", conv_algorithm="im2col")
    assert be.conv_algorithm == "im2col" and mf.get_backend("cpp").conv_algorithm == "auto"
    assert "conv im2col" in repr(be)
    with pytest.raises(ValueError, match="unknown conv algorithm 'fft'"):
        mf.get_backend("cpp", conv_algorithm="fft")
    with pytest.raises(ValueError, match="conv algorithm"):
        _core.Kernels(conv_algorithm="")


# (N, H, W, C, F, padding): conv maps of odd size lose their last row and column to the 2x2 pool.
POOL_CASES = [(5, 13, 13, 32, 64, "valid"), (3, 8, 9, 16, 16, "same"), (2, 5, 5, 3, 4, "valid"),
              (37, 12, 12, 20, 24, "same")]


def pooled_reference(ref, x, wt, b, dy, arg, out, geom, conv_hw, relu):
    n, _, _, f = dy.shape
    dconv = np.empty((n, *conv_hw, f))
    ref.maxpool_backward(*f64(dy), arg, *f64(out), dconv, 2, relu)
    dw, db, dx = np.empty(wt.shape), np.empty(f), np.empty(x.shape)
    ref.conv2d_backward(dconv, *f64(x, wt), dw, db, dx, *geom)
    return dw, db, dx


@pytest.mark.parametrize("kernel", _core.available_gemm_kernels())
@pytest.mark.parametrize("case", POOL_CASES)
def test_winograd_conv_pool_is_conv_then_pool(ref, rng, kernel, case):
    """Fused, each tile is a pooling window: the forward pass gives the composition's numbers
    bitwise (the same tile arithmetic), the backward pass the reference's gradients, dx included."""
    be = mf.get_backend("cpp", conv_algorithm="winograd", gemm_kernel=kernel)
    n, h, w, c, f, padding = case
    (oh, ow), geom = geometry(h, w, c, f, padding)
    pooled = (n, oh // 2, ow // 2, f)
    x, wt, b, dy = uniform(rng, n, h, w, c), uniform(rng, 9 * c, f), uniform(rng, f), uniform(rng, *pooled)
    for relu in (False, True):
        out, arg = np.full(pooled, np.nan, np.float32), np.full(pooled, -1, np.int32)
        assert be._k.conv2d_maxpool_forward(x, wt, b, out, arg, *geom[0], *geom[1], *geom[2], oh, ow, 2, relu)
        conv = be.conv2d_forward(x, wt, b, np.empty((n, oh, ow, f), np.float32), *geom, relu=relu)
        out_c, arg_c = np.empty(pooled, np.float32), np.empty(pooled, np.int32)
        be.maxpool_forward(conv, out_c, arg_c, 2)
        np.testing.assert_array_equal(out, out_c)
        np.testing.assert_array_equal(arg, arg_c)
        dw, db, dx = np.full_like(wt, np.nan), np.full(f, np.nan, np.float32), np.full_like(x, np.nan)
        be.conv2d_maxpool_backward(dy, arg, out, x, wt, dw, db, *geom, (oh, ow), 2, relu, dx)
        for name, got, want in zip(("dw", "db", "dx"), (dw, db, dx),
                                   pooled_reference(ref, x, wt, b, dy, arg, out, geom, (oh, ow), relu)):
            assert_close(got, want, "conv", f"{name} {kernel} {case} relu={relu}")


def test_winograd_conv_pool_is_used_only_where_it_applies(rng):
    x, wt = uniform(rng, 2, 13, 13, 32), uniform(rng, 9 * 32, 64)
    out, arg = np.empty((2, 5, 5, 64), np.float32), np.empty((2, 5, 5, 64), np.int32)
    args = (x, wt, None, out, arg, 3, 3, 1, 1, 0, 0, 11, 11)
    assert mf.get_backend("cpp")._k.conv2d_maxpool_forward(*args, 2)
    assert not mf.get_backend("cpp", conv_algorithm="im2col")._k.conv2d_maxpool_forward(*args, 2)
    out3, arg3 = np.empty((2, 3, 3, 64), np.float32), np.empty((2, 3, 3, 64), np.int32)
    assert not mf.get_backend("cpp")._k.conv2d_maxpool_forward(x, wt, None, out3, arg3, *args[5:], 3)


def test_winograd_conv_pool_backward_follows_an_argmax_outside_its_window(ref, rng):
    """No forward pass makes one, but an argmax pointing elsewhere in its image still gets the
    gradient, as the reference's scatter gives it: the fused pass hands over to the composition."""
    be = mf.get_backend("cpp")
    (oh, ow), geom = geometry(13, 13, 32, 64, "valid")
    x, wt, b, dy = uniform(rng, 3, 13, 13, 32), uniform(rng, 9 * 32, 64), uniform(rng, 64), uniform(rng, 3, 5, 5, 64)
    out, arg = np.empty((3, 5, 5, 64), np.float32), np.empty((3, 5, 5, 64), np.int32)
    be.conv2d_maxpool_forward(x, wt, b, out, arg, *geom, (oh, ow), 2, False)
    arg[1, 0, 0, 3] = (10 * ow + 10) * 64 + 3  # the bottom-right output, which no window reads
    dw, db, dx = np.empty_like(wt), np.empty(64, np.float32), np.empty_like(x)
    be.conv2d_maxpool_backward(dy, arg, out, x, wt, dw, db, *geom, (oh, ow), 2, False, dx)
    for name, got, want in zip(("dw", "db", "dx"), (dw, db, dx),
                               pooled_reference(ref, x, wt, b, dy, arg, out, geom, (oh, ow), False)):
        assert_close(got, want, "conv", name)
    # Input pixel (12, 12) lies under output (10, 10) alone: only the stray gradient reaches it.
    assert np.abs(dx[1, 12, 12]).max() > 0 and not dx[[0, 2], 12, 12].any()
