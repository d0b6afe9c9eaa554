"""Issue 10's list: bad input, divergence, hostile files and closed pipes each give one clear
error (naming the file and the problem), lose no finished work, and never exhaust memory."""

import gzip
import io
import json
import os
import subprocess
import sys
import zipfile


import numpy as np
import pytest
from test_data import write_idx_dir

import mnistfast as mf
from mnistfast.cli import main
from mnistfast.data import DataFormatError, load_csv, read_idx


# -- 1. a blown-up run is an error, and nothing diverged is kept ------------------------------------
@pytest.mark.parametrize("flags", [["--lr", "100"], ["--normalize", "none"]])
def test_diverged_cli_run_fails_and_saves_nothing(small_mnist_dir, tmp_path, capsys, flags):
    out = tmp_path / "run"
    rc = main(["train", "--data", str(small_mnist_dir), "--epochs", "2", "--out", str(out), "--verbose", "0", *flags])
    err = capsys.readouterr().err
    assert rc == 2 and "training diverged" in err and "Traceback" not in err
    assert not out.exists()


def test_diverged_model_keeps_its_last_good_weights(mnist_small):
    (X, y), (Xt, yt) = mnist_small
    model = mf.MLP(seed=0)
    model.fit(X[:1000], y[:1000], epochs=1, lr=0.1, verbose=0)
    good, score = model.get_params(), model.evaluate(Xt, yt)
    with pytest.raises(FloatingPointError, match="diverged.*restored to their values before this fit"):
        model.fit(X, y, epochs=1, lr=100.0, verbose=0)
    for a, b in zip(model.get_params(), good):
        np.testing.assert_array_equal(a, b)
    assert model.evaluate(Xt, yt) == score


def test_blow_up_is_caught_before_nan(mnist_small):
    """Unscaled pixels: the loss climbs to ~1e7 within 50 steps while still finite."""
    (X, y), _ = mnist_small
    with pytest.raises(FloatingPointError, match=r"mean loss of the last steps is .*over 10x where it started"):
        mf.MLP(seed=0).fit(X * 255, y, epochs=1, batch_size=32, lr=0.05, verbose=0)


def test_a_model_with_non_finite_weights_is_not_saved(tmp_path):
    model = mf.MLP([784, 8, 10])
    be = model.backend
    flat = be.to_host(model.flat_params)
    flat[3] = np.inf
    be.copy_from_host(model.flat_params, flat)
    with pytest.raises(ValueError, match="layer0.W contain NaN or Inf; a diverged model is not saved"):
        model.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


