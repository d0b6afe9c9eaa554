"""Property-based fuzzing (Hypothesis) of the file readers and the kernel bindings: every input
either works or raises the documented error. The coverage-guided fuzzer (fuzz/fuzz_readers.py)
drives the same reader targets for longer."""

import pathlib
import tempfile

import numpy as np
import pytest
from fuzz_targets import csv_target, idx_target, image_target, model_target, seed_inputs
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import mnistfast as mf

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SEEDS = seed_inputs()


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory() as d:
        yield d


def mutated(seed: bytes):
    """Strategies that damage a valid file: flip, insert or delete bytes, truncate, extend."""
    def apply(ops):
        data = bytearray(seed)
        for kind, at, value in ops:
            at = at % (len(data) + 1)
            if kind == "flip" and data:
                data[at % len(data)] ^= value or 1
            elif kind == "insert":
                data[at:at] = bytes([value])
            elif kind == "delete":
                del data[at : at + value % 16 + 1]
            elif kind == "truncate":
                del data[at:]
        return bytes(data)
    op = st.tuples(st.sampled_from(["flip", "insert", "delete", "truncate"]), st.integers(0, 1 << 20),
                   st.integers(0, 255))
    return st.lists(op, min_size=1, max_size=6).map(apply)


def idx_header():
    """A header with a plausible or hostile magic, count and shape, then some payload."""
    magic = st.sampled_from([2049, 2051, 2050, 0, 0xFFFFFFFF])
    dim = st.integers(0, 1 << 32 - 1) | st.integers(0, 40)
    return st.tuples(magic, dim, dim, dim, st.binary(max_size=3000)).map(
        lambda t: np.array(t[:4], ">u4").tobytes()[: 16 if t[0] == 2051 else 8] + t[4])


@FUZZ
@given(data=st.binary(max_size=4000) | idx_header() | st.sampled_from(SEEDS["idx"]).flatmap(mutated),
       gz=st.booleans())
def test_idx_reader(workdir, data, gz):
    idx_target(data, workdir, gz)


@FUZZ
@given(data=st.sampled_from(SEEDS["idx_gz"]).flatmap(mutated))
def test_idx_reader_on_damaged_gzip(workdir, data):
    idx_target(data, workdir, gz=True)


def csv_texts():
    header = st.sampled_from(["label," + ",".join(f"pixel{i}" for i in range(784)),
                              ",".join(f"pixel{i}" for i in range(784)), "\ufefflabel,pixel0", "label", ""])
    cell = st.sampled_from(["0", "255", "256", "-1", "7", "x", "", " 3", "1e3", "9" * 30])
    row = st.lists(cell, min_size=0, max_size=800).map(",".join)
    return st.tuples(header, st.lists(row, max_size=3)).map(lambda t: ("\n".join([t[0], *t[1]]) + "\n").encode())


@FUZZ
@given(data=st.binary(max_size=3000) | csv_texts() | st.sampled_from(SEEDS["csv"]).flatmap(mutated))
def test_csv_reader(workdir, data):
    csv_target(data, workdir)


@FUZZ
@given(data=st.binary(max_size=2000) | st.sampled_from(SEEDS["model"]).flatmap(mutated))
def test_model_reader(workdir, data):
    model_target(data, workdir)


@pytest.mark.skipif(not SEEDS["image"], reason="the image reader needs Pillow (the images extra)")
@FUZZ
@given(data=st.binary(max_size=500) | st.sampled_from(SEEDS["image"] or [b""]).flatmap(mutated))
def test_image_reader(workdir, data):
    image_target(data, workdir)


# -- model configs with extreme numbers (issue 22): the file is well formed, its JSON hostile ------
def hostile_number():
    return st.sampled_from([0, -1, 1, 2**31, 2**63, 2**64 + 3, 1e400, -1e400, 1e999, 0.5, 784.0, True, None, "7",
                            [3], float("nan")])


