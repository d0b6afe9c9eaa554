"""Every kernel's contract, written once: its arguments, their dtypes and shapes, which it writes and
which may share memory.

``KERNELS`` is the single source. The numpy and cuda backends check their arguments through
:func:`validate`, built from it; the C++ bindings check the same rules in C++, and
``tests/test_contract.py`` calls every backend with each violation the table implies and expects
an error naming the kernel and the argument. The docs build renders the table (:func:`rst_table`),
so a new kernel is documented by its entry here alone.

An array argument is written ``name: dtype[dims] role``:

- dtype: ``float`` (the backend's float type), ``int64``, ``int32`` or ``float64``;
- dims: symbols shared across the arguments (``M``, ``K``, ...), ``*`` for any shape, or
  ``=other`` for the shape of another argument;
- role: ``in`` (read), ``out`` (written, never read unless stated), ``inout`` (read and written);
  ``?`` after the role: may be None; ``~a`` after it: may be the same array as ``a`` (in place),
  though never a partial overlap. Every other pair of an output and another argument must not
  share memory.

Scalar arguments are ``name: type = default``. Relations the symbols cannot state (a GEMM's
transposes, a convolution's geometry) are named rules, listed with the kernel.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

DTYPES = ("float", "int64", "int32", "float64")


@dataclass(frozen=True)
class Arg:
    """One argument of a kernel (see the module docstring for the notation)."""

    name: str
    dtype: str | None = None  # None: a scalar
    dims: tuple = ()
    role: str = "in"
    optional: bool = False
    in_place: tuple = ()
    scalar_type: str = ""
    default: object = None

    @property
    def is_array(self) -> bool:
        return self.dtype is not None

    @property
    def writes(self) -> bool:
        return self.role in ("out", "inout")


@dataclass(frozen=True)
class Kernel:
    """A kernel: its name, what it computes, its arguments and the named shape rules."""

    name: str
    computes: str
    args: tuple
    rules: tuple = ()

    def arg(self, name: str) -> Arg:
        return next(a for a in self.args if a.name == name)


_ARRAY = re.compile(r"^(\w+): (\w+)\[([^\]]*)\] (in|out|inout)(\?)?((?: ~\w+)*)$")
_SCALAR = re.compile(r"^(\w+): (\w+)(?: = (.+))?$")


def _arg(spec: str) -> Arg:
    m = _ARRAY.match(spec)
    if m:
        name, dtype, dims, role, opt, alias = m.groups()
        if dtype not in DTYPES:
            raise ValueError(f"bad dtype in {spec!r}")
        dims = tuple(d.strip() for d in dims.split(",")) if dims.strip() else ()
        return Arg(name, dtype, dims, role, bool(opt), tuple(a[1:] for a in alias.split()))
    m = _SCALAR.match(spec)
    if not m:
        raise ValueError(f"bad argument spec {spec!r}")
    name, kind, default = m.groups()
    return Arg(name, scalar_type=kind, default=None if default is None else eval(default, {}))  # noqa: S307


def _kernel(name, computes, *specs, rules=()):
    return Kernel(name, computes, tuple(_arg(s) for s in specs), tuple(rules))


_CONV_SCALARS = ("kernel: pair", "stride: pair", "padding: pair")

KERNELS = {k.name: k for k in (
    _kernel("gemm", "out = alpha * op(a) @ op(b) + beta * out (op transposes where asked); beta == 0 never reads "
            "out; out None: a new array", "a: float[*] in", "b: float[*] in", "out: float[*] out?", "trans_a: bool = False", "trans_b: bool = False",
            "alpha: float = 1.0", "beta: float = 0.0", rules=("gemm_dims",)),
    _kernel("linear_forward", "out = relu?(x @ w + b)",
            "x: float[M, K] in", "w: float[K, N] in", "b: float[N] in", "out: float[M, N] out", "relu: bool = False"),
    _kernel("linear_backward_input", "out = (dy @ w.T) * (y > 0); y None: no mask",
            "dy: float[M, N] in", "w: float[K, N] in", "y: float[M, K] in?", "out: float[M, K] out"),
    _kernel("linear_weight_grad", "dw = alpha * x.T @ dy + beta * dw; db = alpha * dy.sum(0) + beta * db",
            "x: float[R, I] in", "dy: float[R, O] in", "dw: float[I, O] inout", "db: float[O] inout",
            "alpha: float = 1.0", "beta: float = 0.0"),
    _kernel("relu_backward", "out = dy * (y > 0)",
            "dy: float[R, C] in", "y: float[=dy] in", "out: float[=dy] out ~dy"),
    _kernel("bias_grad", "out = dy.sum(axis=0)", "dy: float[R, C] in", "out: float[C] out"),
    _kernel("softmax_xent", "(mean loss, n correct); dlogits = (softmax(logits) - onehot(labels)) / R",
            "logits: float[R, C] in", "labels: int64[R] in", "dlogits: float[R, C] out?",
            rules=("nonempty_logits", "labels_in_range")),
    _kernel("xent_accumulate", "softmax_xent, its loss sum and correct count added to totals[0:2], the "
            "batch's mean loss and count in totals[2:4]",
            "logits: float[R, C] in", "labels: int64[R] in", "dlogits: float[R, C] out?", "totals: float64[4] inout",
            rules=("nonempty_logits", "labels_in_range")),
    _kernel("take_rows", "out[i] = src[idx[i]]",
            "src: float[R, C] in", "idx: int64[B] in", "out: float[B, C] out", rules=("idx_in_range",)),
    _kernel("conv2d_forward", "out = relu?(conv(x, w) + b), x and out NHWC, w (KH*KW*C, F)",
            "x: float[N, H, W, C] in", "w: float[P, F] in", "b: float[F] in?", "out: float[N, OH, OW, F] out",
            *_CONV_SCALARS, "relu: bool = False", rules=("conv_geometry",)),
    _kernel("conv2d_backward", "dw, db (None: skipped), dx (None: skipped) of conv2d_forward without ReLU",
            "dy: float[N, OH, OW, F] in", "x: float[N, H, W, C] in", "w: float[P, F] in", "dw: float[P, F] out",
            "db: float[F] out?", "dx: float[N, H, W, C] out?", *_CONV_SCALARS, rules=("conv_geometry",)),
    _kernel("conv2d_maxpool_forward", "maxpool_forward(conv2d_forward(x, ...)) into out and argmax",
            "x: float[N, H, W, C] in", "w: float[P, F] in", "b: float[F] in?", "out: float[N, PH, PW, F] out",
            "argmax: int32[N, PH, PW, F] out", *_CONV_SCALARS, "conv_hw: pair", "pool: int", "relu: bool = False",
            rules=("conv_geometry", "conv_pool_geometry")),
    _kernel("conv2d_maxpool_backward", "maxpool_backward then conv2d_backward (dx None: skipped)",
            "dy: float[N, PH, PW, F] in", "argmax: int32[N, PH, PW, F] in", "out: float[N, PH, PW, F] in",
            "x: float[N, H, W, C] in", "w: float[P, F] in", "dw: float[P, F] out", "db: float[F] out?",
            *_CONV_SCALARS, "conv_hw: pair", "pool: int", "relu_mask: bool = False", "dx: float[N, H, W, C] out?",
            rules=("conv_geometry", "conv_pool_geometry", "argmax_in_range")),
    _kernel("maxpool_forward", "out = the maximum of each pool x pool window (stride pool), argmax its flat index "
            "in the image", "x: float[N, H, W, C] in", "out: float[N, OH, OW, C] out",
            "argmax: int32[N, OH, OW, C] out", "pool: int", rules=("pool_geometry",)),
    _kernel("maxpool_backward", "dx = dy (times out > 0 with relu_mask) scattered to argmax, zero elsewhere",
            "dy: float[N, OH, OW, C] in", "argmax: int32[N, OH, OW, C] in", "out: float[N, OH, OW, C] in",
            "dx: float[N, H, W, C] out", "pool: int", "relu_mask: bool = False",
            rules=("pool_geometry", "argmax_in_range")),
    _kernel("global_avgpool_forward", "out = x.mean(axis=(1, 2))", "x: float[N, H, W, C] in", "out: float[N, C] out"),
    _kernel("global_avgpool_backward", "dx = dy / (H * W) broadcast over each image",
            "dy: float[N, C] in", "dx: float[N, H, W, C] out"),
    _kernel("batchnorm_forward_train", "y = gamma * (x - mean) / sqrt(var + eps) + beta over the batch's statistics "
            "(saved), running statistics updated with momentum",
            "x: float[R, C] in", "gamma: float[C] in", "beta: float[C] in", "y: float[R, C] out",
            "save_mean: float[C] out", "save_invstd: float[C] out", "running_mean: float[C] inout",
            "running_var: float[C] inout", "eps: float", "momentum: float"),
    _kernel("batchnorm_forward_infer", "y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta",
            "x: float[R, C] in", "gamma: float[C] in", "beta: float[C] in", "running_mean: float[C] in",
            "running_var: float[C] in", "y: float[R, C] out", "eps: float"),
    _kernel("batchnorm_backward", "dx, dgamma, dbeta of batchnorm_forward_train",
            "dy: float[R, C] in", "x: float[R, C] in", "gamma: float[C] in", "save_mean: float[C] in",
            "save_invstd: float[C] in", "dx: float[R, C] out", "dgamma: float[C] out", "dbeta: float[C] out"),
    _kernel("activation_forward", "y = f(x), f one of relu, leaky_relu (alpha), sigmoid, tanh",
            "x: float[*] in", "y: float[=x] out ~x", "kind: str", "alpha: float = 0.0", rules=("activation",)),
    _kernel("activation_backward", "dx = dy * f'(x), from f's output y",
            "dy: float[*] in", "y: float[=dy] in", "dx: float[=dy] out ~dy", "kind: str", "alpha: float = 0.0",
            rules=("activation",)),
    _kernel("dropout", "y = x * keep / (1 - rate), keep a hash of (seed, step, element index)",
            "x: float[*] in", "y: float[=x] out ~x", "rate: float", "seed: int", "step: int",
            rules=("dropout_rate",)),
    _kernel("batched_transpose", "out[b] = x[b].T", "x: float[B, R, C] in", "out: float[B, C, R] out"),
    _kernel("affine_warp", "out[n] = x[n] resampled bilinearly at A (p - c) + c + t (zero outside), "
            "params[n] = (A00, A01, A10, A11, tx, ty)",
            "x: float[N, H, W, C] in", "params: float[N, 6] in", "out: float[N, H, W, C] out",
            rules=("finite_params",)),
    _kernel("sgd_step", "param -= lr * (clipped, scaled grad + weight_decay * param), with (Nesterov) momentum",
            "param: float[P] inout", "grad: float[P] in", "velocity: float[P] inout?", "lr: float",
            "momentum: float", "nesterov: bool", "weight_decay: float", "grad_scale: float", "clip_value: float",
            rules=("velocity_with_momentum",)),
    _kernel("adam_step", "Adam (or AdamW, decoupled) at step >= 1 on clipped, scaled gradients",
            "param: float[P] inout", "grad: float[P] in", "m: float[P] inout", "v: float[P] inout", "lr: float",
            "beta1: float", "beta2: float", "eps: float", "weight_decay: float", "decoupled: bool", "step: int",
            "grad_scale: float", "clip_value: float", rules=("adam_step_count",)),
    _kernel("sum_squares", "sum(x * x) in float64, returned", "x: float[P] in"),
)}


# -- validation -------------------------------------------------------------------------------------
def shape_str(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


class ArrayView:
    """What the validator needs of a backend's arrays; a backend supplies one through ``Backend.array_view``.

    ``kind``: the array type's name for messages; ``is_array(a)``; ``extent(a)``: the ``(start,
    end)`` byte range ``a`` occupies (for the aliasing rule); ``overlaps(a, b)``: whether two
    arrays' byte ranges intersect; ``writable(a)``;
    ``contiguous(a)``.
    """

    kind = "numpy array"

    def is_array(self, a) -> bool:
        return isinstance(a, np.ndarray)

    def extent(self, a):
        start = a.__array_interface__["data"][0]
        return start, start + a.nbytes

    def overlaps(self, a, b) -> bool:
        # Bounds only (max_work=0), which is exact for the contiguous arrays the contract allows,
        # and far cheaper than reading two array interfaces on every kernel call.
        return a.size > 0 and b.size > 0 and np.may_share_memory(a, b, max_work=0)

    def writable(self, a) -> bool:
        return a.flags.writeable

    def contiguous(self, a) -> bool:
        return a.flags.c_contiguous


@dataclass(frozen=True)
class _ArrayCheck:
    """One array argument's rules, parsed once from its ``Arg`` (see :func:`validate`)."""

    name: str
    dtype: object  # None: the backend's float type
    same_as: str | None  # ``=other``: the shape of another argument
    dims: tuple | None  # symbols (or fixed sizes) per axis; None: any shape
    writes: bool
    optional: bool
    in_place: tuple


