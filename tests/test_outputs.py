"""Outputs never destroy what mnistfast did not write (issue 22, findings 1 to 4): a run directory
holding the user's files, devices and FIFOs, links, two writers at once, and a check that looks
where the write happens. Each case failed before ``mnistfast.outputs`` existed."""

import fcntl
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import mnistfast as mf
from mnistfast.cli import main
from mnistfast.outputs import RUN_MARKER, OutputError, RunDirectory


def train(out, data, *extra):
    return main(["train", "--data", str(data), "--epochs", "0", "--layers", "784,10", "--out", str(out), *extra])


def test_a_directory_of_the_users_files_is_refused_and_kept(small_mnist_dir, tmp_path, capsys):
    out = tmp_path / "p"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    assert train(out, small_mnist_dir) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds files mnistfast did not write (thesis.tex)" in err
    assert sorted(os.listdir(out)) == ["thesis.tex"] and (out / "thesis.tex").read_text() == "years of work"


def test_cwd_is_refused_when_it_holds_the_users_files(small_mnist_dir, tmp_path, capsys, monkeypatch):
    (tmp_path / "notes.txt").write_text("mine")
    monkeypatch.chdir(tmp_path)
    assert train(".", small_mnist_dir) == 2
    assert "holds files mnistfast did not write" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_a_run_directory_is_marked_and_may_be_replaced(small_mnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()  # empty: nothing to lose
    assert train(out, small_mnist_dir) == 0
    assert sorted(os.listdir(out)) == sorted([RUN_MARKER, "history.json", "model.npz"])
    assert json.loads((out / RUN_MARKER).read_text())["format"] == "mnistfast.run/1"
    (out / "eval.json").write_text("{}")  # what `eval` adds to a run: ours too
    assert train(out, small_mnist_dir, "--seed", "1") == 0
    assert json.loads((out / "history.json").read_text())["config"]["seed"] == 1
    assert "eval.json" not in os.listdir(out)
    capsys.readouterr()


def test_a_run_written_before_the_marker_may_be_replaced(small_mnist_dir, tmp_path, capsys):
    out = tmp_path / "old"
    out.mkdir()
    (out / "model.npz").write_bytes(b"")
    (out / "history.json").write_text("{}")
    (out / "loss.png").write_bytes(b"")
    assert train(out, small_mnist_dir) == 0
    assert RUN_MARKER in os.listdir(out)
    capsys.readouterr()


def test_a_link_to_a_run_directory_stays_a_link(small_mnist_dir, tmp_path, capsys):
    target = tmp_path / "real"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    assert train(link, small_mnist_dir) == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert "model.npz" in os.listdir(target)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp") or ".tmp-" in p]
    capsys.readouterr()


@pytest.mark.parametrize("command", ["predict", "eval"])
def test_a_fifo_as_output_is_refused_and_kept(small_mnist_dir, tmp_path, capsys, command):
    model = tmp_path / "m.npz"
    mf.MLP([784, 10], backend="numpy").save(model)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # a character device (mknod, root only) takes the same path through the check
    extra = ["--data", str(small_mnist_dir / "t10k-images-idx3-ubyte.gz")] if command == "predict" else \
        ["--data", str(small_mnist_dir)]
    assert main([command, str(model), *extra, "--out", str(fifo)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists and is a FIFO" in err
    assert os.path.exists(fifo) and not os.path.isfile(fifo)


def test_a_link_as_an_output_file_is_followed(tmp_path):
    from mnistfast.submission import write_submission

    target = tmp_path / "real.csv"
    target.write_text("old")
    link = tmp_path / "sub.csv"
    link.symlink_to(target)
    write_submission(link, np.array([3, 1]))
    assert link.is_symlink() and target.read_text().startswith("ImageId,Label")


def test_a_second_writer_fails_at_once_before_training(small_mnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    with RunDirectory(out):  # the first writer, mid-training
        assert train(out, small_mnist_dir) == 2
    err = capsys.readouterr()
    assert "another mnistfast run is writing there" in err.err and "test accuracy" not in err.out
    assert train(out, small_mnist_dir) == 0  # the lock went with the first writer
    capsys.readouterr()


def test_two_trainings_into_one_directory_leave_one_complete_run(small_mnist_dir, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "mnistfast", "train", "--data", str(small_mnist_dir), "--epochs", "1",
           "--layers", "784,10", "--out", str(out)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    done = [(p.wait(), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert 0 in [code for code, _ in done], done
    for code, err in done:  # the loser, if they overlapped, says so in one line
        assert code == 0 or (code == 2 and "another mnistfast run is writing there" in err), (code, err)
    assert sorted(os.listdir(out)) == sorted([RUN_MARKER, "history.json", "model.npz"])
    mf.load_model(out / "model.npz")
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p or ".old-" in p]


def test_the_lock_is_an_flock_other_tools_can_see(tmp_path):
    with RunDirectory(tmp_path / "run"):
        fd = os.open(tmp_path / ".run.lock", os.O_RDWR)
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)


def test_the_check_tests_the_parent_where_the_write_happens(small_mnist_dir, tmp_path, capsys, monkeypatch):
    """A writable DIR under a parent that takes no new entry: the run would be built in the parent."""
    parent = tmp_path / "ro"
    (parent / "run").mkdir(parents=True)
    real = mf.outputs.tempfile.mkdtemp

    def mkdtemp(*args, dir=None, **kwargs):  # root may write anywhere: the parent's refusal is simulated
        if os.path.realpath(dir) == str(parent):
            raise PermissionError(13, "Permission denied")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(mf.outputs.tempfile, "mkdtemp", mkdtemp)
    assert train(parent / "run", small_mnist_dir) == 2
    captured = capsys.readouterr()
    assert f"cannot write in {parent}" in captured.err and "test accuracy" not in captured.out


def test_a_full_disk_is_found_before_training(small_mnist_dir, tmp_path, capsys, monkeypatch):
    usage = mf.outputs.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(mf.outputs.shutil, "disk_usage", lambda p: usage._replace(free=1 << 20))
    assert train(tmp_path / "run", small_mnist_dir) == 2
    captured = capsys.readouterr()
    assert "1 MiB free" in captured.err and "test accuracy" not in captured.out
    assert not (tmp_path / "run").exists()


def test_run_directory_refuses_what_is_not_a_directory(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="exists and is a regular file, not a directory"):
        with RunDirectory(tmp_path / "f"):
            pass
    assert (tmp_path / "f").read_text() == "x"
