"""The packed GEMM against the naive C++ oracle and the float64 reference, for every micro-kernel
this CPU can run: every size 1..64 along each dimension, odd sizes around the tiles, large odd
sizes, every transpose, 1 and 2 threads."""

import itertools

import numpy as np
import pytest
from conftest import uniform

from mnistfast import _core
from mnistfast.testing import assert_close

KERNELS = _core.available_gemm_kernels()
TRANS = list(itertools.product([False, True], repeat=2))
# Around the 6 x 16 tile, the 144-row A block and the 256-deep K block (AVX2; AVX-512's K block is
# 800 deep: test_large_odd_sizes crosses it).
ODD = (5, 17, 31)


@pytest.fixture(params=[k for k in KERNELS if k != "naive"])
def kernel(request):
    return request.param


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    return request.param


@pytest.fixture
def k(kernel, threads):
    """The extension's kernels with these settings."""
    return _core.Kernels(threads, kernel)


def check(k, rng, M, N, K, ta, tb, alpha=1.0, beta=0.0):
    a = uniform(rng, K, M) if ta else uniform(rng, M, K)
    b = uniform(rng, N, K) if tb else uniform(rng, K, N)
    c0 = uniform(rng, M, N)
    got = c0.copy()
    k.gemm(a, b, got, ta, tb, alpha, beta)
    ref = alpha * ((a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)) + beta * c0
    assert_close(got, ref, "gemm", f"M={M} N={N} K={K} ta={ta} tb={tb}")


@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("axis", ["M", "N", "K"])
def test_every_size_1_to_64(k, rng, axis, ta, tb):
    for n in range(1, 65):
        for other in itertools.product(ODD, ODD):
            dims = dict(zip([d for d in "MNK" if d != axis], other), **{axis: n})
            check(k, rng, dims["M"], dims["N"], dims["K"], ta, tb)


@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("M,N,K", [(145, 33, 257), (289, 161, 513), (7, 1000, 600), (1001, 9, 300),
                                   (150, 2049, 20), (128, 128, 784), (33, 70, 1601)])
def test_large_odd_sizes(k, rng, M, N, K, ta, tb):
    check(k, rng, M, N, K, ta, tb, alpha=0.75, beta=0.5)


@pytest.mark.parametrize("ta,tb", TRANS)
def test_nan_in_c_with_beta_zero(k, rng, ta, tb):
    M, N, K = 37, 53, 900  # several K blocks: the later ones accumulate onto the first, never onto NaN
    a = uniform(rng, K, M) if ta else uniform(rng, M, K)
    b = uniform(rng, N, K) if tb else uniform(rng, K, N)
    c = np.full((M, N), np.nan, np.float32)
    k.gemm(a, b, c, ta, tb, 1.0, 0.0)
    ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    assert_close(c, ref, "gemm")


def test_fused_epilogues(k, rng):
    x, w, bias = uniform(rng, 131, 300), uniform(rng, 300, 70), uniform(rng, 70)
    out = np.full((131, 70), np.nan, np.float32)
    k.linear_forward(x, w, bias, out, True)
    ref = np.maximum(x.astype(np.float64) @ w + bias, 0)
    assert_close(out, ref, "linear", "bias + relu")
    y = np.maximum(uniform(rng, 131, 300), 0)
    dy = uniform(rng, 131, 70)
    dx = np.full((131, 300), np.nan, np.float32)
    k.linear_backward_input(dy, w, y, dx)
    assert_close(dx, (dy.astype(np.float64) @ w.T) * (y > 0), "linear", "relu mask")


@pytest.mark.parametrize("ta,tb", TRANS)
def test_bitwise_reproducible_across_thread_counts(kernel, rng, ta, tb):
    M, N, K = 300, 200, 700
    a = uniform(rng, K, M) if ta else uniform(rng, M, K)
    b = uniform(rng, N, K) if tb else uniform(rng, K, N)
    results = []
    for t in (1, 2, 3, 1):
        out = np.empty((M, N), np.float32)
        _core.Kernels(t, kernel).gemm(a, b, out, ta, tb, 1.0, 0.0)
        results.append(out)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


