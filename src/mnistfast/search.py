"""Hyperparameter search with Optuna (``pip install "mnistfast[search]"``).

The space: optimizer (SGD with momentum 0.9, or Adam with the recipe's options, at a constant
rate), learning rate (log scale), batch size and, for the MLP, its hidden layers; the model is the
MLP or the ``cnn`` or ``cnn-fast`` preset. ``best.json``'s ``train`` entry holds the flags
that train the best trial's model again (``mnistfast train --config best.json``). A study keeps
the settings its trials were scored under (model, epochs, subset, data, seed) and refuses trials
scored under others. Each trial trains on the training split and reports its validation
accuracy after every epoch, so hopeless trials are pruned (median rule); the test set is never
looked at. Samplers: ``tpe`` (Optuna's default), ``random``, ``grid``. Trials live in an Optuna
storage: a SQLite file by default, or a server URL (``postgresql://...``) that any number of
processes on any number of machines share by using the same study name.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

SAMPLERS = ("tpe", "random", "grid")
# The presets a search can tune: the MLP (its hidden layers too) and the CNNs whose recipe has
# neither augmentation nor a plateau callback, so that a trial trains exactly as `train` does.
MODELS = ("mlp", "cnn", "cnn-fast")
HIDDEN = ("64", "128", "256", "128,64", "256,128")
BATCH_SIZES = (32, 64, 128, 256)
GRID = {"optimizer": ["sgd", "adam"], "lr": [0.003, 0.03, 0.3], "batch_size": [64, 128], "hidden": ["128", "128,64"]}


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ImportError('search needs Optuna: pip install "mnistfast[search]"') from None
    return optuna


def suggest(trial, model: str = "mlp") -> dict:
    """One trial's settings drawn from the space: optimizer, learning rate, batch size, and for
    the MLP its hidden layers."""
    optimizer = trial.suggest_categorical("optimizer", ["sgd", "adam"])
    p = {"optimizer": optimizer,
         "lr": trial.suggest_float("lr", 1e-3, 1.0, log=True),
         "batch_size": trial.suggest_categorical("batch_size", list(BATCH_SIZES))}
    if model == "mlp":
        p["hidden"] = trial.suggest_categorical("hidden", list(HIDDEN))
    return p


def grid(model: str = "mlp") -> dict:
    """The grid sampler's points for ``model`` (``GRID`` without the hidden layers for a CNN)."""
    return GRID if model == "mlp" else {k: v for k, v in GRID.items() if k != "hidden"}


# What a trial's settings mean, in the objective and in `train --config best.json` alike: SGD
# with this momentum, and a constant rate.
SGD_MOMENTUM = 0.9
VALIDATION_SPLIT = 0.1


def train_settings(params: dict, epochs: int, features: int, seed: int, n_classes: int = 10,
                   model: str = "mlp") -> dict:
    """The ``mnistfast train`` flags (without dashes) that train a trial's model as the trial did:
    on the same split (given the same ``--data``), to the same validation accuracy."""
    settings = {"model": model, "optimizer": params["optimizer"], "lr": params["lr"], "lr_schedule": "constant",
                "batch_size": params["batch_size"], "epochs": epochs, "normalize": "scale",
                "validation_split": VALIDATION_SPLIT, "seed": seed}
    if model == "mlp":
        settings["layers"] = ",".join(str(n) for n in _layers(params, features, n_classes))
    if params["optimizer"] == "sgd":
        settings["momentum"] = SGD_MOMENTUM
    return settings


def _layers(params: dict, features: int, n_classes: int) -> list:
    return [features, *(int(h) for h in params["hidden"].split(",")), n_classes]


