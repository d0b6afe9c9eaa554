"""The user's workflow end to end on a small subset: train, eval, predict a Kaggle submission,
plot a run, search hyperparameters (SQLite, two workers, PostgreSQL), and a model that remembers
its preprocessing."""

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

import mnistfast as mf
from mnistfast.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_dir(small_mnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "std"
    assert main(["train", "--data", str(small_mnist_dir), "--epochs", "2", "--normalize", "standardize",
                 "--validation-split", "0.1", "--verbose", "0", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def raw_test(small_mnist_dir):
    (_, _), (Xt, yt) = mf.load_mnist(small_mnist_dir, normalize=None)
    return Xt, yt


# -- preprocessing travels with the model ----------------------------------------------------------
def test_standardized_model_predicts_raw_pixels_like_normalized_ones(run_dir, raw_test, small_mnist_dir):
    model = mf.load_model(run_dir / "model.npz")
    Xt, yt = raw_test
    assert Xt.dtype == np.uint8 and model.preprocessing.kind == "standardize"
    pre = model.preprocessing  # its saved training statistics, applied by hand
    Xn = ((Xt.astype(np.float32) - pre.mean) / pre.std).astype(np.float32)
    np.testing.assert_array_equal(model.predict(Xt), model.predict(Xn))
    np.testing.assert_allclose(model.predict_proba(Xt), model.predict_proba(Xn), rtol=1e-5, atol=1e-6)
    assert model.evaluate(Xt, yt)["accuracy"] > 0.8


def test_fit_on_raw_pixels_scales_them_and_remembers(mnist_small):
    (X, y), (Xt, yt) = mnist_small
    raw, raw_t = np.round(X * 255).astype(np.uint8), np.round(Xt * 255).astype(np.uint8)
    model = mf.MLP(seed=0)
    model.fit(raw, y, epochs=2, lr=0.3, verbose=0)
    assert model.preprocessing.kind == "scale"
    by_hand = mf.MLP(seed=0)
    by_hand.fit(raw.astype(np.float32) / 255, y, epochs=2, lr=0.3, verbose=0)
    score = model.evaluate(raw_t, yt)
    assert score == by_hand.evaluate(raw_t.astype(np.float32) / 255, yt)
    assert score["accuracy"] > 0.8  # unscaled, it diverged or sat near 10-12 %
    np.testing.assert_array_equal(model.predict(raw_t), model.predict(raw_t.astype(np.float32) / 255))


def test_raw_pixels_into_a_model_without_preprocessing_is_an_error(mnist_small):
    (X, y), _ = mnist_small
    model = mf.MLP(seed=0)
    model.fit(X[:256], y[:256], epochs=1, verbose=0)  # float input: no preprocessing recorded
    with pytest.raises(ValueError, match="raw integer pixels, but this model has no preprocessing"):
        model.predict(np.zeros((2, 784), np.uint8))
    with pytest.raises(ValueError, match="outside 0..255"):
        mf.MLP().fit(np.full((4, 784), 300, np.int64), np.zeros(4, np.int64), verbose=0)


# -- eval and predict --------------------------------------------------------------------------
def test_eval_prints_and_writes_the_report(run_dir, raw_test, small_mnist_dir, capsys, tmp_path):
    out = tmp_path / "eval.json"
    assert main(["eval", str(run_dir / "model.npz"), "--data", str(small_mnist_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "precision" in printed and "confusion matrix" in printed
    report = json.loads(out.read_text())
    Xt, yt = raw_test
    api = mf.load_model(run_dir / "model.npz").evaluate(Xt, yt)
    assert report["accuracy"] == pytest.approx(api["accuracy"]) and report["loss"] == pytest.approx(api["loss"])
    cm = np.array(report["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == len(yt) and np.trace(cm) == round(report["accuracy"] * len(yt))
    assert [r["support"] for r in report["per_class"]] == np.bincount(yt, minlength=10).tolist()
    assert all(0 <= r["f1"] <= 1 for r in report["per_class"])


def write_kaggle_test_csv(path, images):
    with open(path, "w") as f:
        f.write(",".join(f"pixel{i}" for i in range(784)) + "\n")
        for row in images:
            f.write(",".join(map(str, row)) + "\n")


def test_predict_writes_a_valid_submission(run_dir, raw_test, tmp_path, capsys):
    Xt, _ = raw_test
    data = tmp_path / "test.csv"
    write_kaggle_test_csv(data, Xt[:57])
    sub = tmp_path / "submission.csv"
    assert main(["predict", str(run_dir / "model.npz"), "--data", str(data), "--out", str(sub)]) == 0
    rows = list(csv.reader(sub.open()))
    assert rows[0] == ["ImageId", "Label"] and len(rows) == 58
    assert [int(r[0]) for r in rows[1:]] == list(range(1, 58))
    labels = np.array([int(r[1]) for r in rows[1:]])
    np.testing.assert_array_equal(labels, mf.load_model(run_dir / "model.npz").predict(Xt[:57]))
    proba = tmp_path / "proba.csv"
    assert main(["predict", str(run_dir / "model.npz"), "--data", str(data), "--out", str(proba), "--proba"]) == 0
    table = np.loadtxt(proba, delimiter=",", skiprows=1)
    assert table.shape == (57, 11)
    np.testing.assert_allclose(table[:, 1:].sum(axis=1), 1.0, atol=1e-4)
    np.testing.assert_array_equal(table[:, 1:].argmax(axis=1), labels)


def test_predict_on_an_idx_file(run_dir, small_mnist_dir, raw_test, tmp_path):
    sub = tmp_path / "s.csv"
    assert main(["predict", str(run_dir / "model.npz"), "--data", str(small_mnist_dir), "--out", str(sub)]) == 0
    assert len(sub.read_text().splitlines()) == len(raw_test[1]) + 1


# -- plots -----------------------------------------------------------------------------------------
def check_png(path, min_size):
    plt = pytest.importorskip("matplotlib.pyplot", reason="plots need matplotlib (pip install mnistfast[plot])")
    img = plt.imread(path)
    assert img.shape[0] >= min_size[0] and img.shape[1] >= min_size[1], img.shape
    assert img[..., :3].std() > 0.05  # not blank


def test_plot_and_train_plots_write_readable_figures(run_dir, small_mnist_dir, tmp_path):
    pytest.importorskip("matplotlib", reason="plots need matplotlib (pip install mnistfast[plot])")
    out = tmp_path / "figs"
    assert main(["plot", str(run_dir), "--out", str(out)]) == 0
    for name, size in [("learning_curves.png", (300, 1000)), ("confusion_matrix.png", (500, 500)),
                       ("misclassified.png", (150, 800)), ("first_layer.png", (300, 800))]:
        check_png(out / name, size)
    run = tmp_path / "cnn"
    assert main(["train", "--model", "cnn", "--data", str(small_mnist_dir), "--epochs", "1", "--verbose", "0",
                 "--plots", "--out", str(run)]) == 0
    assert sorted(p.name for p in run.iterdir()) == [".mnistfast-run", "confusion_matrix.png", "first_layer.png",
                                                      "history.json", "learning_curves.png", "misclassified.png",
                                                      "model.npz"]
    check_png(run / "first_layer.png", (300, 800))


# -- search ------------------------------------------------------------------------------------
optuna = pytest.importorskip("optuna", reason="search needs Optuna (pip install mnistfast[search])")

SEARCH = ["--subset", "600", "--epochs", "2"]


@pytest.mark.parametrize("sampler", ["tpe", "random", "grid"])
def test_search_with_sqlite(small_mnist_dir, tmp_path, sampler):
    out = tmp_path / "search"
    assert main(["search", "--trials", "4", "--sampler", sampler, "--data", str(small_mnist_dir),
                 "--out", str(out), *SEARCH]) == 0
    best = json.loads((out / "best.json").read_text())
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert best["trials"] == len(rows) == 4 and 0 < best["best_validation_accuracy"] <= 1
    assert {"optimizer", "lr", "batch_size", "hidden"} == set(best["best_params"])
    done = [float(r["validation_accuracy"]) for r in rows if r["state"] == "complete"]
    assert max(done) == pytest.approx(best["best_validation_accuracy"], abs=1e-6)


def run_workers(storage, study, out_root, data, n=2, trials=3):
    """n worker processes on one study, started together; returns their outputs."""
    procs = [subprocess.Popen([sys.executable, "-m", "mnistfast", "search", "--trials", str(trials), "--storage",
                               storage, "--study", study, "--sampler", "random", "--data", str(data),
                               "--out", str(out_root / f"w{i}"), *SEARCH],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(n)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (o, e) in zip(procs, outs):
        assert p.returncode == 0, o + e
    return outs


def test_two_workers_share_a_sqlite_study(small_mnist_dir, tmp_path):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    run_workers(storage, "shared", tmp_path, small_mnist_dir)
    trials = optuna.load_study(study_name="shared", storage=storage).get_trials()
    assert len(trials) == 6 and len({t.number for t in trials}) == 6
    seen = [json.loads((tmp_path / f"w{i}" / "best.json").read_text())["trials"] for i in range(2)]
    assert max(seen) == 6  # whoever finished last saw the other's trials too


def test_search_jobs_share_one_study_and_the_cpus(small_mnist_dir, tmp_path, capsys, monkeypatch):
    """The workers' trainings take their share of the CPUs like any trainings side by side: beside
    one more (held here), this process's trials run on one thread of two."""
    from mnistfast.core_share import CoreShare

    monkeypatch.setattr("mnistfast.cpus.usable_cpus", lambda: 2)
    for var in ("MNISTFAST_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MNISTFAST_SHARE_DIR", str(tmp_path / "registry"))
    seen = []
    real = CoreShare.poll
    out = tmp_path / "s"
    with CoreShare(2, lambda n: None):
        monkeypatch.setattr(CoreShare, "poll", lambda self, force=False: seen.append(real(self, force)) or seen[-1])
        assert main(["search", "--jobs", "2", "--trials", "5", "--sampler", "random", "--data", str(small_mnist_dir),
                     "--out", str(out), *SEARCH]) == 0
    best = json.loads((out / "best.json").read_text())
    assert best["trials"] == 5 and len(list(csv.DictReader((out / "trials.csv").open()))) == 5
    assert seen and set(seen) == {1}
    assert "2 workers" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["corrupt", "directory", "bad_url", "read_only"])
def test_an_unusable_search_storage_is_one_line(small_mnist_dir, tmp_path, capsys, monkeypatch, kind):
    storage = {"corrupt": f"sqlite:///{tmp_path / 'bad.db'}", "directory": f"sqlite:///{tmp_path}",
               "bad_url": "nonsense://host/db", "read_only": f"sqlite:///{tmp_path / 'ro.db'}"}[kind]
    (tmp_path / "bad.db").write_text("not a database")
    if kind == "read_only":  # root writes anywhere: the driver's refusal is simulated
        from sqlalchemy import exc

        def refuse(*args, **kwargs):
            raise exc.OperationalError("INSERT", {}, Exception("attempt to write a readonly database"))

        monkeypatch.setattr(optuna.storages.RDBStorage, "create_new_study", refuse)
    assert main(["search", "--trials", "1", "--storage", storage, "--data", str(small_mnist_dir),
                 "--out", str(tmp_path / "out"), *SEARCH]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mnistfast: error: search storage") and "Traceback" not in err


def test_a_killed_workers_trial_is_failed_by_the_next_start(small_mnist_dir, tmp_path, monkeypatch):
    """A worker killed mid-trial (SIGKILL) leaves its trial RUNNING; once its heartbeat is older
    than the grace period, the next worker marks it failed."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    # A trial that neither diverges nor is pruned (SGD at 0.003), so that it runs until killed.
    worker = ("import sys, mnistfast.search as s\ns.HEARTBEAT_S, s.GRACE_S = 1, 2\n"
              "s.suggest = lambda t, model='mlp': {'optimizer': 'sgd', 'lr': t.suggest_float('lr', 0.003, 0.003), "
              "'batch_size': 64, 'hidden': '16'}\n"
              "from mnistfast.cli import main\nsys.exit(main(sys.argv[1:]))")
    argv = ["search", "--trials", "1", "--storage", storage, "--data", str(small_mnist_dir), "--sampler", "random",
            "--epochs", "1000", "--subset", "600"]
    proc = subprocess.Popen([sys.executable, "-c", worker, *argv, "--out", str(tmp_path / "w0")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            trials = optuna.load_study(study_name="mnistfast", storage=storage).get_trials()
        except Exception:  # noqa: BLE001 - the worker has not made the study yet
            trials = []
        if any(t.state == optuna.trial.TrialState.RUNNING for t in trials):
            break
        time.sleep(0.2)
    time.sleep(2)  # past the worker's first heartbeat (every second here): a trial never beaten is not stale
    assert proc.poll() is None, "the worker ended before it could be killed"
    proc.kill()
    proc.wait()
    time.sleep(3)  # past the grace period
    monkeypatch.setattr("mnistfast.search.HEARTBEAT_S", 1)
    monkeypatch.setattr("mnistfast.search.GRACE_S", 2)
    steady = {"optimizer": "sgd", "batch_size": 64, "hidden": "16"}
    monkeypatch.setattr("mnistfast.search.suggest",
                        lambda t, model="mlp": {**steady, "lr": t.suggest_float("lr", 0.003, 0.003)})
    # This worker's trial is one quick epoch, not the killed one's 1000: the study's settings check
    # would (rightly) refuse it, and is not what this test is about.
    monkeypatch.setattr("mnistfast.search._check_settings", lambda *a: None)
    assert main([*argv[:9], "--epochs", "1", "--subset", "600", "--out", str(tmp_path / "w1")]) == 0
    states = [t.state for t in optuna.load_study(study_name="mnistfast", storage=storage).get_trials()]
    assert states[0] == optuna.trial.TrialState.FAIL and states[1] == optuna.trial.TrialState.COMPLETE


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL server on 127.0.0.1, run as the 'postgres' user when we are root."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not (initdb and pg_ctl):
        for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
            initdb, pg_ctl = str(d / "initdb"), str(d / "pg_ctl")
            break
    if not (initdb and os.path.exists(initdb)):
        pytest.skip("no PostgreSQL server binaries (Debian package postgresql; .ci/run installs it)")
    psycopg = pytest.importorskip("psycopg", reason="the PostgreSQL driver psycopg (pip install mnistfast[search])")
    # Under /tmp itself: the server's user must reach it (pytest's own temporary tree is 0700).
    data = Path(tempfile.mkdtemp(prefix="mnistfast-pg-"))
    as_user = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(data, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres"], check=True,
                   capture_output=True)
    opts = f"-p {port} -k {data} -c listen_addresses=127.0.0.1"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", opts, "-l", str(data / "log"), "-w", "start"],
                   check=True, capture_output=True)
    try:
        for _ in range(50):
            try:
                conn = psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True)
                break
            except psycopg.OperationalError:
                time.sleep(0.1)
        conn.execute("CREATE DATABASE mnistfast")
        conn.close()
        yield f"postgresql://postgres@127.0.0.1:{port}/mnistfast"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


def test_two_workers_share_a_postgresql_study(postgres, small_mnist_dir, tmp_path):
    run_workers(postgres, "pg-shared", tmp_path, small_mnist_dir)
    trials = optuna.load_study(study_name="pg-shared", storage=postgres).get_trials()
    assert len(trials) == 6
    assert json.loads((tmp_path / "w0" / "best.json").read_text())["storage"].startswith("127.0.0.1")


# -- running the module ---------------------------------------------------------------------------
@pytest.mark.parametrize("cwd", [REPO, Path("/")])
def test_python_dash_m_works_anywhere(cwd):
    done = subprocess.run([sys.executable, "-m", "mnistfast", "--version"], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("mnistfast "), done.stderr


def test_the_best_trial_trains_again_from_best_json(small_mnist_dir, tmp_path, capsys):
    """``train --config best.json`` trains the best trial's model as the search did (SGD with
    momentum, a constant rate, the same split): to its validation accuracy exactly (issue 23,
    finding 5). A search with other settings does not join the study."""
    out = tmp_path / "search"
    assert main(["search", "--trials", "3", "--sampler", "random", "--data", str(small_mnist_dir), "--epochs", "2",
                 "--out", str(out)]) == 0
    best = json.loads((out / "best.json").read_text())
    assert best["train"]["lr_schedule"] == "constant" and best["train"]["epochs"] == 2
    run = tmp_path / "run"
    assert main(["train", "--config", str(out / "best.json"), "--data", str(small_mnist_dir), "--verbose", "0",
                 "--out", str(run)]) == 0
    history = json.loads((run / "history.json").read_text())
    assert history["epochs"][-1]["val_accuracy"] == best["best_validation_accuracy"]
    assert history["config"]["momentum"] == best["train"].get("momentum")
    capsys.readouterr()
    assert main(["search", "--trials", "1", "--data", str(small_mnist_dir), "--epochs", "3", "--out", str(out)]) == 2
    assert "scores its trials with other settings (epochs 2 there, 3 here)" in capsys.readouterr().err


def test_a_cnn_search_trains_again_from_best_json(small_mnist_dir, tmp_path, capsys):
    """``search --model cnn-fast`` tunes the CNN preset (its recipe's Adam betas kept, as train
    keeps them), and its best trial trains again to the same validation accuracy; trials.csv is
    Optuna's dataframe. The study then refuses a search of another model."""
    out = tmp_path / "search"
    assert main(["search", "--model", "cnn-fast", "--trials", "2", "--sampler", "random",
                 "--data", str(small_mnist_dir), "--epochs", "2", "--out", str(out)]) == 0
    best = json.loads((out / "best.json").read_text())
    assert best["train"]["model"] == "cnn-fast" and "layers" not in best["train"]
    assert set(best["best_params"]) == {"optimizer", "lr", "batch_size"}
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert len(rows) == 2 and {"trial", "state", "validation_accuracy", "datetime_start", "lr"} <= set(rows[0])
    run = tmp_path / "run"
    assert main(["train", "--config", str(out / "best.json"), "--data", str(small_mnist_dir), "--verbose", "0",
                 "--out", str(run)]) == 0
    history = json.loads((run / "history.json").read_text())
    assert history["config"]["model"] == "cnn-fast" and history["config"]["lr_schedule"] == "constant"
    assert history["epochs"][-1]["val_accuracy"] == best["best_validation_accuracy"]
    capsys.readouterr()
    assert main(["search", "--model", "cnn", "--trials", "1", "--data", str(small_mnist_dir), "--epochs", "2",
                 "--out", str(out)]) == 2
    assert "model 'cnn-fast' there, 'cnn' here" in capsys.readouterr().err


def test_a_bad_config_file_is_one_line(tmp_path, capsys):
    (tmp_path / "c.json").write_text('{"batch_size": 64, "colour": "red"}')
    with pytest.raises(SystemExit) as e:
        main(["train", "--config", str(tmp_path / "c.json")])
    assert e.value.code == 2 and "'colour' is not a train flag" in capsys.readouterr().err
    (tmp_path / "c.json").write_text('{"batch_size": -3}')
    with pytest.raises(SystemExit):
        main(["train", "--config", str(tmp_path / "c.json")])
    assert "--batch-size: must be positive" in capsys.readouterr().err
    assert main(["train", "--momentum", "0.9", "--optimizer", "adam", "--out", str(tmp_path / "run")]) == 2
    assert "--momentum is SGD's; the optimizer here is adam" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
