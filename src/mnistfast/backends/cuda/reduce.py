"""Kernels that sum: column sums (bias gradient, batch-norm statistics), softmax + cross-entropy
with its loss totals kept on the device, global average pooling and the squared norm.

Sums run in a fixed order (per-thread strides, then a shared-memory tree), so results do not
change from run to run; statistics accumulate in float64 as the C++ kernels do.
"""

from __future__ import annotations

import math

from numba import cuda, float32, float64

import numpy as np

from .elementwise import batchnorm_apply, batchnorm_input_grad
from .launch import COMPILED, REDUCE_THREADS, grid, grid_blocks, launch, launcher, run, chunk_to_fill, target

# Column kernels: a block is CX columns x CY row groups; each thread strides over the rows of its
# column, then the CY partials meet in shared memory. Reads of a row are coalesced across tx.
CX, CY = COMPILED.column_block
# A column sum too narrow to fill the GPU is cut into row chunks at least this long, one block per
# (columns, chunk) pair, whose partial sums a second kernel adds in order.
MIN_CHUNK_ROWS = 64


@cuda.jit(device=True)
def _tree_sum_over_y(part, tx, ty):
    """Sum part[:, tx] over the CY row groups; every thread of the column gets the total."""
    cuda.syncthreads()
    half = CY // 2
    while half > 0:
        if ty < half:
            part[ty, tx] += part[ty + half, tx]
        cuda.syncthreads()
        half //= 2
    total = part[0, tx]
    cuda.syncthreads()  # part is reused by the caller's next sum
    return total


@cuda.jit("void(float32[:, ::1], float32[::1], float32, float32)")
def column_sums(x, out, alpha, beta):
    """out = alpha * x.sum(axis=0) + beta * out (beta == 0 never reads out)."""
    part = cuda.shared.array((CY, CX), float64)
    rows, cols = x.shape[0], x.shape[1]
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    for c0 in range(cuda.blockIdx.x * CX, cols, cuda.gridDim.x * CX):
        c = c0 + tx
        s = 0.0
        if c < cols:
            for r in range(ty, rows, CY):
                s += x[r, c]
        part[ty, tx] = s
        total = _tree_sum_over_y(part, tx, ty)
        if ty == 0 and c < cols:
            if beta == 0:
                out[c] = alpha * total
            else:
                out[c] = alpha * total + beta * out[c]


@cuda.jit("void(float32[:, ::1], float32[::1], float32[::1], float32[::1], float32[::1], float32, float32)")
def batchnorm_stats(x, save_mean, save_invstd, running_mean, running_var, eps, momentum):
    """Per column: the batch mean and 1/sqrt(var + eps) (two passes), and the running statistics."""
    part = cuda.shared.array((CY, CX), float64)
    rows, cols = x.shape[0], x.shape[1]
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    for c0 in range(cuda.blockIdx.x * CX, cols, cuda.gridDim.x * CX):
        c = c0 + tx
        s = 0.0
        if c < cols:
            for r in range(ty, rows, CY):
                s += x[r, c]
        part[ty, tx] = s
        mean = _tree_sum_over_y(part, tx, ty) / rows
        s = 0.0
        if c < cols:
            for r in range(ty, rows, CY):
                d = x[r, c] - mean
                s += d * d
        part[ty, tx] = s
        var = _tree_sum_over_y(part, tx, ty) / rows
        if ty == 0 and c < cols:
            save_mean[c] = mean
            save_invstd[c] = 1.0 / math.sqrt(var + eps)
            unbiased = var * rows / (rows - 1) if rows > 1 else var
            running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mean
            running_var[c] = (1.0 - momentum) * running_var[c] + momentum * unbiased


@cuda.jit("void(float32[:, ::1], float32[:, ::1], float32[::1], float32[::1], float32[::1], float32[::1])")
def batchnorm_grad_sums(dy, x, save_mean, save_invstd, dgamma, dbeta):
    """dbeta = sum(dy), dgamma = sum(dy * xhat) per column."""
    part = cuda.shared.array((CY, CX), float64)
    rows, cols = x.shape[0], x.shape[1]
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    for c0 in range(cuda.blockIdx.x * CX, cols, cuda.gridDim.x * CX):
        c = c0 + tx
        s_dy = 0.0
        s_dyx = 0.0
        if c < cols:
            mean, invstd = save_mean[c], save_invstd[c]
            for r in range(ty, rows, CY):
                g = dy[r, c]
                s_dy += g
                s_dyx += g * ((x[r, c] - mean) * invstd)
        part[ty, tx] = s_dy
        total_dy = _tree_sum_over_y(part, tx, ty)
        part[ty, tx] = s_dyx
        total_dyx = _tree_sum_over_y(part, tx, ty)
        if ty == 0 and c < cols:
            dbeta[c] = total_dy
            dgamma[c] = total_dyx


