"""The dense kernels of every backend against the float64 NumPy reference, over a sweep of shapes."""

import itertools

import numpy as np
import pytest
from conftest import uniform

from mnistfast.testing import assert_close

EDGE = [1, 2, 7, 17]
LARGE = [(127, 129, 784), (129, 784, 127), (784, 127, 129), (128, 128, 784), (784, 128, 128),
         (128, 784, 128), (100, 10, 64), (64, 100, 10), (10, 64, 100), (257, 65, 33)]
TRANS = list(itertools.product([False, True], repeat=2))


def gemm_operands(rng, M, N, K, ta, tb):
    a = uniform(rng, K, M) if ta else uniform(rng, M, K)
    b = uniform(rng, N, K) if tb else uniform(rng, K, N)
    return a, b


@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("M,N,K", list(itertools.product(EDGE, EDGE, EDGE)) + LARGE)
def test_gemm_matches_reference(backend, ref, rng, M, N, K, ta, tb):
    a, b = gemm_operands(rng, M, N, K, ta, tb)
    got = backend.gemm(a, b, trans_a=ta, trans_b=tb)
    want = ref.gemm(a.astype(np.float64), b.astype(np.float64), trans_a=ta, trans_b=tb)
    assert_close(got, want, "gemm", f"M={M} N={N} K={K} ta={ta} tb={tb}")


@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, -2.0), (-1.5, 0.25), (0.0, 1.0)])
def test_gemm_alpha_beta(backend, ref, rng, ta, tb, alpha, beta):
    M, N, K = 33, 19, 45
    a, b = gemm_operands(rng, M, N, K, ta, tb)
    c = uniform(rng, M, N)
    got = backend.gemm(a, b, out=c.copy(), trans_a=ta, trans_b=tb, alpha=alpha, beta=beta)
    want = ref.gemm(a.astype(np.float64), b.astype(np.float64), out=c.astype(np.float64),
                    trans_a=ta, trans_b=tb, alpha=alpha, beta=beta)
    assert_close(got, want, "gemm")


def test_gemm_beta_zero_never_reads_out(backend, ref, rng):
    a, b = uniform(rng, 20, 30), uniform(rng, 30, 40)
    out = np.full((20, 40), np.nan, dtype=np.float32)
    backend.gemm(a, b, out=out, beta=0.0)
    assert_close(out, ref.gemm(a.astype(np.float64), b.astype(np.float64)), "gemm")


def test_gemm_k_zero_gives_beta_times_c(backend):
    c = np.ones((3, 4), np.float32)
    backend.gemm(np.empty((3, 0), np.float32), np.empty((0, 4), np.float32), out=c, beta=2.0)
    np.testing.assert_array_equal(c, 2.0)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("M,K,N", [(1, 1, 1), (7, 17, 2), (128, 784, 128), (129, 128, 64), (33, 64, 10)])
def test_linear_forward(backend, ref, rng, M, K, N, relu):
    x, w, b = uniform(rng, M, K), uniform(rng, K, N), uniform(rng, N)
    got = backend.linear_forward(x, w, b, np.empty((M, N), np.float32), relu=relu)
    want = ref.linear_forward(*(t.astype(np.float64) for t in (x, w, b)), np.empty((M, N)), relu=relu)
    assert_close(got, want, "linear")
    if relu:
        assert (got >= 0).all()


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (7, 2, 17), (128, 10, 64), (129, 64, 128), (128, 128, 784)])
def test_linear_backward_input(backend, ref, rng, M, N, K, masked):
    dy, w = uniform(rng, M, N), uniform(rng, K, N)
    y = np.maximum(uniform(rng, M, K), 0) if masked else None
    got = backend.linear_backward_input(dy, w, y, np.empty((M, K), np.float32))
    want = ref.linear_backward_input(dy.astype(np.float64), w.astype(np.float64),
                                     None if y is None else y.astype(np.float64), np.empty((M, K)))
    assert_close(got, want, "linear")
    if masked:
        assert (got[y == 0] == 0).all()


@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (-0.05, 1.0), (0.5, -0.25)])
@pytest.mark.parametrize("rows,fan_in,units", [(1, 1, 1), (7, 17, 2), (128, 64, 10), (129, 128, 64), (128, 784, 128),
                                               (33, 1601, 70)])
def test_linear_weight_grad(backend, ref, rng, rows, fan_in, units, alpha, beta):
    x, dy = uniform(rng, rows, fan_in), uniform(rng, rows, units)
    w0, b0 = uniform(rng, fan_in, units), uniform(rng, units)
    dw, db = (w0.copy(), b0.copy()) if beta else (np.full_like(w0, np.nan), np.full_like(b0, np.nan))
    backend.linear_weight_grad(x, dy, dw, db, alpha=alpha, beta=beta)
    want_w, want_b = w0.astype(np.float64), b0.astype(np.float64)
    ref.linear_weight_grad(x.astype(np.float64), dy.astype(np.float64), want_w, want_b, alpha=alpha, beta=beta)
    assert_close(dw, want_w, "linear", "dw")
    assert_close(db, want_b, "linear", "db")


@pytest.mark.parametrize("shape", [(1, 1), (7, 17), (128, 128), (129, 64)])
def test_relu_backward(backend, ref, rng, shape):
    dy, y = uniform(rng, *shape), np.maximum(uniform(rng, *shape), 0)
    want = ref.relu_backward(dy.astype(np.float64), y.astype(np.float64), np.empty(shape))
    assert_close(backend.relu_backward(dy, y, np.empty(shape, np.float32)), want, "elementwise")
    backend.relu_backward(dy, y, dy)  # in place is allowed
    assert_close(dy, want, "elementwise", "in place")


@pytest.mark.parametrize("shape", [(1, 1), (7, 17), (128, 10), (1000, 129), (3, 784)])
def test_bias_grad(backend, ref, rng, shape):
    dy = uniform(rng, *shape)
    got = backend.bias_grad(dy, np.empty(shape[1], np.float32))
    assert_close(got, ref.bias_grad(dy.astype(np.float64), np.empty(shape[1])), "reduction")


@pytest.mark.parametrize("rows,cols", [(1, 1), (1, 10), (7, 10), (128, 10), (129, 17), (1000, 3)])
@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4])
def test_softmax_xent(backend, ref, rng, rows, cols, scale):
    logits = uniform(rng, rows, cols) * np.float32(scale)
    labels = rng.integers(0, cols, rows)
    d_got = np.empty((rows, cols), np.float32)
    loss, correct = backend.softmax_xent(logits, labels, d_got)
    d_want = np.empty((rows, cols))
    loss_ref, correct_ref = ref.softmax_xent(logits.astype(np.float64), labels, d_want)
    assert_close(loss, loss_ref, "softmax_xent", "loss")
    assert_close(d_got, d_want, "softmax_xent", "dlogits")
    assert correct == correct_ref
    assert_close(d_got.sum(axis=1), np.zeros(rows), "softmax_xent", "rows of dlogits sum to 0")
    # Without dlogits it still returns the loss.
    assert backend.softmax_xent(logits, labels) == (loss, correct)
