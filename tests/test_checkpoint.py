"""A run stopped after an epoch and resumed from its checkpoint equals the run never stopped, bit
for bit (issue 22: runs survive interruption): on the API, and on the command line stopped by
SIGINT or SIGTERM or by a failed final write."""

import json
import signal
import subprocess
import sys

import numpy as np
import pytest

import mnistfast as mf
from mnistfast.checkpoint import CheckpointEachEpoch, load_checkpoint, restore_callbacks, save_checkpoint


def net(kind):
    if kind == "mlp":
        return mf.MLP([784, 32, 10], seed=3, dropout=0.2)
    return mf.Sequential([mf.Conv2D(4, 3, activation="relu"), mf.MaxPool2D(2), mf.Flatten(), mf.Dropout(0.3),
                          mf.Dense(10)], input_shape=(1, 28, 28), seed=3)


@pytest.mark.parametrize("kind,opt", [("mlp", lambda: mf.optim.SGD(lr=0.1, momentum=0.9)),
                                      ("cnn", lambda: mf.optim.Adam(lr=2e-3))])
def test_stopped_and_resumed_equals_never_stopped(mnist, tmp_path, kind, opt):
    (X, y), _ = mnist
    X, y = X[:1200], y[:1200]
    fit = dict(epochs=4, batch_size=100, lr_schedule="cosine", verbose=0)
    whole = net(kind)
    whole.fit(X, y, optimizer=opt(), **fit)

    # The same 4-epoch run (its schedule is the 4-epoch one), stopped after its second epoch.
    half = net(kind)
    o = opt()
    stopper = CheckpointEachEpoch(tmp_path / "ck4.npz")

    class StopAfter2(mf.Callback):
        def on_epoch_end(self, epoch, logs):
            if epoch == 2:
                self.model.stop_training = True

    half.fit(X, y, optimizer=o, callbacks=[stopper, StopAfter2()], **fit)
    model, optimizer, meta = load_checkpoint(tmp_path / "ck4.npz")
    assert meta["epoch"] == 2 and [h["epoch"] for h in meta["history"]] == [1, 2]
    model.fit(X, y, optimizer=optimizer, initial_epoch=meta["epoch"], **fit)
    for a, b in zip(model.get_params(), whole.get_params()):
        np.testing.assert_array_equal(a, b)
    assert optimizer.iterations == 4 * 12


def test_a_plateau_callback_resumes_with_its_memory(mnist, tmp_path):
    """ReduceLROnPlateau's best value, patience count and learning-rate scale travel in the
    checkpoint: the resumed run reduces the rate where the run never stopped does. (A min_delta
    no loss can beat makes it reduce after every epoch but the first.)"""
    (X, y), _ = mnist
    X, y = X[:1200], y[:1200]
    fit = dict(epochs=4, batch_size=100, verbose=0)

    def plateau():
        return mf.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=10.0)

    whole, p = net("mlp"), plateau()
    whole.fit(X, y, optimizer=mf.optim.SGD(lr=0.1, momentum=0.9), callbacks=[p], **fit)
    assert [e for e, _ in p.reductions] == [2, 3, 4]

    half, first = net("mlp"), plateau()

    class StopAfter2(mf.Callback):
        def on_epoch_end(self, epoch, logs):
            self.model.stop_training = epoch == 2

    saver = CheckpointEachEpoch(tmp_path / "ck.npz", keep=[first])
    half.fit(X, y, optimizer=mf.optim.SGD(lr=0.1, momentum=0.9), callbacks=[first, saver, StopAfter2()], **fit)
    model, optimizer, meta = load_checkpoint(tmp_path / "ck.npz")
    assert meta["callbacks"][0]["lr_scale"] == 0.5 and meta["callbacks"][0]["wait"] == 0
    again = plateau()
    restore_callbacks([again], meta["callbacks"])
    model.fit(X, y, optimizer=optimizer, initial_epoch=meta["epoch"], callbacks=[again], **fit)
    assert again.reductions == p.reductions
    for a, b in zip(model.get_params(), whole.get_params()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="the state of 1 callbacks, the run has 0"):
        restore_callbacks([], meta["callbacks"])
    with pytest.raises(ValueError, match="damaged state"):
        plateau().set_state({"best": 1.0})