def _array_checks(kernel: Kernel) -> tuple:
    checks = []
    for arg in kernel.args:
        if not arg.is_array:
            continue
        same_as = arg.dims[0][1:] if arg.dims and arg.dims[0].startswith("=") else None
        dims = None if same_as or not arg.dims or arg.dims == ("*",) else tuple(
            int(d) if d.isdigit() else d for d in arg.dims)
        checks.append(_ArrayCheck(arg.name, None if arg.dtype == "float" else np.dtype(arg.dtype), same_as, dims,
                                  arg.writes, arg.optional, arg.in_place))
    return tuple(checks)


_CHECKS: dict = {}  # kernel name -> its parsed array checks


def validate(kernel: Kernel, bound: dict, float_dtype, view: ArrayView, check_values: bool = True) -> dict:
    """Check the arguments ``bound`` (name -> value) of ``kernel``; return the dimension symbols.

    ``check_values=False`` leaves out the rules that read array contents (``VALUE_RULES``). Raises
    TypeError (not an array, wrong dtype) or ValueError (rank, shape, contiguity, writability,
    aliasing, a rule) whose message starts ``"<kernel>: <argument>"``.
    """
    checks = _CHECKS.get(kernel.name)
    if checks is None:
        checks = _CHECKS[kernel.name] = _array_checks(kernel)
    fn, dims, arrays = kernel.name, {}, []
    for c in checks:
        a = bound.get(c.name)
        if a is None:
            if c.optional:
                continue
            raise TypeError(f"{fn}: {c.name} is required, got None")
        if not view.is_array(a):
            raise TypeError(f"{fn}: {c.name} must be a {view.kind}, got {type(a).__name__}")
        want = float_dtype if c.dtype is None else c.dtype
        if a.dtype != want:
            raise TypeError(f"{fn}: {c.name} must have dtype {np.dtype(want)}, got {np.dtype(a.dtype)}")
        shape = a.shape
        if c.same_as is not None:
            ref = bound[c.same_as]
            if shape != ref.shape:
                raise ValueError(f"{fn}: {c.name} has shape {shape_str(shape)}, expected the shape of "
                                 f"{c.same_as} {shape_str(ref.shape)}")
        elif c.dims is not None:
            if len(shape) != len(c.dims):
                raise ValueError(f"{fn}: {c.name} must be {len(c.dims)}-D, got shape {shape_str(shape)}")
            for d, size in zip(c.dims, shape):
                expected = d if d.__class__ is int else dims.setdefault(d, size)
                if size != expected:
                    want_shape = tuple(d if d.__class__ is int else dims.get(d, s) for d, s in zip(c.dims, shape))
                    raise ValueError(f"{fn}: {c.name} has shape {shape_str(shape)}, expected {shape_str(want_shape)}")
        if not view.contiguous(a):
            raise ValueError(f"{fn}: {c.name} must be C-contiguous")
        if c.writes and not view.writable(a):
            raise ValueError(f"{fn}: {c.name} is read-only")
        arrays.append((c, a))
    _check_aliasing(fn, arrays, view)
    for rule in kernel.rules:
        if check_values or rule not in VALUE_RULES:
            RULES[rule](fn, bound, dims)
    return dims


