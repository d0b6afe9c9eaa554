"""Tiled SGEMM: ``c = epilogue(alpha * op(a) @ op(b) + beta * c)``.

Each block computes BM x BN tiles of ``c`` (grid-stride over the tiles). Per step along K it
stages a BK-deep slice of op(a) and op(b) in shared memory, loaded so that neighbouring threads
read neighbouring addresses whichever way the operand is stored, and every thread accumulates a
TM x TN register block. Thread (tx, ty) owns rows ty + i*TY and columns tx + j*TX of the tile, so
its stores to ``c`` are coalesced.

A product with too few output tiles to fill the GPU (the weight gradients: a few hundred outputs
over tens of thousands of rows) is split along K: each of S blocks per tile sums one fixed chunk of
K into ``partial[s]``, and a second kernel adds the S partials in order. The partition depends only
on the shapes and the launch target, so the result is the same on every run and every GPU.

The epilogue fuses what the layers need after a GEMM: a bias row, a ReLU, and a ReLU-derivative
mask (``c *= mask > 0``, the backward of a fused ReLU).
"""

from __future__ import annotations

import functools

from numba import cuda, float32

from .launch import COMPILED, grid, grid_blocks, launch, launcher, chunk_to_fill, target
from .reduce import launch_column_sums

# A split-K chunk is at least this many slices deep, so that a block's multiply-adds outweigh
# writing its partial tile and reading it back.
MIN_SPLIT_SLICES = 2

EPILOGUE = "float32, float32, float32[::1], int32, int32, float32[:, ::1], int32"
SIGNATURE = f"void(float32[:, ::1], float32[:, ::1], float32[:, ::1], int32, int32, {EPILOGUE})"
SPLIT_SIGNATURE = "void(float32[:, ::1], float32[:, ::1], float32[:, :, ::1], int32, int32, int32)"
FINISH_SIGNATURE = f"void(float32[:, :, ::1], float32[:, ::1], {EPILOGUE})"


def _named(name):
    """Give a kernel built in a loop its own name (for messages, the recorder and the PTX test)."""

    def rename(fn):
        fn.__name__ = fn.__qualname__ = name
        return fn

    return rename


@cuda.jit(device=True)
def _epilogue(v, c, m, n, alpha, beta, bias, has_bias, relu, mask, has_mask):
    """c[m, n] = the epilogue of the product entry ``v``."""
    zero = float32(0.0)
    v = alpha * v
    if beta != zero:  # beta == 0 never reads c, as in BLAS
        v += beta * c[m, n]
    if has_bias:
        v += bias[n]
    if relu and v < zero:
        v = zero
    if has_mask and not mask[m, n] > zero:
        v = zero
    c[m, n] = v


def _unrolled_slice_product(BK, TM, TN, TX, TY):
    """``acc += As[kk] (x) Bs[kk]`` for kk in 0..BK-1, with the kk loop written out: Numba has no
    unroll pragma, and LLVM leaves a 16-trip loop rolled, paying its index arithmetic and branch
    on every TM x TN multiply-adds. The i and j loops (constant 4 or 2 trips) LLVM unrolls itself.
    """
    lines = ["def slice_product(As, Bs, acc, a_reg, b_reg, tx, ty):"]
    for kk in range(BK):
        lines += [f"    for i in range({TM}):", f"        a_reg[i] = As[{kk}, ty + i * {TY}]",
                  f"    for j in range({TN}):", f"        b_reg[j] = Bs[{kk}, tx + j * {TX}]",
                  f"    for i in range({TM}):", f"        for j in range({TN}):",
                  "            acc[i, j] += a_reg[i] * b_reg[j]"]
    namespace: dict = {}
    exec(compile("\n".join(lines) + "\n", f"<sgemm slice {BK}x{TM}x{TN}>", "exec"), namespace)  # noqa: S102
    return namespace["slice_product"]