@pytest.mark.parametrize("rows,fan_in,units", [(128, 784, 128), (129, 65, 33), (1, 7, 1), (300, 1601, 70)])
def test_linear_weight_grad_column_sums(kernel, rng, rows, fan_in, units):
    """The bias sums made while B is packed: bitwise the naive oracle's (both sum in k order) on
    every kernel and thread count, whichever way the threads split the product."""
    x, dy, w0, b0 = uniform(rng, rows, fan_in), uniform(rng, rows, units), uniform(rng, fan_in, units), uniform(rng, units)
    oracle_w, oracle_b = w0.copy(), b0.copy()
    _core.Kernels(1, "naive").linear_weight_grad(x, dy, oracle_w, oracle_b, -0.05, 1.0)
    for t in (1, 2, 3):
        dw, db = w0.copy(), b0.copy()
        _core.Kernels(t, kernel).linear_weight_grad(x, dy, dw, db, -0.05, 1.0)
        np.testing.assert_array_equal(db, oracle_b)
        assert_close(dw, oracle_w, "gemm")
        dw, db = np.full_like(w0, np.nan), np.full_like(b0, np.nan)
        _core.Kernels(t, kernel).linear_weight_grad(x, dy, dw, db)
        np.testing.assert_array_equal(db, _sequential_sums(dy))


def _sequential_sums(dy):
    total = np.zeros(dy.shape[1], np.float32)
    for row in dy:
        total += row
    return total


@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("M,N,K", [(40, 33, 800), (128, 128, 784), (7, 100, 450), (150, 20, 1601)])
def test_k_split_products(kernel, rng, M, N, K, ta, tb):
    """Products whose K is 4x the longer side of C run as two halves of K (gemm_blocked.cpp): the
    same bits on 1-4 threads, alpha and beta applied once, and beta 0 never reading C."""
    a = uniform(rng, K, M) if ta else uniform(rng, M, K)
    b = uniform(rng, N, K) if tb else uniform(rng, K, N)
    c0 = uniform(rng, M, N)
    product = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    results = []
    for t in (1, 2, 3, 4):
        out = c0.copy()
        _core.Kernels(t, kernel).gemm(a, b, out, ta, tb, 0.75, 0.5)
        results.append(out)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    assert_close(results[0], 0.75 * product + 0.5 * c0, "gemm")
    out = np.full((M, N), np.nan, np.float32)
    _core.Kernels(2, kernel).gemm(a, b, out, ta, tb, 1.0, 0.0)
    assert_close(out, product, "gemm")


def test_k_split_epilogues(k, rng):
    x, w, bias = uniform(rng, 37, 600), uniform(rng, 600, 70), uniform(rng, 70)
    out = np.full((37, 70), np.nan, np.float32)
    k.linear_forward(x, w, bias, out, True)
    assert_close(out, np.maximum(x.astype(np.float64) @ w + bias, 0), "linear", "bias + relu")
    dy, w2, y = uniform(rng, 37, 800), uniform(rng, 50, 800), np.maximum(uniform(rng, 37, 50), 0)
    dx = np.full((37, 50), np.nan, np.float32)
    k.linear_backward_input(dy, w2, y, dx)
    assert_close(dx, (dy.astype(np.float64) @ w2.T) * (y > 0), "linear", "relu mask")


def test_blocked_agrees_with_naive_oracle(k, rng):
    a, b = uniform(rng, 129, 513), uniform(rng, 513, 47)
    fast = np.empty((129, 47), np.float32)
    k.gemm(a, b, fast)
    slow = np.empty((129, 47), np.float32)
    _core.Kernels(k.threads, "naive").gemm(a, b, slow)
    assert_close(fast, slow, "gemm")


def test_unknown_kernel_is_an_error():
    with pytest.raises(ValueError, match="gemm kernel 'sse9' is not available"):
        _core.Kernels(1, "sse9")
    assert _core.Kernels().gemm_kernel in KERNELS