def _fit_kwargs(model: str, p: dict) -> dict:
    """One epoch of the trial's training, through the recipe as ``train`` builds it, so the two
    agree on every option (SGD's momentum, the recipe's Adam betas)."""
    from .presets import RECIPES

    options = {"momentum": SGD_MOMENTUM} if p["optimizer"] == "sgd" else {}
    return RECIPES[model].fit_kwargs(optimizer_options=options, optimizer=p["optimizer"], lr=p["lr"],
                                     lr_schedule="constant", batch_size=p["batch_size"], epochs=1)


def make_objective(train, val, epochs: int, backend: str, seed: int, n_classes: int = 10, model: str = "mlp",
                   image_shape=None):
    """An Optuna objective: the validation accuracy of the preset ``model`` (for images of
    ``image_shape``) trained with the trial's settings."""
    from .preprocessing import Preprocessing
    from .presets import preset

    if model not in MODELS:
        raise ValueError(f"search: --model {model} cannot be searched; choose one of {', '.join(MODELS)}")
    optuna = _optuna()
    (X, y), (Xv, yv) = train, val
    image_shape = tuple(image_shape or (X.shape[1],))

    def objective(trial):
        p = suggest(trial, model)
        trial.set_user_attr("settings", p)  # all of them, those a sampler held fixed too
        layers = _layers(p, X.shape[1], n_classes) if model == "mlp" else None
        net = preset(model, image_shape, n_classes, backend=backend, seed=seed,
                     **({"layers": layers} if model == "mlp" else {}))
        net.preprocessing = Preprocessing("scale")
        kwargs = _fit_kwargs(model, p)
        acc = 0.0
        for epoch in range(epochs):
            try:
                net.fit(X, y, verbose=0, **kwargs)
            except FloatingPointError:
                raise optuna.TrialPruned("diverged") from None
            acc = net.evaluate(Xv, yv)["accuracy"]
            trial.report(acc, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"validation accuracy {acc:.4f} after epoch {epoch + 1}")
        return acc

    return objective


def make_sampler(name: str, seed=None, model: str = "mlp"):
    """The Optuna sampler called ``name`` (one of ``SAMPLERS``), seeded; the grid is ``grid(model)``."""
    optuna = _optuna()
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(grid(model), seed=seed)
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


# A worker's trials send a heartbeat this often; a RUNNING trial silent for the grace period
# belongs to a worker that was killed, and the next worker to start marks it failed.
HEARTBEAT_S = 30
GRACE_S = 120


def _storage_error(url: str, e: Exception) -> ValueError:
    first = " ".join(str(e).split("\n")[0].split())[:300]
    return ValueError(f"search storage {url.split('@')[-1]}: {first or type(e).__name__}")


def _open_study(optuna, name, url, sampler, attempts: int = 8):
    """Create or join the study, with heartbeats on. Workers started together race to create the
    storage's tables and the study itself; the loser of such a race retries and then joins. A
    storage that cannot be used (a corrupt or read-only SQLite file, a directory, a bad URL, a
    server that does not answer) is a ValueError naming it."""
    from sqlalchemy import exc

    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna, and have been for years
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
            return optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True,
                                       sampler=sampler,
                                       pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0))
        except (exc.OperationalError, exc.IntegrityError, optuna.exceptions.DuplicatedStudyError) as e:
            if attempt == attempts - 1:
                raise _storage_error(url, e) from None
            time.sleep(0.2 * (attempt + 1))
        # Optuna fills the URL in as a format string: braces in it raise IndexError or KeyError.
        except (exc.SQLAlchemyError, optuna.exceptions.OptunaError, OSError, ValueError, ImportError, IndexError,
                KeyError) as e:
            raise _storage_error(url, e) from None


def _check_settings(st, storage: str, settings: dict) -> None:
    """Record the settings a study's trials are scored under when it is new; refuse to add trials
    scored under others to it (their accuracies would not compare)."""
    recorded = st.user_attrs.get("settings")
    if recorded is None:
        st.set_user_attr("settings", settings)
        return
    differ = {k: (recorded.get(k), v) for k, v in settings.items() if recorded.get(k) != v}
    if differ:
        said = ", ".join(f"{k} {old!r} there, {new!r} here" for k, (old, new) in differ.items())
        raise ValueError(f"study {st.study_name!r} in {storage.split('@')[-1]} scores its trials with other settings "
                         f"({said}): name another --study, or search with its settings")


