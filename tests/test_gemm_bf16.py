"""The GEMM kernels with bf16 operands against the NumPy bf16 reference.

The reference rounds the operands exactly as the kernels pack them (round to nearest even), so a
kernel and the reference differ only in the order of their float32 sums: the float32 "gemm"
tolerance applies, and a wrong pair layout or a missed rounding is off by far more (a value rounded
to bf16 moves by up to 2**-9 of itself).
"""

import itertools

import numpy as np
import pytest

from mnistfast import _core
from mnistfast.bf16 import round_to_bf16
from mnistfast.testing import assert_close

BF16_KERNELS = _core.available_bf16_gemm_kernels()
SHAPES = [(1, 1, 1), (12, 32, 2), (13, 70, 5), (37, 45, 33), (128, 128, 784), (300, 129, 1), (61, 70, 1601)]


def test_round_to_bf16_is_round_to_nearest_even():
    one = np.float32(1.0)
    ulp = np.float32(2.0**-7)  # bf16's spacing just above 1
    x = np.array([one + ulp / 2, one + 3 * ulp / 2, one + ulp / 2 + 2.0**-20, -2.5, np.inf, np.nan], np.float32)
    got = round_to_bf16(x)
    assert got[0] == one  # a tie goes to the even neighbour, 1
    assert got[1] == one + 2 * ulp  # a tie goes to the even neighbour above
    assert got[2] == one + ulp  # past the tie rounds up
    assert got[3] == -2.5 and got[4] == np.inf and np.isnan(got[5])
    assert (got.view(np.uint32) & 0xFFFF == 0).all()


def test_round_to_bf16_flushes_denormals_to_signed_zero():
    x = np.array([1e-39, -1e-39, np.finfo(np.float32).tiny], np.float32)
    got = round_to_bf16(x)
    assert got[0] == 0 and got[1] == 0 and np.signbit(got[1])
    assert got[2] == np.finfo(np.float32).tiny  # the smallest normal stays


@pytest.mark.parametrize("kernel", BF16_KERNELS)
def test_bf16_kernels_agree_on_denormals_and_nan(kernel):
    # VDPBF16PS reads a denormal operand as zero; every bf16 path rounds it to zero to match.
    a = np.array([[1e-39, 0.0], [np.nan, 1.0], [2.0, 3.0]], np.float32)
    b = np.array([[1e30], [1.0]], np.float32)
    out = np.empty((3, 1), np.float32)
    _core.Kernels(1, kernel, "auto").gemm(a, b, out)
    ref = round_to_bf16(a).astype(np.float64) @ round_to_bf16(b)
    assert out[0, 0] == 0.0 == ref[0, 0]
    assert np.isnan(out[1, 0]) and np.isnan(ref[1, 0])
    assert out[2, 0] == ref[2, 0]


def test_auto_never_picks_a_bf16_kernel():
    assert _core.Kernels().gemm_kernel not in BF16_KERNELS
    assert "generic-bf16" in BF16_KERNELS


@pytest.mark.parametrize("kernel", BF16_KERNELS)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_bf16_gemm_matches_the_reference(kernel, threads, shape):
    M, N, K = shape
    rng = np.random.default_rng(M * 7 + N * 3 + K)
    k = _core.Kernels(threads, kernel, "auto")
    for trans_a, trans_b in itertools.product([False, True], repeat=2):
        a = rng.uniform(-1, 1, (K, M) if trans_a else (M, K)).astype(np.float32)
        b = rng.uniform(-1, 1, (N, K) if trans_b else (K, N)).astype(np.float32)
        c0 = rng.uniform(-1, 1, (M, N)).astype(np.float32)
        out = c0.copy()
        k.gemm(a, b, out, trans_a, trans_b, 0.5, 2.0)
        ra = round_to_bf16(a.T if trans_a else a).astype(np.float64)
        rb = round_to_bf16(b.T if trans_b else b).astype(np.float64)
        assert_close(out, 0.5 * ra @ rb + 2.0 * c0, "gemm", f"{kernel} ta={trans_a} tb={trans_b}")


