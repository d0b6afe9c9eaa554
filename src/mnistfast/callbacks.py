"""Training callbacks and the History that ``fit`` returns, in the Keras idiom.

``fit`` gives each callback ``self.model`` and ``self.optimizer`` before training, then calls
``on_train_begin``, ``on_batch_end(step, logs)`` (``step`` counts across epochs; overriding it
makes ``fit`` read the step's loss back every step), ``on_epoch_end(epoch, logs)`` and
``on_train_end``. A callback stops training by setting ``self.model.stop_training = True``.
"""

from __future__ import annotations

import math


class Callback:
    """The base of every callback: each hook does nothing until a subclass overrides it.

    Attributes
    ----------
    model : Sequential
        The model being trained (set by ``fit`` before ``on_train_begin``).
    optimizer : mnistfast.optim.Optimizer
        Its optimizer; a callback may change ``optimizer.lr`` between epochs.
    """

    model = None
    optimizer = None

    def set_context(self, model, optimizer) -> None:
        """Attach the callback to the model and optimizer of the ``fit`` about to run."""
        self.model, self.optimizer = model, optimizer

    def on_train_begin(self, logs: dict) -> None:
        """Called once before the first step."""

    def on_batch_end(self, step: int, logs: dict) -> None:
        """Called after every step with the step's ``loss`` and ``accuracy`` (``step`` counts
        across epochs). Overriding it makes ``fit`` read each step's metrics back."""

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        """Called after each epoch with its metrics (``loss``, ``accuracy``, ``val_*``, ``lr``)."""

    def on_train_end(self, logs: dict) -> None:
        """Called once after the last epoch, also when a callback stopped training early."""

    def get_state(self) -> dict | None:
        """What the callback remembers between epochs, as JSON, for a checkpoint
        (``mnistfast.checkpoint``); None when it remembers nothing worth resuming."""
        return None

    def set_state(self, state: dict) -> None:
        """Take back what :meth:`get_state` returned, before the resumed ``fit`` starts."""
        if state is not None:
            raise ValueError(f"{type(self).__name__} keeps no state, got {state!r}")


class History:
    """What ``fit`` returns, as in Keras: ``history.history["loss"]`` is one value per epoch."""

    def __init__(self):
        self.epoch: list[int] = []
        self.history: dict[str, list[float]] = {}

    def append(self, epoch: int, logs: dict) -> None:
        """Record the metrics ``logs`` of ``epoch``."""
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


class _Monitor(Callback):
    """Tracks the best value of one logged metric; ``mode`` "auto" minimizes losses and
    maximizes everything else."""

    def __init__(self, monitor: str, min_delta: float, mode: str):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor, self.min_delta = monitor, abs(float(min_delta))
        self.minimize = mode == "min" or (mode == "auto" and "acc" not in monitor)
        self.best = math.inf if self.minimize else -math.inf

    def _value(self, logs: dict) -> float:
        if self.monitor not in logs:
            raise KeyError(f"{type(self).__name__}: '{self.monitor}' is not logged; available: {sorted(logs)} "
                           "(val_ metrics need validation_data or validation_split)")
        return float(logs[self.monitor])

    def _improved(self, value: float) -> bool:
        if self.minimize:
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs;
    ``restore_best_weights`` puts back the weights of the best epoch when it stops (or ends)."""

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, restore_best_weights=False, mode="auto"):
        super().__init__(monitor, min_delta, mode)
        self.patience, self.restore_best_weights = int(patience), bool(restore_best_weights)
        self.wait, self.stopped_epoch, self.best_epoch, self._best_params = 0, None, None, None

    def on_epoch_end(self, epoch, logs):
        value = self._value(logs)
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self._best_params = self.model.get_params()
            return
        self.wait += 1
        if self.wait >= self.patience:  # Keras: patience epochs in a row without improvement
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs):
        if self.restore_best_weights and self._best_params is not None:
            self.model.set_params(self._best_params)


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved for
    ``patience`` epochs, never below ``min_lr`` (on top of any schedule)."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, min_lr=0.0, min_delta=1e-4, mode="auto"):
        super().__init__(monitor, min_delta, mode)
        if not 0 < factor < 1:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor}")
        self.factor, self.patience, self.min_lr = float(factor), int(patience), float(min_lr)
        self.wait = 0
        self.reductions: list[tuple[int, float]] = []  # (epoch, new lr)
        self._resumed = None  # (lr_scale, lr_floor) from set_state, for the next fit

    def on_epoch_end(self, epoch, logs):
        value = self._value(logs)
        if self._improved(value):
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.wait = 0
            model = self.model
            model.lr_scale *= self.factor
            model.lr_floor = max(model.lr_floor, self.min_lr)
            self.reductions.append((epoch, max(self.optimizer.lr * self.factor, self.min_lr)))

    def on_train_begin(self, logs):
        if self._resumed is not None:  # fit has just reset the model's scale: put back the run's
            self.model.lr_scale, self.model.lr_floor = self._resumed
            self._resumed = None

    def get_state(self) -> dict:
        best = self.best if math.isfinite(self.best) else None
        return {"best": best, "wait": self.wait, "reductions": [list(r) for r in self.reductions],
                "lr_scale": self.model.lr_scale, "lr_floor": self.model.lr_floor}

    def set_state(self, state: dict) -> None:
        try:
            best = state["best"]
            self.best = (math.inf if self.minimize else -math.inf) if best is None else float(best)
            self.wait = int(state["wait"])
            self.reductions = [(int(e), float(lr)) for e, lr in state["reductions"]]
            self._resumed = (float(state["lr_scale"]), float(state["lr_floor"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"ReduceLROnPlateau: a damaged state {state!r} ({e})") from None


class ModelCheckpoint(_Monitor):
    """Save the model to ``path`` after each epoch (``{epoch}`` in the path is filled in), or only
    when ``monitor`` improves with ``save_best_only``. Each file is written atomically."""

    def __init__(self, path, monitor="val_loss", save_best_only=False, mode="auto"):
        super().__init__(monitor, 0.0, mode)
        self.path, self.save_best_only = str(path), bool(save_best_only)
        self.saved: list[str] = []

    def on_epoch_end(self, epoch, logs):
        if self.save_best_only:
            value = self._value(logs)
            if not self._improved(value):
                return
            self.best = value
        path = self.path.format(epoch=epoch, **{k: v for k, v in logs.items() if isinstance(v, float)})
        self.model.save(path)
        self.saved.append(path)


__all__ = ["Callback", "EarlyStopping", "History", "ModelCheckpoint", "ReduceLROnPlateau"]