@cuda.jit("void(float32[:, ::1], float64[:, ::1], int32)")
def column_partial_sums(x, partial, chunk_rows):
    """partial[k, c] = x[k*chunk_rows : (k+1)*chunk_rows, c].sum(), one (column block, chunk) pair
    per block, grid-stride."""
    part = cuda.shared.array((CY, CX), float64)
    rows, cols = x.shape[0], x.shape[1]
    chunks = partial.shape[0]
    col_blocks = (cols + CX - 1) // CX
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    for work in range(cuda.blockIdx.x, col_blocks * chunks, cuda.gridDim.x):
        k = work // col_blocks
        c = (work % col_blocks) * CX + tx
        lo = k * chunk_rows
        s = 0.0
        if c < cols:
            for r in range(lo + ty, min(rows, lo + chunk_rows), CY):
                s += x[r, c]
        part[ty, tx] = s
        total = _tree_sum_over_y(part, tx, ty)
        if ty == 0 and c < cols:
            partial[k, c] = total


@cuda.jit("void(float64[:, ::1], float32[::1], float32, float32)")
def column_sums_finish(partial, out, alpha, beta):
    """out = alpha * partial.sum(axis=0) + beta * out, the chunks added in order."""
    for c in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        s = 0.0
        for k in range(partial.shape[0]):
            s += partial[k, c]
        out[c] = alpha * s if beta == 0 else alpha * s + beta * out[c]


