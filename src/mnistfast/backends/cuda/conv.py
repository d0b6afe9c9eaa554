"""Convolution as im2col + the tiled SGEMM, and max pooling, on NHWC images.

Forward: ``cols = im2col(x)`` (one row per output pixel, one column per (ky, kx, c) tap) and
``out = cols @ w`` with the bias and ReLU in the GEMM's epilogue. Backward: ``dw = cols.T @ dy``,
and ``dx = col2im(dy @ w.T)``, where col2im is a gather: each input pixel sums the patch entries
that read it, in a fixed order, so no atomics and the same result every run.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32

from ..contract import conv_geometry
from .gemm import sgemm_into
from .launch import launcher, run

# Im2col patches are built for a chunk of images at a time, capped at this many floats (64 MiB),
# so that a large evaluation batch does not allocate a patch matrix of gigabytes.
WORKSPACE_FLOATS = 1 << 24


@cuda.jit(device=True)
def nhwc_index(e, h, w, c):
    """(n, y, x, ch) of flat element ``e`` of an (N, h, w, c) array."""
    n = e // (h * w * c)
    r = e - n * h * w * c
    y = r // (w * c)
    r -= y * w * c
    x = r // c
    return n, y, x, r - x * c


@cuda.jit("void(float32[:, :, :, ::1], float32[:, ::1], int32, int32, int32, int32, int32, int32, int32, int32)")
def im2col(x, cols, out_h, out_w, kh, kw, sh, sw, ph, pw):
    """cols[p, (ky * kw + kx) * c + ch] = x[n, oy*sh - ph + ky, ox*sw - pw + kx, ch] (zero outside)
    for output pixel p = (n * out_h + oy) * out_w + ox."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    taps = cols.shape[1]
    for e in range(cuda.grid(1), cols.size, cuda.gridsize(1)):
        i = e // taps
        t = e - i * taps
        n = i // (out_h * out_w)
        q = i - n * out_h * out_w
        oy = q // out_w
        ox = q - oy * out_w
        tap = t // c
        ch = t - tap * c
        ky = tap // kw
        kx = tap - ky * kw
        iy = oy * sh - ph + ky
        ix = ox * sw - pw + kx
        cols[i, t] = x[n, iy, ix, ch] if (0 <= iy < h and 0 <= ix < w) else float32(0.0)


@cuda.jit("void(float32[:, ::1], float32[:, :, :, ::1], int32, int32, int32, int32, int32, int32, int32, int32)")
def col2im(g, dx, out_h, out_w, kh, kw, sh, sw, ph, pw):
    """dx[n, iy, ix, ch] = sum of g[(n, oy, ox), (ky, kx, ch)] over the windows that cover it."""
    h, w, c = dx.shape[1], dx.shape[2], dx.shape[3]
    for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        n, iy, ix, ch = nhwc_index(e, h, w, c)
        s = float32(0.0)
        for ky in range(kh):
            ty = iy + ph - ky
            if ty >= 0 and ty % sh == 0 and ty // sh < out_h:
                oy = ty // sh
                for kx in range(kw):
                    tx = ix + pw - kx
                    if tx >= 0 and tx % sw == 0 and tx // sw < out_w:
                        ox = tx // sw
                        s += g[(n * out_h + oy) * out_w + ox, (ky * kw + kx) * c + ch]
        dx[n, iy, ix, ch] = s


@cuda.jit("void(float32[:, :, :, ::1], float32[:, :, :, ::1], int32[:, :, :, ::1], int32)")
def maxpool_forward(x, out, argmax, pool):
    """The first maximum of each window in row-major order, and its flat index in the image."""
    w, c = x.shape[2], x.shape[3]
    oh, ow = out.shape[1], out.shape[2]
    for e in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        n, oy, ox, ch = nhwc_index(e, oh, ow, c)
        best = x[n, oy * pool, ox * pool, ch]
        at = (oy * pool * w + ox * pool) * c + ch
        for ky in range(pool):
            for kx in range(pool):
                v = x[n, oy * pool + ky, ox * pool + kx, ch]
                if v > best:
                    best = v
                    at = ((oy * pool + ky) * w + ox * pool + kx) * c + ch
        out[n, oy, ox, ch] = best
        argmax[n, oy, ox, ch] = at


@cuda.jit("void(float32[:, :, :, ::1], int32[:, :, :, ::1], float32[:, :, :, ::1], float32[:, :, :, ::1], int32, int32)")
def maxpool_backward(dy, argmax, out, dx, pool, relu_mask):
    """Each input element takes its window's gradient if it was the window's maximum; zero else.
    relu_mask: also zero where the pooled value is not positive (a fused ReLU before the pool)."""
    h, w, c = dx.shape[1], dx.shape[2], dx.shape[3]
    oh, ow = dy.shape[1], dy.shape[2]
    for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        n, y, xx, ch = nhwc_index(e, h, w, c)
        oy, ox = y // pool, xx // pool
        v = float32(0.0)
        if oy < oh and ox < ow and argmax[n, oy, ox, ch] == (y * w + xx) * c + ch:
            if not relu_mask or out[n, oy, ox, ch] > float32(0.0):
                v = dy[n, oy, ox, ch]
        dx[n, y, xx, ch] = v