def test_a_checkpoint_of_another_kind_is_refused(tmp_path):
    mf.MLP([784, 10]).save(tmp_path / "m.npz")
    with pytest.raises(ValueError, match="not a mnistfast checkpoint"):
        load_checkpoint(tmp_path / "m.npz")
    with pytest.raises(ValueError, match="initial_epoch 3 is past the last epoch, 2"):
        mf.MLP([784, 10]).fit(np.zeros((4, 784), np.float32), np.zeros(4, np.int64), epochs=2, initial_epoch=3)
    with pytest.raises(TypeError, match="cannot record"):
        class Odd(mf.optim.SGD):
            pass

        m, o = mf.MLP([784, 10]), Odd(lr=0.1)
        o.bind(m.flat_params, m.flat_grads, m.backend)
        save_checkpoint(tmp_path / "c.npz", m, o, 1, [])


# A train whose process signals itself right after epoch 3's checkpoint: the real signal path,
# at a moment the test chooses rather than one a race decides.
SELF_SIGNAL = """
import os, sys
import mnistfast.checkpoint as c
from mnistfast.cli import main
save = c.CheckpointEachEpoch.on_epoch_end

def on_epoch_end(self, epoch, logs):
    save(self, epoch, logs)
    if epoch == 3:
        os.kill(os.getpid(), int(sys.argv[1]))

c.CheckpointEachEpoch.on_epoch_end = on_epoch_end
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_train_interrupted_then_resumed_writes_the_uninterrupted_run(small_mnist_dir, tmp_path, sig):
    args = ["train", "--data", str(small_mnist_dir), "--epochs", "6", "--layers", "784,32,10", "--verbose", "0"]
    subprocess.run([sys.executable, "-m", "mnistfast", *args, "--out", str(tmp_path / "whole")], check=True,
                   capture_output=True)

    out, ckpt = tmp_path / "run", tmp_path / ".run.checkpoint.npz"
    done = subprocess.run([sys.executable, "-c", SELF_SIGNAL, str(int(sig)), *args, "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 130 and done.stderr.count("\n") == 1, done.stderr
    assert "after epoch 3 of 6; go on with: mnistfast train --resume" in done.stderr
    assert ckpt.exists() and not out.exists()

    done = subprocess.run([sys.executable, "-m", "mnistfast", "train", "--resume", str(out), "--verbose", "0"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "resuming after epoch 3 of 6" in done.stdout and not ckpt.exists()
    whole, resumed = (mf.load_model(tmp_path / d / "model.npz") for d in ("whole", "run"))
    for a, b in zip(resumed.get_params(), whole.get_params()):
        np.testing.assert_array_equal(a, b)
    history = [json.loads((tmp_path / d / "history.json").read_text()) for d in ("whole", "run")]
    assert [e["epoch"] for e in history[1]["epochs"]] == [1, 2, 3, 4, 5, 6]
    assert [e["loss"] for e in history[1]["epochs"]] == [e["loss"] for e in history[0]["epochs"]]


def test_a_failed_final_write_keeps_the_training(small_mnist_dir, tmp_path, capsys, monkeypatch):
    from mnistfast.cli import main

    out = tmp_path / "run"

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("mnistfast.storage.write_directory", full)
    argv = ["train", "--data", str(small_mnist_dir), "--epochs", "2", "--layers", "784,10", "--verbose", "0",
            "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and f"mnistfast train --resume {out}" in err
    monkeypatch.undo()
    assert main(["train", "--resume", str(out), "--verbose", "0"]) == 0
    assert (out / "model.npz").exists() and not (tmp_path / ".run.checkpoint.npz").exists()
    assert "resuming after epoch 2 of 2" in capsys.readouterr().out
