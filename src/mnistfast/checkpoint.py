"""Checkpoints: a training stopped after an epoch goes on exactly where it stopped.

A checkpoint is a model file (``.npz``, no pickle) that also holds what the next epoch depends on:
the optimizer's state and step count, the model's random generator (the shuffling), the dropout
layers' step counters, the epochs done and their history. ``fit(initial_epoch=...)`` on the
restored model and optimizer then takes the same steps, bit for bit, as a run never stopped
(``tests/test_checkpoint.py``). Callbacks that remember something between epochs
(``ReduceLROnPlateau``: its best value, its patience count, the learning-rate scale it set) are
kept too, given to the checkpoint's writer; the resumed run hands the same callbacks their state
back (``Callback.set_state``) before it starts. ``EarlyStopping`` is not among them: its best
weights are not kept.
"""

from __future__ import annotations

import numpy as np

from . import optim
from .callbacks import Callback
from .storage import read_model, write_model

FORMAT = "mnistfast.checkpoint/1"
_OPTIMIZERS = {cls.__name__: cls for cls in (optim.SGD, optim.Adam, optim.AdamW)}


def _counters(model) -> list:
    """Each layer's training-step counter (dropout masks depend on it), or None."""
    return [getattr(layer, "step", None) for layer in model.layers]


def save_checkpoint(path, model, optimizer, epoch: int, history: list, extra: dict | None = None,
                    callbacks=()) -> None:
    """Write the state after ``epoch`` epochs to ``path``, atomically. ``history``: the per-epoch
    log records so far; ``extra``: any JSON the caller wants back (the command line's arguments);
    ``callbacks``: those whose state (``Callback.get_state``) the resumed run hands back, in order
    (``meta["callbacks"]``)."""
    if type(optimizer).__name__ not in _OPTIMIZERS:
        raise TypeError(f"save_checkpoint: cannot record a {type(optimizer).__name__}")
    config, arrays = model.to_payload()
    state = optimizer.get_state()
    meta = {"format": FORMAT, "model": config, "epoch": int(epoch), "history": history, "extra": extra or {},
            "optimizer": {"type": type(optimizer).__name__, "config": optimizer.get_config(),
                          "initial_lr": optimizer.initial_lr, "iterations": state["iterations"]},
            "rng": model._rng.bit_generator.state, "layer_steps": _counters(model),
            "callbacks": [cb.get_state() for cb in callbacks]}
    arrays.update({f"optimizer.{k}": v for k, v in state["arrays"].items()})
    write_model(path, meta, arrays)


def load_checkpoint(path, backend="cpp"):
    """``(model, optimizer, meta)`` from a checkpoint: the optimizer bound to the model with its
    state, ready for ``model.fit(..., optimizer=optimizer, initial_epoch=meta["epoch"])``."""
    from .serialization import model_from_payload

    meta, arrays = read_model(path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a mnistfast checkpoint (format {meta.get('format')!r})")
    try:
        model = model_from_payload(meta["model"], arrays, path, backend)
        spec = meta["optimizer"]
        optimizer = _OPTIMIZERS[spec["type"]](**spec["config"])
        optimizer.initial_lr = float(spec["initial_lr"])
        optimizer.bind(model.flat_params, model.flat_grads, model.backend)
        names = [k for k in arrays if k.startswith("optimizer.")]
        optimizer.set_state({"iterations": spec["iterations"],
                             "arrays": {k[len("optimizer."):]: arrays[k] for k in names}})
        model._rng.bit_generator.state = meta["rng"]
        for layer, step in zip(model.layers, meta["layer_steps"]):
            if step is not None:
                layer.step = int(step)
        meta["epoch"], meta["history"] = int(meta["epoch"]), list(meta["history"])
        meta["callbacks"] = None if meta.get("callbacks") is None else list(meta["callbacks"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: a damaged checkpoint ({type(e).__name__}: {e})") from None
    return model, optimizer, meta


class CheckpointEachEpoch(Callback):
    """Writes a checkpoint to ``path`` after every epoch of the ``fit`` it is given to.

    ``first_epoch`` and ``history`` continue a resumed run's numbering and log; ``extra`` is
    written into each checkpoint, and the state of ``keep``, other callbacks of the same ``fit``
    (see ``save_checkpoint``). It must come after them in ``fit``'s callbacks, so that it records
    their state at the end of the epoch."""

    def __init__(self, path, first_epoch: int = 0, history=(), extra=None, keep=()):
        self.path, self.history, self.extra, self.keep = path, list(history), extra, list(keep)
        self.epochs_done = first_epoch

    def on_epoch_end(self, epoch, logs):
        self.history.append({"epoch": epoch, **{k: float(v) for k, v in logs.items()
                                                 if isinstance(v, (int, float, np.floating))}})
        self.epochs_done = epoch
        save_checkpoint(self.path, self.model, self.optimizer, epoch, self.history, self.extra, self.keep)


def restore_callbacks(callbacks, states) -> None:
    """Hand each callback its state from a checkpoint's ``meta["callbacks"]`` (None: a checkpoint
    written before callbacks were kept); ValueError when the callbacks are not the ones the
    checkpoint was written with."""
    if states is None:
        return
    callbacks = list(callbacks)
    if len(callbacks) != len(states):
        raise ValueError(f"the checkpoint holds the state of {len(states)} callbacks, the run has {len(callbacks)}")
    for cb, state in zip(callbacks, states):
        cb.set_state(state)