@cuda.jit("void(float32[:, :, :, ::1], float32[:, ::1], float32[:, :, :, ::1])")
def affine_warp(x, params, out):
    """Per-image affine warp with bilinear sampling (see csrc/elementwise/augment.hpp): one output element
    per thread, zero outside the image."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    cx, cy = float32(0.5) * float32(w - 1), float32(0.5) * float32(h - 1)
    for e in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        n, y, xo, ch = nhwc_index(e, h, w, c)
        u, v = float32(xo) - cx, float32(y) - cy
        sx = params[n, 0] * u + params[n, 1] * v + cx + params[n, 4]
        sy = params[n, 2] * u + params[n, 3] * v + cy + params[n, 5]
        fx0, fy0 = math.floor(sx), math.floor(sy)
        ax, ay = sx - fx0, sy - fy0
        x0, y0 = int(fx0), int(fy0)
        acc = float32(0.0)
        for dy in range(2):
            yy = y0 + dy
            if 0 <= yy < h:
                wy = ay if dy else float32(1.0) - ay
                for dx in range(2):
                    xx = x0 + dx
                    if 0 <= xx < w:
                        acc += wy * (ax if dx else float32(1.0) - ax) * x[n, yy, xx, ch]
        out[n, y, xo, ch] = acc


@cuda.jit("void(float32[:, ::1], float32[:, :, :, ::1])")
def global_avgpool_backward(dy, dx):
    h, w, c = dx.shape[1], dx.shape[2], dx.shape[3]
    inv = float32(1.0) / float32(h * w)
    for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        n, y, xx, ch = nhwc_index(e, h, w, c)
        dx[n, y, xx, ch] = dy[n, ch] * inv


# -- the contract's kernels ---------------------------------------------------------------------------
def _geometry(fn, x, oh, ow, kernel, stride, padding):
    """The checked (kh, kw, sh, sw, ph, pw), and the images per chunk that keep the patch matrix
    within the workspace cap."""
    n, h, wd, c = x.shape
    kh, kw, sh, sw, ph, pw, _, _ = conv_geometry(fn, h, wd, oh, ow, kernel, stride, padding)
    per_image = oh * ow * kh * kw * c
    return (kh, kw, sh, sw, ph, pw), max(1, min(n, WORKSPACE_FLOATS // max(1, per_image)))


@launcher("conv2d_forward")
def _conv2d_forward(be, x, w, b, out, kernel, stride, padding, relu=False):
    n, oh, ow, f = out.shape
    geom, chunk = _geometry("conv2d_forward", x, oh, ow, kernel, stride, padding)
    taps = w.shape[0]
    out2 = out.reshape(n * oh * ow, f)
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        cols = be._workspace("cols", ((hi - lo) * oh * ow, taps))
        run(im2col, cols.shape[0] * taps, x[lo:hi], cols, oh, ow, *geom)
        sgemm_into(be, cols, w, out2[lo * oh * ow : hi * oh * ow], bias=b, relu=relu)
    return out


@launcher("conv2d_backward")
def _conv2d_backward(be, dy, x, w, dw, db, dx, kernel, stride, padding):
    n, oh, ow, f = dy.shape
    geom, chunk = _geometry("conv2d_backward", x, oh, ow, kernel, stride, padding)
    taps = w.shape[0]
    dy2 = dy.reshape(n * oh * ow, f)
    if db is not None:
        be.bias_grad(dy2, db)
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        rows = slice(lo * oh * ow, hi * oh * ow)
        cols = be._workspace("cols", ((hi - lo) * oh * ow, taps))
        run(im2col, cols.shape[0] * taps, x[lo:hi], cols, oh, ow, *geom)
        # dw accumulates over the chunks in order (beta = 1 after the first): deterministic.
        sgemm_into(be, cols, dy2[rows], dw, trans_a=True, beta=0.0 if lo == 0 else 1.0)
        if dx is not None:
            sgemm_into(be, dy2[rows], w, cols, trans_b=True)  # the patch gradients, into the same buffer
            dx_chunk = dx[lo:hi]
            run(col2im, int(np.prod(dx_chunk.shape)), cols, dx_chunk, oh, ow, *geom)


@launcher("maxpool_forward")
def _maxpool_forward(be, x, out, argmax, pool):
    run(maxpool_forward, int(np.prod(out.shape)), x, out, argmax, pool)
    return out


@launcher("maxpool_backward")
def _maxpool_backward(be, dy, argmax, out, dx, pool, relu_mask=False):
    run(maxpool_backward, int(np.prod(dx.shape)), dy, argmax, out, dx, pool, int(bool(relu_mask)))
    return dx


@launcher("global_avgpool_backward")
def _global_avgpool_backward(be, dy, dx):
    run(global_avgpool_backward, int(np.prod(dx.shape)), dy, dx)
    return dx


@launcher("affine_warp")
def _affine_warp(be, x, params, out):
    run(affine_warp, int(np.prod(x.shape)), x, params, out)
    return out