def hostile_config(base: dict):
    """``base`` with one to three fields (input_shape entries, seed, a layer's numbers, a Reshape of
    huge dimensions inserted) replaced by extreme values."""
    def edit(t):
        import copy

        config = copy.deepcopy(base)
        for where, value, position in t:
            if where == "input_shape":
                config["input_shape"][position % len(config["input_shape"])] = value
            elif where == "seed":
                config["seed"] = value
            elif where == "units":
                layer = config["layers"][position % len(config["layers"])]
                key = next(iter(layer["config"]), None)
                if key is not None:
                    layer["config"][key] = value
            else:
                config["layers"].insert(0, {"type": "Reshape", "config": {"shape": [value, 2**32, -1]}})
        return config
    field = st.tuples(st.sampled_from(["input_shape", "seed", "units", "reshape"]), hostile_number(), st.integers(0, 9))
    return st.lists(field, min_size=1, max_size=3).map(edit)


MODEL_CONFIG = {"format": "mnistfast.sequential/1", "input_shape": [784], "seed": 0,
                "layers": [{"type": "Dense", "config": {"units": 10, "activation": None}}]}


@FUZZ
@given(config=hostile_config(MODEL_CONFIG))
def test_model_configs_with_extreme_numbers(workdir, config):
    import io
    import json
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, value in (("config", np.array(json.dumps(config))), ("layer0.W", np.zeros((784, 10), np.float32)),
                            ("layer0.b", np.zeros(10, np.float32))):
            item = io.BytesIO()
            np.save(item, value)
            z.writestr(name + ".npy", item.getvalue())
    model_target(buf.getvalue(), workdir)


# -- output paths of every kind (issue 22): refused or written, never replaced ---------------------
@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(["missing", "file", "dir", "run", "fifo", "link_dir", "link_file", "dangling", "loop",
                             "under_file"]),
       as_run=st.booleans())
def test_output_paths_of_every_kind(kind, as_run):
    import os

    from mnistfast.outputs import OutputError, RunDirectory, check_output_file

    with tempfile.TemporaryDirectory() as d:
        root = pathlib.Path(d)
        target = root / "x"
        if kind == "file":
            target.write_text("mine")
        elif kind in ("dir", "run"):
            target.mkdir()
            (target / ("model.npz" if kind == "run" else "mine.txt")).write_text("1")
        elif kind == "fifo":
            os.mkfifo(target)
        elif kind == "link_dir":
            (root / "real").mkdir()
            target.symlink_to(root / "real")
        elif kind == "link_file":
            (root / "real.txt").write_text("mine")
            target.symlink_to(root / "real.txt")
        elif kind == "dangling":
            target.symlink_to(root / "nowhere" / "deeper")
        elif kind == "loop":
            target.symlink_to(root / "y")
            (root / "y").symlink_to(target)
        elif kind == "under_file":
            (root / "f").write_text("mine")
            target = root / "f" / "x"
        before = {p: (p.is_symlink(), p.read_bytes() if p.is_file() and not p.is_symlink() else None)
                  for p in root.rglob("*") if not p.is_fifo()}
        try:
            if as_run:
                with RunDirectory(target):
                    pass
            else:
                check_output_file(target)
        except (OutputError, OSError):
            pass
        for p, (link, data) in before.items():  # checking never changes what was there
            assert p.is_symlink() == link and (data is None or p.read_bytes() == data), p


# -- search storage URLs (issue 22): a study or one line, never a driver's traceback ------------
_URL_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)


@settings(max_examples=150, deadline=None)
@example(scheme="sqlite", slashes="://", tail="{}", query="")  # found: Optuna formats the URL, braces raised
@given(scheme=st.sampled_from(["sqlite", "sqlite+pysqlite", "SQLITE", "nonsense", "mysql", "oracle", "", "sqlite:"]),
       slashes=st.sampled_from(["://", ":///", ":////", ":", "//"]), tail=_URL_TEXT,
       query=st.sampled_from(["", "?mode=ro", "?uri=true", "?timeout=-1", "?check_same_thread=maybe", "?%ZZ"]))
