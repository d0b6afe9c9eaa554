"""Tiled SGEMM: ``c = epilogue(alpha * op(a) @ op(b) + beta * c)``.

Each block computes BM x BN tiles of ``c`` (grid-stride over the tiles). Per step along K it
stages a BK-deep slice of op(a) and op(b) in shared memory, loaded so that neighbouring threads
read neighbouring addresses whichever way the operand is stored, and every thread accumulates a
TM x TN register block. Thread (tx, ty) owns rows ty + i*TY and columns tx + j*TX of the tile:
its shared-memory reads of Bs are consecutive across a warp (no bank conflicts; As reads are
broadcasts) and its stores to ``c`` are coalesced.

The epilogue fuses what the layers need after a GEMM: a bias row, a ReLU, and a ReLU-derivative
mask (``c *= mask > 0``, the backward of a fused ReLU).
"""

from __future__ import annotations

from numba import cuda, float32

from .launch import SIMULATOR, grid_blocks, launcher
from .reduce import column_sums, launch_columns

if SIMULATOR:  # the same code on tiles small enough for Python threads; still several per block
    BM, BN, BK, TM, TN = 16, 16, 16, 4, 4
else:  # 64 x 64 tiles, 16 x 16 threads, 4 x 4 outputs per thread
    BM, BN, BK, TM, TN = 64, 64, 16, 4, 4
TX, TY = BN // TN, BM // TM
NTHREADS = TX * TY
LOADS_A = BK * BM // NTHREADS
LOADS_B = BK * BN // NTHREADS
assert LOADS_A * NTHREADS == BK * BM and LOADS_B * NTHREADS == BK * BN

SIGNATURE = ("void(float32[:, ::1], float32[:, ::1], float32[:, ::1], int32, int32, float32, float32, "
             "float32[::1], int32, int32, float32[:, ::1], int32)")


@cuda.jit(SIGNATURE)
def sgemm(a, b, c, trans_a, trans_b, alpha, beta, bias, has_bias, relu, mask, has_mask):
    As = cuda.shared.array((BK, BM), float32)
    Bs = cuda.shared.array((BK, BN), float32)
    acc = cuda.local.array((TM, TN), float32)
    a_reg = cuda.local.array(TM, float32)
    b_reg = cuda.local.array(TN, float32)
    m_size, n_size = c.shape[0], c.shape[1]
    k_size = a.shape[0] if trans_a else a.shape[1]
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    t = ty * TX + tx
    tiles_n = (n_size + BN - 1) // BN
    tiles = ((m_size + BM - 1) // BM) * tiles_n
    zero = float32(0.0)
    for tile in range(cuda.blockIdx.x, tiles, cuda.gridDim.x):
        m0 = (tile // tiles_n) * BM
        n0 = (tile % tiles_n) * BN
        for i in range(TM):
            for j in range(TN):
                acc[i, j] = zero
        for k0 in range(0, k_size, BK):
            for e in range(LOADS_A):
                idx = t + e * NTHREADS
                if trans_a:  # a is (K, M): run along m
                    kk, mm = idx // BM, idx % BM
                    k, m = k0 + kk, m0 + mm
                    As[kk, mm] = a[k, m] if (m < m_size and k < k_size) else zero
                else:  # a is (M, K): run along k
                    kk, mm = idx % BK, idx // BK
                    k, m = k0 + kk, m0 + mm
                    As[kk, mm] = a[m, k] if (m < m_size and k < k_size) else zero
            for e in range(LOADS_B):
                idx = t + e * NTHREADS
                if trans_b:  # b is (N, K): run along k
                    kk, nn = idx % BK, idx // BK
                    k, n = k0 + kk, n0 + nn
                    Bs[kk, nn] = b[n, k] if (n < n_size and k < k_size) else zero
                else:  # b is (K, N): run along n
                    kk, nn = idx // BN, idx % BN
                    k, n = k0 + kk, n0 + nn
                    Bs[kk, nn] = b[k, n] if (n < n_size and k < k_size) else zero
            cuda.syncthreads()
            for kk in range(BK):
                for i in range(TM):
                    a_reg[i] = As[kk, ty + i * TY]
                for j in range(TN):
                    b_reg[j] = Bs[kk, tx + j * TX]
                for i in range(TM):
                    for j in range(TN):
                        acc[i, j] += a_reg[i] * b_reg[j]
            cuda.syncthreads()
        for i in range(TM):
            m = m0 + ty + i * TY
            if m < m_size:
                for j in range(TN):
                    n = n0 + tx + j * TX
                    if n < n_size:
                        v = alpha * acc[i, j]
                        if beta != zero:  # beta == 0 never reads c, as in BLAS
                            v += beta * c[m, n]
                        if has_bias:
                            v += bias[n]
                        if relu and v < zero:
                            v = zero
                        if has_mask and not mask[m, n] > zero:
                            v = zero
                        c[m, n] = v


def launch_sgemm(a, b, c, trans_a, trans_b, alpha, beta, bias, has_bias, relu, mask, has_mask):
    tiles = -(-c.shape[0] // BM) * -(-c.shape[1] // BN)
    sgemm[grid_blocks(tiles), (TX, TY)](a, b, c, trans_a, trans_b, alpha, beta, bias, has_bias, relu, mask,
                                        has_mask)


def sgemm_into(be, a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, bias=None, relu=False, mask=None):
    """``out = alpha * op(a) @ op(b) + beta * out`` with the optional bias, ReLU and ReLU-mask
    epilogue, for every launcher that multiplies (backend arrays, already checked)."""
    if out.shape[0] and out.shape[1]:
        launch_sgemm(a, b, out, int(trans_a), int(trans_b), alpha, beta, be._no_vec if bias is None else bias,
                     int(bias is not None), int(relu), be._no_mat if mask is None else mask, int(mask is not None))
    return out


# -- the contract's kernels ---------------------------------------------------------------------------
@launcher("gemm", method="_gemm")
def _gemm(be, a, b, out, trans_a, trans_b, alpha, beta):
    return sgemm_into(be, a, b, out, trans_a, trans_b, alpha, beta)


@launcher("linear_forward")
def _linear_forward(be, x, w, b, out, relu=False):
    return sgemm_into(be, x, w, out, bias=b, relu=relu)


@launcher("linear_backward_input")
def _linear_backward_input(be, dy, w, y, out):
    return sgemm_into(be, dy, w, out, trans_b=True, mask=y)


@launcher("linear_weight_grad")
def _linear_weight_grad(be, x, dy, dw, db, alpha=1.0, beta=0.0):
    sgemm_into(be, x, dy, dw, trans_a=True, alpha=alpha, beta=beta)
    if dy.shape[1]:
        launch_columns(column_sums, dy.shape[1], dy, db, alpha, beta)