def _check_aliasing(fn, arrays, view):
    for i, (out, a) in enumerate(arrays):
        if not out.writes:
            continue
        for j, (other, b) in enumerate(arrays):
            if i == j or not view.overlaps(a, b):
                continue
            if other.name in out.in_place and view.extent(a) == view.extent(b):
                continue  # the same array: in place, as allowed
            if other.writes and j < i:
                continue  # reported from the first of the two outputs
            raise ValueError(f"{fn}: {out.name} must not share memory with {other.name}")


# -- the named rules ----------------------------------------------------------------------------------
def _gemm_dims(fn, b, dims):
    a, bm, out = b["a"], b["b"], b["out"]
    for name, x in (("a", a), ("b", bm), ("out", out)):
        if len(x.shape) != 2:
            raise ValueError(f"{fn}: {name} must be 2-D, got shape {shape_str(x.shape)}")
    m, k = (a.shape[1], a.shape[0]) if b.get("trans_a") else tuple(a.shape)
    k2, n = (bm.shape[1], bm.shape[0]) if b.get("trans_b") else tuple(bm.shape)
    if k != k2:
        raise ValueError(f"{fn}: inner dimensions differ: op(a) is {shape_str((m, k))} but op(b) is "
                         f"{shape_str((k2, n))}")
    if tuple(out.shape) != (m, n):
        raise ValueError(f"{fn}: out has shape {shape_str(out.shape)}, expected {shape_str((m, n))}")