@pytest.mark.parametrize("kernel", BF16_KERNELS)
def test_bf16_gemm_rounds_its_operands(kernel):
    # 1 + 2**-10 is 1 in bf16: a float32 product would show the difference, a bf16 one must not.
    k = _core.Kernels(1, kernel, "auto")
    a = np.full((5, 8), 1 + 2.0**-10, np.float32)
    b = np.ones((8, 3), np.float32)
    out = np.empty((5, 3), np.float32)
    k.gemm(a, b, out)
    assert (out == 8.0).all()


@pytest.mark.parametrize("kernel", BF16_KERNELS)
def test_bf16_results_do_not_depend_on_threads(kernel):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((128, 784)).astype(np.float32)
    w = rng.standard_normal((784, 128)).astype(np.float32)
    outs = []
    for threads in (1, 2, 3):
        out = np.empty((128, 128), np.float32)
        _core.Kernels(threads, kernel, "auto").gemm(x, w, out)
        outs.append(out)
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


def test_bf16_bias_gradient_sums_float32_values():
    # linear_weight_grad's db is the column sum of dy in float32, not of its bf16 rounding.
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (64, 40)).astype(np.float32)
    dy = (1 + rng.uniform(0, 2.0**-9, (64, 24))).astype(np.float32)
    dw, db = np.empty((40, 24), np.float32), np.empty(24, np.float32)
    for kernel in BF16_KERNELS:
        _core.Kernels(2, kernel, "auto").linear_weight_grad(x, dy, dw, db)
        assert_close(db, dy.astype(np.float64).sum(0), "reduction", kernel)
        assert_close(dw, round_to_bf16(x).T.astype(np.float64) @ round_to_bf16(dy), "gemm", kernel)


def test_bf16_peak_is_reported_where_the_cpu_has_the_instructions():
    if "avx512bf16" not in BF16_KERNELS:
        pytest.skip("this CPU has no AVX512-BF16")
    peak = _core.Kernels(1, "avx512bf16", "auto").peak_gflops(2_000_000)
    assert peak > 0
    assert _core.Kernels(1, "generic-bf16", "auto").peak_gflops() is None


@pytest.mark.parametrize("kernel", BF16_KERNELS)
@pytest.mark.parametrize("trans", list(itertools.product([False, True], repeat=2)))
def test_bf16_packing_rounds_exactly_as_the_reference(kernel, trans):
    """A product with the identity returns the packed operand itself: every packer (each layout,
    edge slivers included) must give round_to_bf16's values exactly, ties and denormals included."""
    ta, tb = trans
    rng = np.random.default_rng(5)
    M, K = 37, 45  # odd: edge slivers and a last half-empty pair
    x = rng.standard_normal((M, K)).astype(np.float32)
    bits = x.view(np.uint32)
    bits[::3] = (bits[::3] & 0xFFFF0000) | 0x8000  # exact ties between two bf16 values
    x[5, :7] = np.array([1e-39, -1e-39, 3e38, -0.0, 2.0**-126, 65504.0, 1.0 + 2.0**-8], np.float32)
    eye = np.eye(K, dtype=np.float32)
    k = _core.Kernels(2, kernel, "auto")
    want = round_to_bf16(x)
    c = np.empty((M, K), np.float32)
    k.gemm(np.ascontiguousarray(x.T) if ta else x, eye, c, ta, tb, 1.0, 0.0)  # x as A
    np.testing.assert_array_equal(c, want)  # values: a zero's sign does not survive the sum
    c = np.empty((K, M), np.float32)
    k.gemm(eye, x if tb else np.ascontiguousarray(x.T), c, ta, tb, 1.0, 0.0)  # x^T as B
    np.testing.assert_array_equal(c, want.T)
