"""Trainings dividing the CPUs among themselves (issue 22, finding 7): the registry of running
trainings, the share each takes, the dead ones cleared, and ``fit`` taking its share without
its answer changing (the kernels' sums do not depend on the thread count). The speed this buys
is measured by bench/load.py, not here."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import mnistfast as mf
from mnistfast.backends.cpp_backend import CppBackend
from mnistfast.core_share import CoreShare, NoShare, share


class Recorder:
    def __init__(self, start):
        self.calls, self.now = [], start

    def __call__(self, n):
        self.calls.append(n)
        self.now = n


@pytest.mark.parametrize("cpus, members, want", [(2, 1, [2]), (2, 2, [1, 1]), (2, 3, [1, 1, 1]),
                                                  (4, 3, [2, 1, 1]), (8, 3, [3, 3, 2]), (1, 2, [1, 1])])
def test_the_cpus_are_divided_with_the_remainder_to_the_oldest(cpus, members, want):
    assert [share(cpus, r, members) for r in range(members)] == want


def test_a_second_training_halves_the_first_and_gives_its_cores_back(tmp_path):
    first, second = Recorder(2), Recorder(2)
    with CoreShare(2, first, tmp_path, poll_seconds=0) as a:
        assert a.threads == 2 and first.calls == []
        with CoreShare(2, second, tmp_path, poll_seconds=0) as b:
            assert b.threads == 1 and second.now == 1
            assert a.poll() == 1 and first.now == 1
            assert a.members() == b.members() == sorted([a.name, b.name])
        assert second.now == 2  # put back as it was
        assert a.poll() == 2 and first.now == 2
    assert list(tmp_path.iterdir()) == []


def test_a_killed_trainings_file_is_cleared_by_the_next_look(tmp_path):
    code = ("import sys, time\nfrom mnistfast.core_share import CoreShare\n"
            f"with CoreShare(2, lambda n: None, {str(tmp_path)!r}):\n"
            "    print('registered', flush=True)\n    time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "registered"
        with CoreShare(2, lambda n: None, tmp_path, poll_seconds=0) as me:
            assert len(me.members()) == 2 and me.threads == 1
            child.send_signal(signal.SIGKILL)
            child.wait()
            assert me.members() == [me.name] and me.poll() == 2
            assert sorted(p.name for p in tmp_path.iterdir()) == [me.name]
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


def test_a_registry_that_cannot_be_written_leaves_the_threads_alone(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    rec = Recorder(2)
    with CoreShare(2, rec, tmp_path / "file" / "registry", poll_seconds=0) as s:
        assert s.poll() == 2 and s.members() == []
    assert rec.calls == []


def test_a_thread_count_someone_chose_is_never_shared(monkeypatch):
    monkeypatch.delenv("MNISTFAST_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert isinstance(CppBackend(threads=2).core_share(), NoShare)
    monkeypatch.setenv("MNISTFAST_NUM_THREADS", "2")
    assert isinstance(CppBackend().core_share(), NoShare)
    assert isinstance(mf.get_backend("numpy").core_share(), NoShare)


def test_fit_takes_its_share_between_steps_and_keeps_its_answer(mnist, tmp_path, monkeypatch):
    """A training that finds another running trains on one thread of two, goes back to two when
    it ends, and its weights are the ones of a training alone, bit for bit."""
    (X, y), _ = mnist
    X, y = X[:2048].reshape(-1, 1, 28, 28), y[:2048]
    for var in ("MNISTFAST_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MNISTFAST_SHARE_DIR", str(tmp_path))
    monkeypatch.setattr("mnistfast.cpus.usable_cpus", lambda: 2)

    class Threads(mf.callbacks.Callback):
        def __init__(self):
            self.seen = set()

        def on_batch_end(self, batch, logs):
            self.seen.add(self.model.backend.threads)

    def train(callbacks=()):
        model = mf.CNN("basic", seed=3, backend=CppBackend())
        model.fit(X, y, epochs=1, batch_size=256, verbose=0, callbacks=callbacks)
        return model

    alone = Threads()
    want = train([alone]).get_params()
    assert alone.seen == {2}
    other = Threads()
    with CoreShare(2, lambda n: None, tmp_path):
        model = train([other])
    assert other.seen == {1} and model.backend.threads == 2
    for g, w in zip(model.get_params(), want):
        np.testing.assert_array_equal(g, w)
    assert os.listdir(tmp_path) == []
