"""The cpp backend's two algorithms for 3x3 stride-1 convolutions: Winograd F(2x2, 3x3)
(csrc/conv_winograd.cpp) and im2col + GEMM, each forced through ``conv_algorithm`` and checked
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
    (2, 14, 14, 32, 32, "same"),  # the improved CNN's
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


def inputs(rng, case, with_bias=True):
    n, h, w, c, f, padding = case
    (oh, ow), geom = geometry(h, w, c, f, padding)
    x, wt, dy = uniform(rng, n, h, w, c), uniform(rng, 9 * c, f), uniform(rng, n, oh, ow, f)
    return x, wt, uniform(rng, f) if with_bias else None, dy, geom


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