def _tiled_kernels(tile):
    """The whole-K and the split-K SGEMM kernels for one ``(BM, BN, BK, TM, TN)`` tile shape."""
    BM, BN, BK, TM, TN = tile
    TX, TY = BN // TN, BM // TM
    NTHREADS = TX * TY
    LOADS_A = BK * BM // NTHREADS
    LOADS_B = BK * BN // NTHREADS
    assert LOADS_A * NTHREADS == BK * BM and LOADS_B * NTHREADS == BK * BN, tile

    slice_product = cuda.jit(device=True)(_unrolled_slice_product(BK, TM, TN, TX, TY))

    @cuda.jit(device=True)
    def tile_product(a, b, trans_a, trans_b, m0, n0, k_lo, k_hi, As, Bs, acc, a_reg, b_reg):
        """acc = op(a)[m0:m0+BM, k_lo:k_hi] @ op(b)[k_lo:k_hi, n0:n0+BN] (this thread's TM x TN
        part); k_lo is a multiple of BK, entries past the matrix edges count as zero."""
        m_size = a.shape[1] if trans_a else a.shape[0]
        n_size = b.shape[0] if trans_b else b.shape[1]
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        t = ty * TX + tx
        zero = float32(0.0)
        for i in range(TM):
            for j in range(TN):
                acc[i, j] = zero
        for k0 in range(k_lo, k_hi, BK):
            for e in range(LOADS_A):
                idx = t + e * NTHREADS
                if trans_a:  # a is (K, M): run along m
                    kk, mm = idx // BM, idx % BM
                    k, m = k0 + kk, m0 + mm
                    As[kk, mm] = a[k, m] if (m < m_size and k < k_hi) else zero
                else:  # a is (M, K): run along k
                    kk, mm = idx % BK, idx // BK
                    k, m = k0 + kk, m0 + mm
                    As[kk, mm] = a[m, k] if (m < m_size and k < k_hi) else zero
            for e in range(LOADS_B):
                idx = t + e * NTHREADS
                if trans_b:  # b is (N, K): run along k
                    kk, nn = idx % BK, idx // BK
                    k, n = k0 + kk, n0 + nn
                    Bs[kk, nn] = b[n, k] if (n < n_size and k < k_hi) else zero
                else:  # b is (K, N): run along n
                    kk, nn = idx // BN, idx % BN
                    k, n = k0 + kk, n0 + nn
                    Bs[kk, nn] = b[k, n] if (n < n_size and k < k_hi) else zero
            cuda.syncthreads()
            slice_product(As, Bs, acc, a_reg, b_reg, tx, ty)
            cuda.syncthreads()

    @cuda.jit(SIGNATURE)
    @_named(f"sgemm_{BM}x{BN}")
    def sgemm(a, b, c, trans_a, trans_b, alpha, beta, bias, has_bias, relu, mask, has_mask):
        As = cuda.shared.array((BK, BM), float32)
        Bs = cuda.shared.array((BK, BN), float32)
        acc = cuda.local.array((TM, TN), float32)
        a_reg = cuda.local.array(TM, float32)
        b_reg = cuda.local.array(TN, float32)
        m_size, n_size = c.shape[0], c.shape[1]
        k_size = a.shape[0] if trans_a else a.shape[1]
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        tiles_n = (n_size + BN - 1) // BN
        tiles = ((m_size + BM - 1) // BM) * tiles_n
        for tile in range(cuda.blockIdx.x, tiles, cuda.gridDim.x):
            m0 = (tile // tiles_n) * BM
            n0 = (tile % tiles_n) * BN
            tile_product(a, b, trans_a, trans_b, m0, n0, 0, k_size, As, Bs, acc, a_reg, b_reg)
            for i in range(TM):
                m = m0 + ty + i * TY
                if m < m_size:
                    for j in range(TN):
                        n = n0 + tx + j * TX
                        if n < n_size:
                            _epilogue(acc[i, j], c, m, n, alpha, beta, bias, has_bias, relu, mask, has_mask)

    @cuda.jit(SPLIT_SIGNATURE)
    @_named(f"sgemm_split_k_{BM}x{BN}")
    def sgemm_split_k(a, b, partial, trans_a, trans_b, k_chunk):
        """partial[s] = op(a)[:, s*k_chunk : (s+1)*k_chunk] @ op(b)[s*k_chunk : (s+1)*k_chunk, :],
        one (tile, s) pair per block, grid-stride."""
        As = cuda.shared.array((BK, BM), float32)
        Bs = cuda.shared.array((BK, BN), float32)
        acc = cuda.local.array((TM, TN), float32)
        a_reg = cuda.local.array(TM, float32)
        b_reg = cuda.local.array(TN, float32)
        splits, m_size, n_size = partial.shape[0], partial.shape[1], partial.shape[2]
        k_size = a.shape[0] if trans_a else a.shape[1]
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        tiles_n = (n_size + BN - 1) // BN
        tiles = ((m_size + BM - 1) // BM) * tiles_n
        for work in range(cuda.blockIdx.x, tiles * splits, cuda.gridDim.x):
            tile, s = work // splits, work % splits
            m0 = (tile // tiles_n) * BM
            n0 = (tile % tiles_n) * BN
            k_lo = s * k_chunk
            tile_product(a, b, trans_a, trans_b, m0, n0, k_lo, min(k_size, k_lo + k_chunk), As, Bs, acc, a_reg,
                         b_reg)
            for i in range(TM):
                m = m0 + ty + i * TY
                if m < m_size:
                    for j in range(TN):
                        n = n0 + tx + j * TX
                        if n < n_size:
                            partial[s, m, n] = acc[i, j]

    return sgemm, sgemm_split_k


# tile shape -> (whole-K kernel, split-K kernel), for every tile the compiled target may pick.
KERNELS_BY_TILE = {tile: _tiled_kernels(tile) for tile in COMPILED.gemm_tiles}


@cuda.jit(FINISH_SIGNATURE)
def sgemm_split_k_finish(partial, c, alpha, beta, bias, has_bias, relu, mask, has_mask):
    """c = epilogue(sum over s of partial[s]), the partials added in order."""
    splits, n_size = partial.shape[0], partial.shape[2]
    for e in range(cuda.grid(1), c.size, cuda.gridsize(1)):
        m, n = e // n_size, e % n_size
        v = float32(0.0)
        for s in range(splits):
            v += partial[s, m, n]
        _epilogue(v, c, m, n, alpha, beta, bias, has_bias, relu, mask, has_mask)


def gemm_plan(m: int, n: int, k: int) -> tuple[tuple, int, int]:
    """(tile, splits, k_chunk) for an m x n x k product on the current launch target.

    The largest tile whose grid, split along K where needed, fills the GPU; failing that, the tile
    giving the most blocks. No split ((1, k)) when the output tiles fill the GPU by themselves or
    the product is too small to be worth a second launch. Cached: a training step asks for the
    same few shapes every step.
    """
    return _plan(m, n, k, target())


@functools.lru_cache(maxsize=256)
def _plan(m: int, n: int, k: int, t) -> tuple[tuple, int, int]:
    if t.latency_bound(4 * (m * k + k * n + m * n), m * n * k):
        return t.gemm_tiles[0], 1, k
    best = None
    for tile in t.gemm_tiles:
        bm, bn, bk = tile[:3]
        tiles, slices = -(-m // bm) * -(-n // bn), -(-k // bk)
        chunk = chunk_to_fill(tiles, slices, MIN_SPLIT_SLICES)
        plan = (tile, 1, k) if chunk >= slices else (tile, -(-slices // chunk), chunk * bk)
        blocks = tiles * plan[1]
        if blocks >= t.fill_blocks:
            return plan
        if best is None or blocks > best[0]:
            best = (blocks, plan)
    return best[1]


def launch_sgemm(be, a, b, c, trans_a, trans_b, alpha, beta, bias, has_bias, relu, mask, has_mask):
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    tile, splits, chunk = gemm_plan(m, n, k)
    bm, bn, _, tm, tn = tile
    tiles, threads = -(-m // bm) * -(-n // bn), (bn // tn, bm // tm)
    whole_k, split_k = KERNELS_BY_TILE.get(tile) or KERNELS_BY_TILE[COMPILED.gemm_tiles[0]]  # a dry run's tile
    if splits == 1:
        launch(whole_k, grid_blocks(tiles), threads, a, b, c, trans_a, trans_b, alpha, beta, bias, has_bias, relu,
               mask, has_mask, macs=m * n * k, name=f"sgemm_{bm}x{bn}")
        return
    partial = be._workspace("split_k", (splits, m, n))
    launch(split_k, grid_blocks(tiles * splits), threads, a, b, partial, trans_a, trans_b, chunk, macs=m * n * k,
           name=f"sgemm_split_k_{bm}x{bn}")
    launch(sgemm_split_k_finish, *grid(m * n), partial, c, alpha, beta, bias, has_bias, relu, mask, has_mask)


def sgemm_into(be, a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, bias=None, relu=False, mask=None):
    """``out = alpha * op(a) @ op(b) + beta * out`` with the optional bias, ReLU and ReLU-mask
    epilogue, for every launcher that multiplies (backend arrays, already checked)."""
    if out.shape[0] and out.shape[1]:
        launch_sgemm(be, a, b, out, int(trans_a), int(trans_b), alpha, beta, be._no_vec if bias is None else bias,
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
        launch_column_sums(be, dy, db, alpha, beta)