def launch_columns(kernel, cols, *args):
    cx, cy = target().column_block
    launch(kernel, grid_blocks(-(-cols // cx)), (cx, cy), *args)


def launch_column_sums(be, x, out, alpha=1.0, beta=0.0):
    """``out = alpha * x.sum(axis=0) + beta * out``; in row chunks when the columns alone would
    leave the GPU idle."""
    rows, cols = x.shape
    cx, cy = target().column_block
    col_blocks = -(-cols // cx)
    small = target().latency_bound(x.size * x.dtype.itemsize)
    chunk_rows = rows if small else chunk_to_fill(col_blocks, rows, MIN_CHUNK_ROWS)
    if chunk_rows >= rows:
        launch_columns(column_sums, cols, x, out, alpha, beta)
        return
    chunks = -(-rows // chunk_rows)
    partial = be._workspace("column_partials", (chunks, cols), np.float64)
    launch(column_partial_sums, grid_blocks(col_blocks * chunks), (cx, cy), x, partial, chunk_rows)
    launch(column_sums_finish, *grid(cols), partial, out, alpha, beta)


@cuda.jit("void(float32[:, ::1], int64[::1], float32[:, ::1], int32, float64[::1], float64[::1])")
def softmax_xent_rows(logits, labels, dlogits, want_grad, row_loss, row_correct):
    """Per row: the loss log(sum exp(z - max)) - (z[label] - max), whether argmax hits the label,
    and (softmax - onehot) / rows."""
    rows, cols = logits.shape[0], logits.shape[1]
    inv_rows = float32(1.0) / float32(rows)
    for r in range(cuda.grid(1), rows, cuda.gridsize(1)):
        best, arg = logits[r, 0], 0
        for j in range(1, cols):
            if logits[r, j] > best:
                best, arg = logits[r, j], j
        s = float32(0.0)
        for j in range(cols):
            s += math.exp(logits[r, j] - best)
        label = labels[r]
        row_loss[r] = math.log(float64(s)) - float64(logits[r, label] - best)
        row_correct[r] = 1.0 if arg == label else 0.0
        if want_grad:
            inv_s = float32(1.0) / s
            for j in range(cols):
                p = math.exp(logits[r, j] - best) * inv_s
                dlogits[r, j] = ((p - float32(1.0)) if j == label else p) * inv_rows


@cuda.jit("void(float64[::1], float64[::1], int32, float64[::1])")
def accumulate_totals(row_loss, row_correct, rows, totals):
    """One block: totals += (sum of losses, correct count); totals[2:] = this batch's mean loss and
    count. The host reads totals when it wants them, not every step."""
    part_loss = cuda.shared.array(REDUCE_THREADS, float64)
    part_correct = cuda.shared.array(REDUCE_THREADS, float64)
    t = cuda.threadIdx.x
    s_loss = 0.0
    s_correct = 0.0
    for r in range(t, rows, REDUCE_THREADS):
        s_loss += row_loss[r]
        s_correct += row_correct[r]
    part_loss[t] = s_loss
    part_correct[t] = s_correct
    cuda.syncthreads()
    half = REDUCE_THREADS // 2
    while half > 0:
        if t < half:
            part_loss[t] += part_loss[t + half]
            part_correct[t] += part_correct[t + half]
        cuda.syncthreads()
        half //= 2
    if t == 0:
        totals[0] += part_loss[0]
        totals[1] += part_correct[0]
        totals[2] = part_loss[0] / rows
        totals[3] = part_correct[0]


@cuda.jit("void(float32[::1], float64[::1])")
def sum_squares_partials(x, partials):
    """partials[block] = the sum of x[i]^2 over the block's grid-stride elements."""
    part = cuda.shared.array(REDUCE_THREADS, float64)
    t = cuda.threadIdx.x
    s = 0.0
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = float64(x[i])
        s += v * v
    part[t] = s
    cuda.syncthreads()
    half = REDUCE_THREADS // 2
    while half > 0:
        if t < half:
            part[t] += part[t + half]
        cuda.syncthreads()
        half //= 2
    if t == 0:
        partials[cuda.blockIdx.x] = part[0]


@cuda.jit("void(float64[::1], float64[::1])")
def sum_vector(partials, out):
    """One block: out[0] = sum(partials)."""
    part = cuda.shared.array(REDUCE_THREADS, float64)
    t = cuda.threadIdx.x
    s = 0.0
    for i in range(t, partials.size, REDUCE_THREADS):
        s += partials[i]
    part[t] = s
    cuda.syncthreads()
    half = REDUCE_THREADS // 2
    while half > 0:
        if t < half:
            part[t] += part[t + half]
        cuda.syncthreads()
        half //= 2
    if t == 0:
        out[0] = part[0]


@cuda.jit("void(float32[:, :, :, ::1], float32[:, ::1])")
def global_avgpool_forward(x, out):
    n_img, h, w, c = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
    inv = 1.0 / (h * w)
    for e in range(cuda.grid(1), n_img * c, cuda.gridsize(1)):
        n, ch = e // c, e % c
        s = 0.0
        for y in range(h):
            for xx in range(w):
                s += x[n, y, xx, ch]
        out[n, ch] = s * inv


# -- the contract's kernels ---------------------------------------------------------------------------
@launcher("bias_grad")
def _bias_grad(be, dy, out):
    launch_column_sums(be, dy, out)
    return out


@launcher("xent_accumulate")
def _xent_accumulate(be, logits, labels, dlogits, totals):
    rows = logits.shape[0]
    row_loss = be._workspace("row_loss", (rows,), np.float64)
    row_correct = be._workspace("row_correct", (rows,), np.float64)
    run(softmax_xent_rows, rows, logits, labels, be._no_mat if dlogits is None else dlogits, int(dlogits is not None),
        row_loss, row_correct)
    launch(accumulate_totals, 1, target().reduce_threads, row_loss, row_correct, rows, totals)


@launcher("softmax_xent")
def _softmax_xent(be, logits, labels, dlogits=None):
    """(mean loss, correct count); reads them back, so it waits for the GPU."""
    totals = be._workspace("xent_totals", (4,), np.float64)
    be.copy_from_host(totals, np.zeros(4))
    be.xent_accumulate(logits, labels, dlogits, totals)
    t = totals.copy_to_host()
    return float(t[2]), int(t[3])


@launcher("global_avgpool_forward")
def _global_avgpool_forward(be, x, out):
    run(global_avgpool_forward, x.shape[0] * x.shape[3], x, out)
    return out


@launcher("batchnorm_forward_train")
def _batchnorm_forward_train(be, x, gamma, beta, y, save_mean, save_invstd, running_mean, running_var, eps, momentum):
    launch_columns(batchnorm_stats, x.shape[1], x, save_mean, save_invstd, running_mean, running_var, eps, momentum)
    run(batchnorm_apply, x.shape[0] * x.shape[1], x, gamma, beta, save_mean, save_invstd, y, eps, 0)
    return y


@launcher("batchnorm_backward")
def _batchnorm_backward(be, dy, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta):
    launch_columns(batchnorm_grad_sums, x.shape[1], dy, x, save_mean, save_invstd, dgamma, dbeta)
    run(batchnorm_input_grad, x.shape[0] * x.shape[1], dy, x, gamma, save_mean, save_invstd, dgamma, dbeta, dx)


@launcher("sum_squares")
def _sum_squares(be, x):
    threads = target().reduce_threads
    blocks = grid_blocks(-(-x.shape[0] // threads))
    partials = be._workspace("ss_partials", (blocks,), np.float64)
    total = be._workspace("ss_total", (1,), np.float64)
    if x.shape[0] == 0:
        return 0.0
    launch(sum_squares_partials, blocks, threads, x, partials)
    launch(sum_vector, 1, threads, partials, total)
    return float(total.copy_to_host()[0])