def run_search(trials: int, out, sampler: str = "tpe", storage: str | None = None, study: str = "mnistfast",
               epochs: int = 3, subset: int | None = None, data=None, backend: str = "cpp", seed: int = 0,
               sampler_seed=None, log=print, model: str = "mlp") -> dict:
    """Run ``trials`` trials of the preset ``model`` (one of ``MODELS``) in this process against
    the shared study, then write ``best.json`` and ``trials.csv`` (every trial of the study so
    far, from every worker, as Optuna's ``trials_dataframe``) into ``out``."""
    from .data import train_val_split
    from .dataset import load_dataset
    from .storage import atomic_write, write_json

    optuna = _optuna()
    if model not in MODELS:
        raise ValueError(f"search: --model {model} cannot be searched; choose one of {', '.join(MODELS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    storage = _storage_url(storage or f"sqlite:///{(out / 'study.db').resolve()}")
    dataset = load_dataset(data, seed=seed)
    (X, y), val = train_val_split(*dataset.train, VALIDATION_SPLIT, seed)
    if subset:
        X, y = X[:subset], y[:subset]
    # Each trial's line comes from `report`; Optuna's own warnings would print a traceback for a
    # trial stopped by Ctrl-C, which the command line reports in one line.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    st = _open_study(optuna, study, storage, make_sampler(sampler, sampler_seed, model))

    def report(st_, trial):
        value = "pruned" if trial.value is None else f"{trial.value:.4f}"
        log(f"trial {trial.number}: {trial.state.name.lower()} {value} {trial.params}")

    from sqlalchemy import exc

    try:
        _check_settings(st, storage, {"epochs": epochs, "subset": subset, "seed": seed, "model": model,
                                      "data": None if data is None else str(Path(data).resolve())})
        st.optimize(make_objective((X, y), val, epochs, backend, seed, dataset.n_classes, model, dataset.image_shape),
                    n_trials=trials, callbacks=[report])
        all_trials = st.get_trials(deepcopy=False)
    except exc.SQLAlchemyError as e:  # the storage went away or turned read-only mid-search
        raise _storage_error(storage, e) from None
    done = [t for t in all_trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise RuntimeError(f"study {study!r}: no trial completed (all pruned or failed)")
    best = st.best_trial
    result = {"study": study, "storage": storage.split("@")[-1], "sampler": sampler, "epochs": epochs,
              "best_validation_accuracy": best.value, "best_params": best.params, "best_trial": best.number,
              "trials": len(all_trials), "completed": len(done),
              "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in all_trials),
              "train": train_settings(best.user_attrs.get("settings", best.params), epochs, X.shape[1], seed,
                                      dataset.n_classes, model)}
    write_json(out / "best.json", result)
    atomic_write(out / "trials.csv", lambda f: f.write(trials_table(st).encode()))
    return result


def trials_table(st) -> str:
    """The study's trials as CSV, from Optuna's ``trials_dataframe`` (pandas): ``trial``,
    ``state`` (complete, pruned, ...), ``validation_accuracy``, the times, then one column per
    searched setting."""
    try:
        frame = st.trials_dataframe(attrs=("number", "state", "value", "datetime_start", "datetime_complete",
                                           "duration", "params"))
    except ImportError:
        raise ImportError('search writes trials.csv with pandas: pip install "mnistfast[search]"') from None
    frame = frame.rename(columns={"number": "trial", "value": "validation_accuracy",
                                  **{c: c[len("params_"):] for c in frame.columns if c.startswith("params_")}})
    frame["state"] = frame["state"].str.lower()
    return frame.to_csv(index=False)
