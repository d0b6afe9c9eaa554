"""Models used from several threads (issue 22, finding 6): calls that share a model's buffers, or
a backend's workspaces, run one at a time and give the single-threaded answer. Before, two
threads predicting with one model returned probabilities up to 3.4e7 and wrong labels. And
trainings side by side on one machine (finding 7): the OpenMP spin the package asks for, and two
at once giving the lone result (their speed is measured by bench/load.py, not here)."""

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import mnistfast as mf


def in_threads(n, fn):
    results, errors = [None] * n, []
    start = threading.Barrier(n)

    def run(i):
        try:
            start.wait()
            results[i] = fn(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


@pytest.mark.parametrize("preset", ["mlp", "cnn"])
def test_eight_threads_predicting_with_one_model_get_the_single_threaded_answer(mnist, preset):
    (X, _), _ = mnist
    X = X[:600]
    model = mf.MLP(seed=1) if preset == "mlp" else mf.CNN("basic", seed=1)
    want = model.predict_proba(X, batch_size=100)
    # Different batch sizes in each thread, so that the threads' buffers differ in shape too.
    got = in_threads(8, lambda i: model.predict_proba(X, batch_size=50 + 25 * i))
    for g in got:
        np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-6)


def test_two_models_on_one_backend_predict_from_two_threads(mnist):
    (X, _), _ = mnist
    be = mf.get_backend("cpp")
    models = [mf.CNN("basic", backend=be, seed=s) for s in (1, 2)]
    want = [m.predict(X[:400]) for m in models]
    got = in_threads(8, lambda i: models[i % 2].predict(X[:400]))
    for i, g in enumerate(got):
        np.testing.assert_array_equal(g, want[i % 2])


def test_predict_during_fit_waits_for_it(mnist):
    (X, y), _ = mnist
    model = mf.MLP(seed=0)
    started, done_fitting = threading.Event(), []

    class Flags(mf.Callback):
        def on_train_begin(self, logs):
            started.set()

        def on_train_end(self, logs):  # still inside fit, before its lock is let go
            done_fitting.append(True)

    trainer = threading.Thread(target=lambda: model.fit(X[:3000], y[:3000], epochs=2, verbose=0, callbacks=[Flags()]))
    trainer.start()
    started.wait()
    probs = model.predict_proba(X[:100])
    assert done_fitting == [True]  # predict waited for the training to end
    trainer.join()
    assert np.all(np.isfinite(probs)) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


# -- many trainings on one machine (issue 22, finding 7) -------------------------------------------
def test_the_package_asks_openmp_for_a_short_spin_unless_told_otherwise():
    """The spin is asked for while the extension loads, and the environment put back (PyTorch's
    libgomp, loaded later, and child processes keep their defaults); a user's choice is kept."""
    code = ("import os, mnistfast as mf, mnistfast.cpus as c; mf.get_backend('cpp'); "
            "print(c.APPLIED.get('GOMP_SPINCOUNT'), os.environ.get('GOMP_SPINCOUNT'))")
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == [str(mf.cpus.SPIN_ROUNDS), "None"]
    for user in ({"OMP_WAIT_POLICY": "active"}, {"GOMP_SPINCOUNT": "5"}):
        out = subprocess.run([sys.executable, "-c", code], env={**env, **user}, capture_output=True, text=True,
                             check=True).stdout
        assert out.split() == ["None", user.get("GOMP_SPINCOUNT", "None")]


def test_two_trainings_at_once_both_finish_with_the_lone_result(small_mnist_dir, tmp_path):
    """Two processes training side by side on the same cores each write a complete run, the same as
    a run alone (the kernels' sums do not depend on timing)."""
    def cmd(out):
        return [sys.executable, "-m", "mnistfast", "train", "--data", str(small_mnist_dir), "--epochs", "1",
                "--layers", "784,64,10", "--verbose", "0", "--out", str(tmp_path / out)]

    subprocess.run(cmd("alone"), check=True, capture_output=True)
    procs = [subprocess.Popen(cmd(name), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for name in ("a", "b")]
    assert [p.wait() for p in procs] == [0, 0], [p.stderr.read() for p in procs]
    for p in procs:
        p.stderr.close()
    want = json.loads((tmp_path / "alone" / "history.json").read_text())
    for name in ("a", "b"):
        got = json.loads((tmp_path / name / "history.json").read_text())
        assert got["test_accuracy"] == want["test_accuracy"] and got["epochs"][0]["loss"] == want["epochs"][0]["loss"]
        np.testing.assert_array_equal(mf.load_model(tmp_path / name / "model.npz").get_params()[0],
                                      mf.load_model(tmp_path / "alone" / "model.npz").get_params()[0])
