"""Hyperparameter search with Optuna (``pip install "mnistfast[search]"``).

The space: optimizer (SGD with momentum 0.9, or Adam), learning rate (log scale), batch size and
the MLP's hidden layers. Each trial trains on the training split and reports its validation
accuracy after every epoch, so hopeless trials are pruned (median rule); the test set is never
looked at. Samplers: ``tpe`` (Optuna's default), ``random``, ``grid``. Trials live in an Optuna
storage: a SQLite file by default, or a server URL (``postgresql://...``) that any number of
processes on any number of machines share by using the same study name.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

SAMPLERS = ("tpe", "random", "grid")
HIDDEN = ("64", "128", "256", "128,64", "256,128")
BATCH_SIZES = (32, 64, 128, 256)
GRID = {"optimizer": ["sgd", "adam"], "lr": [0.003, 0.03, 0.3], "batch_size": [64, 128], "hidden": ["128", "128,64"]}


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ImportError('search needs Optuna: pip install "mnistfast[search]"') from None
    return optuna


def suggest(trial) -> dict:
    optimizer = trial.suggest_categorical("optimizer", ["sgd", "adam"])
    return {"optimizer": optimizer,
            "lr": trial.suggest_float("lr", 1e-3, 1.0, log=True),
            "batch_size": trial.suggest_categorical("batch_size", list(BATCH_SIZES)),
            "hidden": trial.suggest_categorical("hidden", list(HIDDEN))}


def make_objective(train, val, epochs: int, backend: str, seed: int):
    """An Optuna objective: validation accuracy of an MLP trained with the trial's settings."""
    from .optim import SGD, Adam
    from .preprocessing import Preprocessing
    from .presets import MLP

    optuna = _optuna()
    (X, y), (Xv, yv) = train, val

    def objective(trial):
        p = suggest(trial)
        model = MLP([X.shape[1], *(int(h) for h in p["hidden"].split(",")), 10], backend=backend, seed=seed)
        model.preprocessing = Preprocessing("scale")
        opt = SGD(lr=p["lr"], momentum=0.9) if p["optimizer"] == "sgd" else Adam(lr=p["lr"])
        acc = 0.0
        for epoch in range(epochs):
            try:
                model.fit(X, y, epochs=1, batch_size=p["batch_size"], optimizer=opt, verbose=0)
            except FloatingPointError:
                raise optuna.TrialPruned("diverged") from None
            acc = model.evaluate(Xv, yv)["accuracy"]
            trial.report(acc, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"validation accuracy {acc:.4f} after epoch {epoch + 1}")
        return acc

    return objective


def make_sampler(name: str, seed=None):
    optuna = _optuna()
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(GRID, seed=seed)
    raise ValueError(f"unknown sampler {name!r}; choose one of {SAMPLERS}")


def _storage_url(url: str) -> str:
    """``postgresql://`` means whichever PostgreSQL driver is installed: SQLAlchemy's default
    changed from psycopg2 to psycopg 3 between releases, so name the one that is there."""
    if url.startswith("postgresql://"):
        import importlib.util

        for module, dialect in (("psycopg", "postgresql+psycopg://"), ("psycopg2", "postgresql+psycopg2://")):
            if importlib.util.find_spec(module):
                return dialect + url[len("postgresql://"):]
    return url


def _open_study(optuna, name, storage, sampler, attempts: int = 8):
    """Create or join the study. Workers started together race to create the storage's tables and
    the study itself; the loser of such a race retries and then joins."""
    from sqlalchemy import exc

    for attempt in range(attempts):
        try:
            return optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True,
                                       sampler=sampler,
                                       pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0))
        except (exc.OperationalError, exc.IntegrityError, optuna.exceptions.DuplicatedStudyError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def run_search(trials: int, out, sampler: str = "tpe", storage: str | None = None, study: str = "mnistfast",
               epochs: int = 3, subset: int | None = None, data=None, backend: str = "cpp", seed: int = 0,
               sampler_seed=None, log=print) -> dict:
    """Run ``trials`` trials in this process against the shared study, then write ``best.json``
    and ``trials.csv`` (every trial of the study so far, from every worker) into ``out``."""
    from .data import load_mnist
    from .storage import atomic_write, write_json

    optuna = _optuna()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    storage = _storage_url(storage or f"sqlite:///{(out / 'study.db').resolve()}")
    (X, y), val, _ = load_mnist(data, normalize=None, validation_split=0.1, seed=seed)
    if subset:
        X, y = X[:subset], y[:subset]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    st = _open_study(optuna, study, storage, make_sampler(sampler, sampler_seed))

    def report(st_, trial):
        value = "pruned" if trial.value is None else f"{trial.value:.4f}"
        log(f"trial {trial.number}: {trial.state.name.lower()} {value} {trial.params}")

    st.optimize(make_objective((X, y), val, epochs, backend, seed), n_trials=trials, callbacks=[report])
    all_trials = st.get_trials(deepcopy=False)
    done = [t for t in all_trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise RuntimeError(f"study {study!r}: no trial completed (all pruned or failed)")
    best = st.best_trial
    result = {"study": study, "storage": storage.split("@")[-1], "sampler": sampler, "epochs": epochs,
              "best_validation_accuracy": best.value, "best_params": best.params, "best_trial": best.number,
              "trials": len(all_trials), "completed": len(done),
              "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in all_trials)}
    write_json(out / "best.json", result)
    table = io.StringIO()
    writer = csv.writer(table)
    keys = ["optimizer", "lr", "batch_size", "hidden"]
    writer.writerow(["trial", "state", "validation_accuracy", *keys])
    for t in all_trials:
        writer.writerow([t.number, t.state.name.lower(), "" if t.value is None else f"{t.value:.6f}",
                         *(t.params.get(k, "") for k in keys)])
    atomic_write(out / "trials.csv", lambda f: f.write(table.getvalue().encode()))
    return result