def test_search_storage_urls(scheme, slashes, tail, query):
    """Schemes and paths of every shape under a scratch directory (a relative path would land in
    the working directory; no host names, which would wait on the network)."""
    from fuzz_targets import storage_target

    import os

    with tempfile.TemporaryDirectory() as d:
        path = tail.replace("..", "_").lstrip("/")
        url = f"{scheme}{slashes}{d}/{path}{query}" if slashes.endswith("/") else f"{scheme}{slashes}{path}"
        here = os.getcwd()
        os.chdir(d)  # whatever slips through as a relative path lands in the scratch directory
        try:
            storage_target(url)
        finally:
            os.chdir(here)


def test_seed_inputs_are_valid(workdir):
    """The fuzzers start from files that load: the targets accept them without an error."""
    for data in SEEDS["idx"]:
        idx_target(data, workdir, gz=False)
    for data in SEEDS["csv"]:
        csv_target(data, workdir)
    for data in SEEDS["model"]:
        model_target(data, workdir)


# -- kernel bindings: random shapes, dtypes, strides and aliasing ----------------------------------
def operand(draw, shape):
    """An array near ``shape``: sometimes another shape, dtype, a strided view or read-only."""
    if draw(st.integers(0, 9)) == 0:
        shape = tuple(max(0, d + draw(st.integers(-1, 1))) for d in shape)
    if draw(st.integers(0, 15)) == 0:
        shape = shape + (1,)
    dtype = draw(st.sampled_from([np.float32] * 12 + [np.float64, np.int32, np.float16]))
    strided = draw(st.integers(0, 9)) == 0 and len(shape) > 0
    base_shape = (shape[0] * 2, *shape[1:]) if strided else shape
    a = np.random.default_rng(draw(st.integers(0, 99))).uniform(-1, 1, base_shape).astype(dtype)
    if strided:
        a = a[::2]
    if draw(st.integers(0, 15)) == 0:
        a.flags.writeable = False
    return a


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_linear_forward_binding(data):
    be = mf.get_backend("cpp")
    m, k, n = (data.draw(st.integers(0, 9)) for _ in range(3))
    draw = data.draw
    x, w, b = operand(draw, (m, k)), operand(draw, (k, n)), operand(draw, (n,))
    out = draw(st.sampled_from(["fresh", "fresh", "fresh", "alias_x", "alias_w"]))
    out = {"alias_x": x, "alias_w": w}.get(out) if out != "fresh" else operand(draw, (m, n))
    relu = draw(st.booleans())
    x0, w0, b0 = x.copy(), w.copy(), b.copy()
    try:
        got = be.linear_forward(x, w, b, out, relu)
    except (TypeError, ValueError):
        return
    # It ran, so every argument was valid: the result must be right.
    assert all(a.dtype == np.float32 and a.flags.c_contiguous for a in (x, w, b, out))
    want = x0.astype(np.float64) @ w0 + b0
    np.testing.assert_allclose(got, np.maximum(want, 0) if relu else want, rtol=1e-4, atol=1e-4)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_conv_and_pool_bindings(data):
    be = mf.get_backend("cpp")
    draw = data.draw
    n, h, w, c, f = (draw(st.integers(1, 6)) for _ in range(5))
    kh, kw, s, p = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(0, 1))
    oh, ow = (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1
    x, wt, b = operand(draw, (n, h, w, c)), operand(draw, (kh * kw * c, f)), operand(draw, (f,))
    out = operand(draw, (n, max(oh, 0), max(ow, 0), f))
    try:
        be.conv2d_forward(x, wt, b, out, (kh, kw), (s, s), (p, p))
    except (TypeError, ValueError):
        pass
    pool = draw(st.integers(1, 3))
    pooled = (n, h // pool, w // pool, c)
    arg = draw(st.sampled_from([np.int32, np.int32, np.int64]))
    argmax = np.zeros(pooled, arg)
    try:
        be.maxpool_forward(x, operand(draw, pooled), argmax, pool)
    except (TypeError, ValueError):
        return
    dx = operand(draw, (n, h, w, c))
    argmax_bad = argmax.copy()
    if argmax_bad.size and draw(st.booleans()):
        argmax_bad.flat[0] = draw(st.sampled_from([-1, h * w * c, 1 << 30]))
    try:
        be.maxpool_backward(operand(draw, pooled), argmax_bad, operand(draw, pooled), dx, pool)
    except (TypeError, ValueError):
        pass
