"""The kernel contract (``mnistfast.backends.contract``) holds on every backend: each implements
exactly the table's kernels with the table's arguments, accepts a call that follows it, and
refuses each violation the table implies with an error naming the kernel and the argument."""

import inspect
import pathlib
import re

import numpy as np
import pytest
from conftest import BACKENDS

import mnistfast as mf
from mnistfast.backends.contract import KERNELS, markdown, rst_table

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs" / "kernels.rst"

# One valid call per kernel: the dimension symbols and the scalar arguments.
CONV = {"kernel": (3, 3), "stride": (1, 1), "padding": (0, 0)}
EXAMPLES = {
    "gemm": ({"M": 3, "K": 4, "N": 5}, {"trans_a": False, "trans_b": False, "alpha": 1.0, "beta": 0.0}),
    "linear_forward": ({"M": 3, "K": 4, "N": 5}, {"relu": True}),
    "linear_backward_input": ({"M": 3, "K": 4, "N": 5}, {}),
    "linear_weight_grad": ({"R": 3, "I": 4, "O": 5}, {"alpha": 1.0, "beta": 0.0}),
    "relu_backward": ({"R": 3, "C": 4}, {}),
    "bias_grad": ({"R": 3, "C": 4}, {}),
    "softmax_xent": ({"R": 3, "C": 4}, {}),
    "xent_accumulate": ({"R": 3, "C": 4}, {}),
    "take_rows": ({"R": 5, "C": 4, "B": 3}, {}),
    "conv2d_forward": ({"N": 2, "H": 5, "W": 5, "C": 2, "F": 3, "OH": 3, "OW": 3, "P": 18}, {**CONV, "relu": False}),
    "conv2d_backward": ({"N": 2, "H": 5, "W": 5, "C": 2, "F": 3, "OH": 3, "OW": 3, "P": 18}, CONV),
    "conv2d_maxpool_forward": ({"N": 2, "H": 6, "W": 6, "C": 2, "F": 3, "PH": 2, "PW": 2, "P": 18},
                               {**CONV, "conv_hw": (4, 4), "pool": 2, "relu": True}),
    "conv2d_maxpool_backward": ({"N": 2, "H": 6, "W": 6, "C": 2, "F": 3, "PH": 2, "PW": 2, "P": 18},
                                {**CONV, "conv_hw": (4, 4), "pool": 2, "relu_mask": True}),
    "maxpool_forward": ({"N": 2, "H": 4, "W": 4, "C": 3, "OH": 2, "OW": 2}, {"pool": 2}),
    "maxpool_backward": ({"N": 2, "H": 4, "W": 4, "C": 3, "OH": 2, "OW": 2}, {"pool": 2, "relu_mask": False}),
    "global_avgpool_forward": ({"N": 2, "H": 3, "W": 3, "C": 4}, {}),
    "global_avgpool_backward": ({"N": 2, "H": 3, "W": 3, "C": 4}, {}),
    "batchnorm_forward_train": ({"R": 6, "C": 3}, {"eps": 1e-5, "momentum": 0.1}),
    "batchnorm_forward_infer": ({"R": 6, "C": 3}, {"eps": 1e-5}),
    "batchnorm_backward": ({"R": 6, "C": 3}, {}),
    "activation_forward": ({}, {"kind": "tanh", "alpha": 0.0}),
    "activation_backward": ({}, {"kind": "leaky_relu", "alpha": 0.1}),
    "dropout": ({}, {"rate": 0.5, "seed": 1, "step": 2}),
    "batched_transpose": ({"B": 2, "R": 3, "C": 4}, {}),
    "affine_warp": ({"N": 2, "H": 4, "W": 4, "C": 1}, {}),
    "sgd_step": ({"P": 7}, {"lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0, "grad_scale": 1.0,
                            "clip_value": 0.0}),
    "adam_step": ({"P": 7}, {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0,
                             "decoupled": False, "step": 1, "grad_scale": 1.0, "clip_value": 0.0}),
    "sum_squares": ({"P": 7}, {}),
}
ANY_SHAPE = (2, 3)  # for the arguments of any shape
GEMM_SHAPES = {"a": ("M", "K"), "b": ("K", "N"), "out": ("M", "N")}