# -- 2. unusable output, unreadable data, closed pipes: one line, before the work --------------------
@pytest.mark.parametrize("case", ["file", "under_file", "unwritable"])
def test_unusable_out_fails_before_training(tmp_path, capsys, monkeypatch, case):
    (tmp_path / "f").write_text("x")
    out = {"file": tmp_path / "f", "under_file": tmp_path / "f" / "run", "unwritable": tmp_path / "ro" / "run"}[case]
    if case == "unwritable":  # root may write anywhere, so the probe's failure is simulated
        (tmp_path / "ro").mkdir()

        def denied(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr("mnistfast.outputs.tempfile.mkdtemp", denied)
    rc = main(["train", "--out", str(out), "--epochs", "1"])
    captured = capsys.readouterr()
    assert rc == 2 and "Epoch" not in captured.out
    want = {"file": "exists and is a regular file, not a directory",
            "under_file": "is not a directory, so nothing can be written under it",
            "unwritable": "cannot write in"}[case]
    assert f"--out {out}: " in captured.err and want in captured.err


def test_unreadable_data_file_is_one_line(tmp_path, capsys, monkeypatch):
    d = write_idx_dir(tmp_path / "d")
    real_open = open

    def deny(path, *args, **kwargs):
        if str(path).endswith("train-labels-idx1-ubyte.gz"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("mnistfast.data.open", deny, raising=False)
    rc = main(["train", "--data", str(d), "--epochs", "1", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "train-labels-idx1-ubyte.gz: permission denied" in err


def test_output_piped_into_head_does_not_lose_the_run(small_mnist_dir, tmp_path):
    out = tmp_path / "run"
    cmd = (f"{sys.executable} -m mnistfast train --data {small_mnist_dir} --epochs 2 --verbose 2 --out {out} "
           "| head -1; echo \"status ${PIPESTATUS[0]}\" >&2")
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True)
    assert done.stdout.count("\n") == 1
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr
    assert "standard output was closed early" in done.stderr and "status 141" in done.stderr
    assert (out / "model.npz").exists() and json.loads((out / "history.json").read_text())["test_accuracy"] > 0.5


def test_bad_thread_variable_does_not_break_import():
    env = dict(os.environ, MNISTFAST_NUM_THREADS="abc")
    done = subprocess.run([sys.executable, "-c", "import mnistfast"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# -- 3. untrusted files cannot exhaust memory ----------------------------------------------------
def peak_rss_mb(code: str) -> float:
    """Run ``code`` in a fresh interpreter; the growth of its peak RSS over the imports, in MB."""
    probe = ("import resource, mnistfast, numpy\n"
             "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
             f"{code}\n"
             "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return float(done.stdout.split()[-1])


def test_model_config_claiming_huge_layers_allocates_nothing(tmp_path):
    path = tmp_path / "evil.npz"
    with zipfile.ZipFile(path, "w") as z:
        buf = io.BytesIO()
        np.save(buf, np.array(json.dumps({"format": "mnistfast.mlp/1", "layers": [30000, 30000, 10]})))
        z.writestr("config.npy", buf.getvalue())
    assert path.stat().st_size < 600
    code = (f"import mnistfast as mf\ntry:\n    mf.load_model({str(path)!r})\nexcept ValueError as e:\n"
            "    assert 'missing array' in str(e), e\nelse:\n    raise SystemExit('loaded')")
    assert peak_rss_mb(code) < 50


def test_gzip_bomb_is_not_inflated_past_its_header(tmp_path):
    """A 256 MiB stream of zeros behind a header promising 10 labels: ~250 KB of gzip."""
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(np.array([2049, 10], ">u4").tobytes())
        chunk = bytes(16 << 20)
        for _ in range(16):
            f.write(chunk)
    assert path.stat().st_size < 1 << 20
    code = (f"from mnistfast.data import read_idx, DataFormatError\ntry:\n    read_idx({str(path)!r})\n"
            "except DataFormatError as e:\n    assert 'trailing bytes' in str(e), e\nelse:\n    raise SystemExit('read')")
    assert peak_rss_mb(code) < 50


def test_idx_header_whose_size_overflows_int64(tmp_path):
    """Found by the fuzzer: count * rows * cols wrapped around to a negative int64."""
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(np.array([2051, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF], ">u4").tobytes() + bytes(50))
    with pytest.raises(DataFormatError, match=r"promises 79228162458924105385300197375 bytes"):
        read_idx(path)


def test_idx_header_promising_much_reads_only_what_is_there(tmp_path):
    """A 1 GiB promise backed by 100 bytes is found truncated without allocating the 1 GiB."""
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(np.array([2051, 1024, 1024, 1024], ">u4").tobytes() + bytes(100))
    code = (f"from mnistfast.data import read_idx, DataFormatError\ntry:\n    read_idx({str(path)!r})\n"
            "except DataFormatError as e:\n    assert 'truncated data' in str(e), e\nelse:\n    raise SystemExit('read')")
    assert peak_rss_mb(code) < 50


def test_fuzzer_findings_on_readers(tmp_path):
    """Inputs the coverage-guided fuzzer found, each once a crash of the reader contract."""
    empty_images = tmp_path / "x-idx3-ubyte"  # a zero-width image: an empty array came back
    empty_images.write_bytes(np.array([2051, 3, 0, 7], ">u4").tobytes())
    with pytest.raises(DataFormatError, match="each image is 0x7 pixels"):
        read_idx(empty_images)
    odd_zip = tmp_path / "m.npz"  # a local-header version field zipfile does not support
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("config.npy", b"x")
    data = bytearray(buf.getvalue())
    at = data.rfind(b"PK\x01\x02")
    data[at + 6] = 210  # "version needed to extract": 21.0
    odd_zip.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged zip archive"):
        mf.load_model(odd_zip)


def test_idx_header_promising_too_much_is_refused(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(np.array([2051, 100000, 1000, 1000], ">u4").tobytes())
    with pytest.raises(DataFormatError, match=r"promises 100000000000 bytes.*1024 MiB limit"):
        read_idx(path)


# -- 4. clear messages -------------------------------------------------------------------------
def write_npz_config(path, config):
    buf = io.BytesIO()
    np.save(buf, np.array(json.dumps(config)))
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.npy", buf.getvalue())
    return path


@pytest.mark.parametrize("what,make,message", [
    ("no layers", lambda p: write_npz_config(p, {"format": "mnistfast.sequential/1", "input_shape": [784]}),
     "'layers' is missing or not a list"),
    ("list config", lambda p: write_npz_config(p, [1, 2, 3]), "the model config is a JSON list, expected an object"),
    ("npy", lambda p: np.save(open(p, "wb"), np.zeros(3)), "it is a single .npy array"),
    ("text", lambda p: p.write_text("W1 = [[1, 2], [3, 4]]\n"), "it is a text file"),
    ("damaged zip", lambda p: p.write_bytes(b"PK\x03\x04" + bytes(40)), "a damaged zip archive"),
])
def test_bad_model_files_say_what_they_are(tmp_path, what, make, message):
    path = tmp_path / "m.npz"
    make(path)
    with pytest.raises(ValueError) as e:
        mf.load_model(path)
    assert str(path) in str(e.value) and message in str(e.value)
    assert "pickle" not in str(e.value)


def test_idx_with_zero_count_names_the_file(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(np.array([2049, 0], ">u4").tobytes())
    with pytest.raises(DataFormatError, match=f"{path}: the header says the file holds 0 labels"):
        read_idx(path)


def test_truncated_gz_is_called_truncated(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    labels = np.random.default_rng(0).integers(0, 10, 5000, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(np.array([2049, 5000], ">u4").tobytes() + labels)[:-300])
    with pytest.raises(DataFormatError, match="the gzip data ends early: the file is truncated") as e:
        read_idx(path)
    assert "give it a .gz name" not in str(e.value)


def test_csv_with_only_a_header(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("label," + ",".join(f"pixel{i}" for i in range(784)) + "\n")
    with pytest.raises(DataFormatError, match=f"{path}: has a header but no data rows") as e:
        mf.load_mnist(path)
    assert "validation" not in str(e.value)


def test_csv_with_a_byte_order_mark_loads(tmp_path):
    path = tmp_path / "train.csv"
    rows = "\n".join("3," + ",".join(["7"] * 784) for _ in range(4))
    path.write_bytes(("\ufefflabel," + ",".join(f"pixel{i}" for i in range(784)) + "\n" + rows + "\n").encode())
    X, y = load_csv(path)
    assert X.shape == (4, 784) and (y == 3).all() and (X == 7).all()


def test_set_params_refuses_values_beyond_float32(tmp_path):
    model = mf.MLP([784, 8, 10])
    params = model.get_params()
    params[0] = params[0].astype(np.float64)
    params[0][0, 0] = 1e39
    with pytest.raises(ValueError, match="layer0.W has values beyond the float32 range"):
        model.set_params(params)




# -- issue 22, finding 8: expected failures are one line, never a traceback ----------------------
def saved_with_config(tmp_path, name, edit):
    """A small saved MLP whose config ``edit(config)`` changed, as a hostile file would."""
    path = tmp_path / "good.npz"
    mf.MLP([784, 10], backend="numpy").save(path)
    entries = dict(np.load(path))
    config = json.loads(str(entries["config"]))
    edit(config)
    entries["config"] = np.array(json.dumps(config))
    np.savez(tmp_path / name, **entries)
    return tmp_path / name


@pytest.mark.parametrize("edit,message", [
    (lambda c: c.update(input_shape=[1e400]), "an input_shape entry is inf"),
    (lambda c: c.update(input_shape=[784.0]), "an input_shape entry is 784.0"),
    (lambda c: c.update(seed=1e999), "seed is inf"),
    (lambda c: c["layers"].insert(0, {"type": "Reshape", "config": {"shape": [2**32, 2**32, -1]}}),
     "cannot reshape (784,)"),
])
def test_hostile_model_configs_are_value_errors(tmp_path, capsys, edit, message):
    path = saved_with_config(tmp_path, "evil.npz", edit)
    with pytest.raises(ValueError, match="bad model config") as e:
        mf.load_model(path)
    assert message in str(e.value)
    assert main(["eval", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


@pytest.mark.parametrize("argv,env,message", [
    (["--threads", "5000"], {}, "threads = 5000 is more than 4 threads per CPU"),
    ([], {"MNISTFAST_NUM_THREADS": "100000000000"}, "MNISTFAST_NUM_THREADS = 100000000000 is more than"),
    (["--layers", "784,100000000,10"], {}, "out of memory"),
])
def test_absurd_settings_are_one_line(tmp_path, argv, env, message):
    done = subprocess.run([sys.executable, "-m", "mnistfast", "train", "--epochs", "0", "--out", str(tmp_path / "r"),
                           *argv], env={**os.environ, **env}, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert message in done.stderr and "Invoked with" not in done.stderr


@pytest.mark.parametrize("history,message", [("[]", "holds a JSON list"), ("{}", "has no 'epochs' list"),
                                             ('{"epochs": [{"epoch": 1}]}', "lacks the number(s) loss"),
                                             ("not json", "not readable JSON")])
def test_plot_of_a_damaged_history_is_one_line(tmp_path, capsys, history, message):
    run = tmp_path / "run"
    run.mkdir()
    mf.MLP([784, 10], backend="numpy").save(run / "model.npz")
    (run / "history.json").write_text(history)
    assert main(["plot", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "history.json" in err


def test_the_default_thread_count_honours_a_cgroup_quota(tmp_path, monkeypatch):
    from mnistfast import cpus

    (tmp_path / "box").mkdir()
    (tmp_path / "cpu.max").write_text("max 100000\n")
    (tmp_path / "box" / "cpu.max").write_text("150000 100000\n")  # docker --cpus 1.5
    (tmp_path / "self_cgroup").write_text("0::/box\n")
    assert cpus._cgroup_quota_cpus(tmp_path, tmp_path / "self_cgroup") == 1.5
    monkeypatch.delenv("MNISTFAST_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpus, "_affinity_cpus", lambda: 8)
    monkeypatch.setattr(cpus, "_cgroup_quota_cpus", lambda: 0.5)  # a container given half a CPU
    assert cpus.usable_cpus() == 1 and mf.get_backend("cpp").threads == 1
    monkeypatch.setattr(cpus, "_cgroup_quota_cpus", lambda: None)
    assert cpus.usable_cpus() == 8


# -- issue 22, finding 5: a memory budget, checked before allocating -------------------------------
def conv_model_file(tmp_path, filters):
    """A model file of one 1x1 convolution with ``filters`` filters: tiny on disk, huge when run."""
    path = tmp_path / "wide.npz"
    mf.Sequential([mf.Conv2D(filters, 1), mf.GlobalAvgPool2D(), mf.Dense(10)], input_shape=(1, 28, 28),
                  backend="numpy").save(path)
    return path


def test_a_model_whose_one_sample_exceeds_the_budget_is_refused_at_load(tmp_path, monkeypatch):
    path = conv_model_file(tmp_path, 2000)  # 28*28*2000 floats a sample, three times over: 18 MiB
    monkeypatch.setenv("MNISTFAST_MAX_MEMORY", "8M")
    with pytest.raises(ValueError, match=r"wide.npz: one sample's activations would need 18.0 MiB, more than the "
                                         r"memory budget of 8.0 MiB"):
        mf.load_model(path)
    monkeypatch.setenv("MNISTFAST_MAX_MEMORY", "lots")
    with pytest.raises(ValueError, match="MNISTFAST_MAX_MEMORY='lots' is not a size"):
        mf.load_model(path)


def test_predict_takes_the_batch_the_budget_allows(tmp_path, monkeypatch, mnist):
    (X, _), _ = mnist
    model = mf.load_model(conv_model_file(tmp_path, 200))
    want = model.predict_proba(X[:40])
    monkeypatch.setenv("MNISTFAST_MAX_MEMORY", str(5 * model._bytes_per_sample()))  # 5 rows at a time
    seen = []
    real_forward = model.forward
    monkeypatch.setattr(model, "forward", lambda x, training=False: seen.append(x.shape[0]) or real_forward(x, training))
    np.testing.assert_allclose(model.predict_proba(X[:40], batch_size=256), want, rtol=1e-6, atol=1e-7)
    assert max(seen) == 5
    with pytest.raises(ValueError, match="fit: a batch of 128 samples would need"):
        model.fit(X[:200], np.zeros(200, np.int64), epochs=1, verbose=0)


def test_an_unused_archive_member_is_never_decompressed(tmp_path):
    path = tmp_path / "padded.npz"
    mf.MLP([784, 10], backend="numpy").save(path)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as z:
        buf = io.BytesIO()
        np.save(buf, np.zeros(100 << 20, np.uint8))  # 100 MiB that deflate to 100 KB
        z.writestr("junk.npy", buf.getvalue())
    assert path.stat().st_size < 1 << 20
    assert peak_rss_mb(f"import mnistfast as mf\nmf.load_model({str(path)!r}, backend='numpy')") < 50


# -- issue 22, finding 9: the smaller ones -------------------------------------------------------
def test_an_ensemble_of_differently_preprocessed_members_is_refused():
    a, b = mf.MLP([784, 10], seed=0), mf.MLP([784, 10], seed=1)
    a.preprocessing, b.preprocessing = mf.Preprocessing("scale"), mf.Preprocessing("standardize", np.zeros(784),
                                                                                   np.ones(784))
    with pytest.raises(ValueError, match="member 1 preprocesses its input differently"):
        mf.Ensemble([a, b])
    b.preprocessing = mf.Preprocessing("scale")
    assert mf.Ensemble([a, b]).n_classes == 10


def test_eval_reads_only_the_test_files_of_a_directory(tmp_path, small_mnist_dir, capsys):
    d = tmp_path / "test_only"
    d.mkdir()
    for f in small_mnist_dir.glob("t10k-*"):
        (d / f.name).write_bytes(f.read_bytes())
    model = tmp_path / "m.npz"
    mf.MLP([784, 10], backend="numpy").save(model)
    assert main(["eval", str(model), "--data", str(d), "--out", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["samples"] == 500
    capsys.readouterr()


@pytest.mark.parametrize("kind,message", [("dir", "is a directory, not a model file"),
                                          ("run", "is a directory; give the model file in it"),
                                          ("fifo", "is a FIFO, not a model file"),
                                          ("loop", "Too many levels of symbolic links"),
                                          ("dangling", "a symbolic link to nothing")])
def test_what_a_model_path_is_instead(tmp_path, kind, message):
    path = tmp_path / "x"
    if kind in ("dir", "run"):
        path.mkdir()
        if kind == "run":
            mf.MLP([784, 10], backend="numpy").save(path / "model.npz")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "loop":
        (tmp_path / "y").symlink_to(path)
        path.symlink_to(tmp_path / "y")
    else:
        path.symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=message):
        mf.load_model(path)


def test_data_files_are_checked_against_the_budget_before_they_expand(tmp_path, monkeypatch):
    """A 1 KB gzip IDX whose header promises 900 MB of images (under the 1 GiB IDX limit), and a
    CSV whose parse would need more than the budget: refused before anything expands."""
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    bomb.write_bytes(gzip.compress(np.array([2051, 900_000, 1000, 1], ">u4").tobytes() + bytes(1 << 16)))
    monkeypatch.setenv("MNISTFAST_MAX_MEMORY", "1G")
    with pytest.raises(ValueError, match="the 900000000 bytes of images its header promises would need 5.0 GiB"):
        read_idx(bomb)
    csv = tmp_path / "train.csv"
    csv.write_text("label," + ",".join(f"pixel{i}" for i in range(784)) + "\n" + ("3," + "0," * 783 + "0\n") * 50)
    monkeypatch.setenv("MNISTFAST_MAX_MEMORY", "100K")
    with pytest.raises(ValueError, match=r"train.csv: parsing its 85452 bytes would need 1001.4 KiB"):
        load_csv(csv)
