"""Faults never lose work: a process killed (SIGKILL, by PID) at random points of training and
saving leaves its run directory either complete and old or complete and new."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np

import mnistfast as mf

# Trains tiny models and saves each as a run directory, over and over, printing each version.
WRITER = r"""
import sys
import mnistfast as mf
from mnistfast.storage import write_directory, write_json
out = sys.argv[1]
(X, y), _ = mf.load_mnist()
X, y = X[:256], y[:256]
print("ready", flush=True)
version = 0
while True:
    version += 1
    model = mf.MLP([784, 256, 10], seed=version)
    model.fit(X, y, epochs=1, batch_size=64, verbose=0)
    total = float(sum(p.astype("float64").sum() for p in model.get_params()))
    print("save", flush=True)
    write_directory(out, {"model.npz": model.save,
                          "history.json": lambda path: write_json(path, {"version": version, "param_sum": total})})
    print("saved", flush=True)
"""


def check_run_dir(out):
    """The directory holds one version's model and history, and nothing else."""
    assert sorted(os.listdir(out)) == ["history.json", "model.npz"]
    record = json.loads((out / "history.json").read_text())
    params = mf.load_model(out / "model.npz").get_params()
    assert np.isclose(sum(p.astype(np.float64).sum() for p in params), record["param_sum"], rtol=0, atol=1e-9)
    return record["version"]


def test_kill_at_random_points_never_mixes_old_and_new(tmp_path):
    out = tmp_path / "run"
    rng = random.Random(0)
    seen, mid_save = [], 0
    for trial in range(12):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        if trial % 2:  # anywhere: mostly while training
            time.sleep(rng.uniform(0.0, 0.4))
        else:  # just after a save begins (the nth), a few milliseconds into writing ~800 KB and fsyncs
            saves = rng.randint(1, 3)
            while saves:
                saves -= proc.stdout.readline().strip() == "save"
            time.sleep(rng.uniform(0.0, 0.004))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        mid_save += any(p.name.startswith(".run.tmp-") for p in tmp_path.iterdir())
        if out.exists():
            seen.append(check_run_dir(out))
    assert len(seen) >= 8  # most kills came after a first save
    assert mid_save >= 1, "no kill landed while a directory was being written"
    # The next write cleans what the killed ones left beside the directory.
    model = mf.MLP([784, 8, 10])
    from mnistfast.storage import write_directory, write_json

    write_directory(out, {"model.npz": model.save, "history.json": lambda p: write_json(p, {"version": 0,
                          "param_sum": float(sum(a.astype(np.float64).sum() for a in model.get_params()))})})
    assert check_run_dir(out) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_written_files_get_normal_permissions(tmp_path):
    mf.MLP([784, 8, 10]).save(tmp_path / "m.npz")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o666 & ~mask