def host_dtype(arg, float_dtype):
    return np.dtype(float_dtype) if arg.dtype == "float" else np.dtype(arg.dtype)


def example_shapes(kernel) -> dict:
    dims, _ = EXAMPLES[kernel.name]
    shapes = {}
    for arg in kernel.args:
        if not arg.is_array:
            continue
        spec = GEMM_SHAPES[arg.name] if kernel.name == "gemm" else arg.dims
        if spec == ("*",):
            shapes[arg.name] = ANY_SHAPE
        elif spec and spec[0].startswith("="):
            shapes[arg.name] = shapes[spec[0][1:]]
        else:
            shapes[arg.name] = tuple(int(d) if d.isdigit() else dims[d] for d in spec)
    return shapes


def example_host_args(kernel, float_dtype=np.float32, seed=0) -> dict:
    """name -> host array or scalar: a call that follows the contract (values inside every rule)."""
    rng = np.random.default_rng(seed)
    _, scalars = EXAMPLES[kernel.name]
    args = {}
    for arg in kernel.args:
        if not arg.is_array:
            args[arg.name] = scalars[arg.name]
            continue
        shape, dtype = example_shapes(kernel)[arg.name], host_dtype(arg, float_dtype)
        if dtype.kind == "i":
            args[arg.name] = np.zeros(shape, dtype)  # labels, indices, argmax: 0 is always valid
        elif arg.name == "params":
            args[arg.name] = np.tile(np.array([1, 0, 0, 1, 0, 0], dtype), (shape[0], 1))
        else:
            args[arg.name] = rng.uniform(0.5, 1.0, size=shape).astype(dtype)
    return args


class Caller:
    """Calls one backend's kernels with host arrays (moved to the device for cuda)."""

    def __init__(self, name):
        self.backend = mf.get_backend(name)
        self.device = name == "cuda"

    def move(self, value, moved):
        if not (self.device and isinstance(value, np.ndarray)):
            return value
        if id(value) not in moved:  # the same host array twice is the same device array twice
            if value.ndim and not value.flags.c_contiguous:  # a strided view of a device array
                base = value.base if value.base is not None else value
                moved[id(value)] = self.backend.to_device(np.ascontiguousarray(base), dtype=base.dtype)[..., ::2]
            else:
                moved[id(value)] = self.backend.to_device(value, dtype=value.dtype)
        return moved[id(value)]

    def __call__(self, kernel, args: dict):
        method, moved = getattr(self.backend, kernel.name), {}
        return method(*(self.move(args[a.name], moved) for a in kernel.args))


@pytest.fixture(scope="module", params=BACKENDS)
def caller(request):
    return Caller(request.param)


def parameter_names(method) -> list:
    try:
        return [p for p in inspect.signature(method).parameters if p != "self"]
    except (TypeError, ValueError):  # a pybind11 method: the names are in its docstring
        head = method.__doc__.splitlines()[0]
        return [p.split(":")[0].strip() for p in head[head.index("(") + 1 : head.rindex(")")].split(",")][1:]


def test_every_backend_implements_exactly_the_table(caller):
    be = caller.backend
    for kernel in KERNELS.values():
        method = getattr(be, kernel.name, None)
        assert method is not None, f"{be.name} lacks {kernel.name}"
        names = parameter_names(method)
        want = [a.name for a in kernel.args]
        if kernel.name == "gemm":
            names = parameter_names(be._gemm)
        assert names == want, f"{be.name}.{kernel.name}{tuple(names)}, the table says {tuple(want)}"
    public = {n for n in dir(be) if not n.startswith("_")}
    kernels = {n for n in public if callable(getattr(be, n)) and n in KERNELS}
    assert kernels == set(KERNELS)


def test_the_table_rules_resolve():
    from mnistfast.backends.contract import RULES

    for kernel in KERNELS.values():
        assert set(kernel.rules) <= set(RULES), kernel.name
        assert set(EXAMPLES[kernel.name][1]) == {a.name for a in kernel.args if not a.is_array}, kernel.name