def conv_geometry(fn, h, w, oh, ow, kernel, stride, padding):
    """Checked convolution geometry: (kh, kw, sh, sw, ph, pw, pad_bottom, pad_right), where the
    bottom/right padding is the zeros that make every window of the ``oh x ow`` output lie inside
    the padded image."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    if min(kh, kw, sh, sw) < 1 or ph < 0 or pw < 0 or ph >= kh or pw >= kw:
        raise ValueError(f"{fn}: bad kernel {kernel}, stride {stride} or padding {padding}")
    if oh < 1 or ow < 1 or (oh - 1) * sh - ph >= h or (ow - 1) * sw - pw >= w:
        raise ValueError(f"{fn}: output {oh}x{ow} has windows past the padded {h}x{w} input")
    pad_bottom = max(0, (oh - 1) * sh + kh - ph - h)
    pad_right = max(0, (ow - 1) * sw + kw - pw - w)
    return kh, kw, sh, sw, ph, pw, pad_bottom, pad_right


def _conv_geometry(fn, b, dims):
    if min(dims["N"], dims["C"], dims["F"]) < 1:
        raise ValueError(f"{fn}: empty x or output")
    oh, ow = b["conv_hw"] if "conv_hw" in b else (dims["OH"], dims["OW"])
    kh, kw = conv_geometry(fn, dims["H"], dims["W"], oh, ow, b["kernel"], b["stride"], b["padding"])[:2]
    if dims["P"] != kh * kw * dims["C"]:
        raise ValueError(f"{fn}: w has shape {shape_str((dims['P'], dims['F']))}, expected "
                         f"{shape_str((kh * kw * dims['C'], dims['F']))}")


def _conv_pool_geometry(fn, b, dims):
    oh, ow = b["conv_hw"]
    pool = b["pool"]
    if pool < 1 or oh < pool or ow < pool or (dims["PH"], dims["PW"]) != (oh // pool, ow // pool):
        raise ValueError(f"{fn}: a {pool}x{pool} pool of the {oh}x{ow} convolution does not give "
                         f"{dims['PH']}x{dims['PW']}")


def _pool_geometry(fn, b, dims):
    pool, h, w = b["pool"], dims["H"], dims["W"]
    if pool < 1 or h < pool or w < pool or (dims["OH"], dims["OW"]) != (h // pool, w // pool):
        raise ValueError(f"{fn}: pool {pool} of a {h}x{w} image does not give {dims['OH']}x{dims['OW']}")


def _host(a):
    return a if isinstance(a, np.ndarray) else a.copy_to_host()


def _argmax_in_range(fn, b, dims):
    oh, ow = b["conv_hw"] if "conv_hw" in b else (dims["H"], dims["W"])
    size = oh * ow * (dims["F"] if "F" in dims else dims["C"])
    arg = _host(b["argmax"])
    if arg.size and (arg.min() < 0 or arg.max() >= size):
        raise ValueError(f"{fn}: argmax has entries outside an image of {size} elements")


def _nonempty_logits(fn, b, dims):
    if dims["R"] == 0 or dims["C"] == 0:
        raise ValueError(f"{fn}: logits is empty, shape {shape_str((dims['R'], dims['C']))}")


def _labels_in_range(fn, b, dims):
    labels = _host(b["labels"])
    bad = np.flatnonzero((labels < 0) | (labels >= dims["C"]))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{fn}: labels[{i}] = {labels[i]} is out of range for {dims['C']} classes")


def _idx_in_range(fn, b, dims):
    idx = _host(b["idx"])
    bad = np.flatnonzero((idx < 0) | (idx >= dims["R"]))
    if bad.size:
        i = int(bad[0])
        raise IndexError(f"{fn}: idx[{i}] = {idx[i]} is out of bounds for {dims['R']} rows")


ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh")


def _activation(fn, b, dims):
    kind, alpha = b["kind"], b.get("alpha", 0.0)
    if kind not in ACTIVATIONS:
        raise ValueError(f"{fn}: unknown activation {kind!r} ({', '.join(ACTIVATIONS)})")
    if kind == "leaky_relu" and not (math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"{fn}: leaky_relu needs a finite alpha >= 0, got {alpha}")


def _dropout_rate(fn, b, dims):
    if not 0.0 <= b["rate"] < 1.0:
        raise ValueError(f"{fn}: rate must be in [0, 1), got {b['rate']}")


def _finite_params(fn, b, dims):
    params = _host(b["params"])
    if not np.all(np.isfinite(params)) or np.abs(params).max(initial=0) > 1e6:
        raise ValueError(f"{fn}: params holds a non-finite or huge value")


def _velocity_with_momentum(fn, b, dims):
    if b["momentum"] != 0 and b.get("velocity") is None:
        raise ValueError(f"{fn}: velocity is required when momentum != 0")


def _adam_step_count(fn, b, dims):
    if b["step"] < 1:
        raise ValueError(f"{fn}: step counts from 1, got {b['step']}")


RULES = {
    "gemm_dims": _gemm_dims, "conv_geometry": _conv_geometry, "conv_pool_geometry": _conv_pool_geometry,
    "pool_geometry": _pool_geometry, "argmax_in_range": _argmax_in_range, "nonempty_logits": _nonempty_logits,
    "labels_in_range": _labels_in_range, "idx_in_range": _idx_in_range, "activation": _activation,
    "dropout_rate": _dropout_rate, "finite_params": _finite_params,
    "velocity_with_momentum": _velocity_with_momentum, "adam_step_count": _adam_step_count,
}


# Rules that read array contents: a device backend skips them (reading would wait for the GPU).
VALUE_RULES = frozenset({"argmax_in_range", "labels_in_range", "idx_in_range", "finite_params"})


def _arg_text(a: Arg) -> str:
    if a.is_array:
        text = f"{a.name}: {a.dtype}[{', '.join(a.dims)}] {a.role}{'?' if a.optional else ''}"
        return text + "".join(f" ~{p}" for p in a.in_place)
    return f"{a.name}: {a.scalar_type}" + ("" if a.default is None else f" = {a.default!r}")


def markdown() -> str:
    """The contract as a Markdown table (for a terminal or an issue; the docs use :func:`rst_table`)."""
    lines = ["| kernel | computes | arguments | rules |", "|---|---|---|---|"]
    for k in KERNELS.values():
        args = "<br>".join(f"`{_arg_text(a)}`" for a in k.args)
        lines.append(f"| `{k.name}` | {k.computes.replace('|', '/')} | {args} | {', '.join(k.rules) or '-'} |")
    return "\n".join(lines) + "\n"


def rst_table() -> str:
    """The contract as a reStructuredText list-table: the API reference's kernel page includes it,
    generated at each docs build, so a new kernel is documented by its table entry alone."""
    lines = [".. list-table::", "   :header-rows: 1", "   :widths: 14 30 40 16", "",
             "   * - kernel", "     - computes", "     - arguments", "     - rules"]
    for k in KERNELS.values():
        lines += [f"   * - ``{k.name}``", f"     - {k.computes.replace('*', chr(92) + '*')}", "     -"]
        lines += [f"       | ``{_arg_text(a)}``" for a in k.args]
        lines.append(f"     - {', '.join(k.rules) or '-'}")
    return "\n".join(lines) + "\n"


__all__ = ["ACTIVATIONS", "Arg", "ArrayView", "KERNELS", "Kernel", "RULES", "VALUE_RULES",
           "conv_geometry", "markdown", "rst_table", "shape_str", "validate"]