@pytest.mark.parametrize("name", list(KERNELS))
def test_a_call_that_follows_the_contract_runs(caller, name):
    kernel = KERNELS[name]
    caller(kernel, example_host_args(kernel))


def violations(kernel):
    """(description, argument name, args, exception type, message pattern) for each violation."""
    valid = example_host_args(kernel)
    outputs = [a for a in kernel.args if a.is_array and a.writes]
    for arg in (a for a in kernel.args if a.is_array):
        value = valid[arg.name]

        def broken(new, arg=arg):
            return {**valid, arg.name: new}

        wrong = {"float": np.float64, "int64": np.int32, "int32": np.int64, "float64": np.float32}[arg.dtype]
        yield "dtype", arg.name, broken(value.astype(wrong)), TypeError, "dtype"
        yield "not an array", arg.name, broken(value.tolist()), TypeError, ""
        if not arg.optional:
            yield "None", arg.name, broken(None), TypeError, ""
        if arg.dims and arg.dims != ("*",) and not arg.dims[0].startswith("=") or kernel.name == "gemm":
            yield "rank", arg.name, broken(value.reshape(*value.shape, 1)), ValueError, ""
        if value.size > 1:
            wide = np.zeros((*value.shape[:-1], 2 * value.shape[-1]), value.dtype)
            wide[..., ::2] = value
            yield "strided", arg.name, broken(wide[..., ::2]), ValueError, "C-contiguous"
        if arg.writes and value.size:
            frozen = value.copy()
            frozen.flags.writeable = False
            yield "read-only", arg.name, broken(frozen), ValueError, "read-only"
    for out in outputs:
        for other in kernel.args:
            if other is out or not other.is_array or other.name in out.in_place:
                continue
            a, b = valid[out.name], valid[other.name]
            if a.shape == b.shape and a.dtype == b.dtype:
                yield "aliased", out.name, {**valid, out.name: b}, ValueError, "share memory"
    shaped = [a for a in kernel.args if a.is_array and a.dims and a.dims != ("*",) and not a.dims[0].startswith("=")
              and kernel.name != "gemm"]
    for arg in shaped:
        value = valid[arg.name]
        for axis, symbol in enumerate(arg.dims):
            if not symbol.isdigit() and not any(symbol in other.dims for other in shaped if other is not arg):
                continue  # a size no other argument shares: any value is valid
            shape = list(value.shape)
            shape[axis] += 1
            yield f"size of axis {axis}", None, {**valid, arg.name: np.zeros(shape, value.dtype)}, ValueError, ""


@pytest.mark.parametrize("name", list(KERNELS))
def test_each_violation_is_refused_by_name(caller, name):
    kernel = KERNELS[name]
    for what, arg_name, args, error, pattern in violations(kernel):
        if caller.device and what == "read-only":
            continue  # device arrays have no read-only flag
        if caller.device and what == "not an array":
            continue  # the host list would be moved as is: tested below
        try:
            caller(kernel, args)
        except error as e:
            message = str(e)
        except Exception as e:  # noqa: BLE001 - the wrong kind of error is a failure too
            pytest.fail(f"{what} of {arg_name}: {type(e).__name__}: {e}, expected {error.__name__}")
        else:
            pytest.fail(f"{what} of {arg_name}: accepted, expected {error.__name__}")
        assert message.startswith(f"{kernel.name}: ") or (caller.backend.name == "cpp" and kernel.name in message), \
            f"{what}: {message}"
        if arg_name is not None and what != "None":
            assert re.search(rf"\b{arg_name}\b", message), f"{what} of {arg_name}: {message}"
        assert pattern in message, f"{what} of {arg_name}: {message}"


def test_docs_generate_the_table():
    # The kernel page includes the table its build generates: nothing to paste when a kernel is added.
    assert ".. include:: _generated/kernel_table.rst" in DOCS.read_text()
    table, md = rst_table(), markdown()
    for k in KERNELS.values():
        assert f"   * - ``{k.name}``" in table and f"| `{k.name}` |" in md
        for arg in k.args:
            assert f"``{arg.name}:" in table, (k.name, arg.name)
