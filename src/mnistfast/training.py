"""The pieces of ``Sequential.fit``: where the batches come from, how the running metrics are read
back, and how a diverging run is caught and undone.

The model's step runs on backend arrays; these pieces keep the host out of it. Metrics stay on
the backend and are read back only when something shows or judges them (the progress bar, a
per-batch callback, the divergence check every ``METRICS_EVERY`` steps), so a GPU is not made to
wait every step.
"""

from __future__ import annotations

import math
import time

import numpy as np

from .callbacks import Callback
from .progress import ProgressBar

# The running loss is read back when the progress bar redraws, and at least this often (to notice
# a diverging run): never every step, which would stall a GPU.
METRICS_EVERY = 50

# A run has diverged when the mean loss since the last read is not finite or exceeds this many
# times its first step's loss (or ln(classes), if larger). Healthy runs stay below 1x; blow-ups
# reach 1e20 within steps, long before the loss turns NaN.
DIVERGENCE_FACTOR = 10.0


class BatchSource:
    """The mini-batches of one training set on a backend, gathered into reused buffers.

    Parameters
    ----------
    backend : Backend
        Where the batches live.
    X, y : numpy.ndarray
        Checked host arrays: ``(n, *sample shape)`` inputs in the backend's dtype, int64 labels.
        ``X`` may instead be a backend array already (``on_device``), used in place.
    batch_size : int
        Rows per batch (the last batch of an epoch may be shorter).
    rng : numpy.random.Generator or None
        Draws each epoch's order; ``None`` takes the batches in data order.
    augment : RandomAffine or None
        Applied to every batch on the backend (image inputs only).
    seed : int
        The model's seed, for an ``augment`` without its own.
    on_device : bool
        ``X`` is a backend array (a GPU array given to ``fit``), not a host array.
    """

    def __init__(self, backend, X, y, batch_size, rng=None, augment=None, seed=0, on_device=False):
        be = self.backend = backend
        self.n, self.sample = X.shape[0], tuple(X.shape[1:])
        if augment is not None and len(self.sample) != 3:
            raise ValueError("fit: augment needs an image model (input_shape (C, H, W))")
        self.batch_size = min(int(batch_size), self.n)
        self.steps = -(-self.n // self.batch_size)
        self.rng, self.augment, self.seed = rng, augment, seed
        # Read only (rows gathered per step, then viewed as samples): host backends share X and y.
        features = int(np.prod(self.sample))
        self.X = be.reshape(X, (self.n, features)) if on_device else be.to_device(X.reshape(self.n, -1), copy=False)
        self.y = be.to_device(y, copy=False)
        self._x_full = be.empty((self.batch_size, self.X.shape[1]))
        self._y_full = be.empty((self.batch_size,), dtype=np.int64)
        if augment is not None:
            self._aug_full = be.empty((self.batch_size, *self.sample))
            self._params_full = be.empty((self.batch_size, 6))
        self._views = {}  # rows -> (x view, y view) of the gather buffers

    def epoch(self, batch_id):
        """Yield ``(x, y, end_row)`` for each batch of one epoch. ``batch_id()`` numbers the batch
        for the augmentation's random draws (the optimizer's step count: no two batches of a run
        share them, across ``fit`` calls too)."""
        be = self.backend
        order = None if self.rng is None else be.to_device(self.rng.permutation(self.n))
        for step in range(self.steps):
            lo, hi = step * self.batch_size, min(self.n, (step + 1) * self.batch_size)
            rows = hi - lo
            if order is None:
                x_rows, y_rows = be.rows(self.X, lo, hi), be.rows(self.y, lo, hi)
            else:
                if rows not in self._views:
                    self._views[rows] = (be.rows(self._x_full, 0, rows), be.rows(self._y_full, 0, rows))
                x_rows, y_rows = self._views[rows]
                idx = be.rows(order, lo, hi)
                be.take_rows(self.X, idx, x_rows)
                be.take(self.y, idx, y_rows)
            yield self._augmented(be.reshape(x_rows, (rows, *self.sample)), batch_id), y_rows, hi

    def _augmented(self, xb, batch_id):
        if self.augment is None:
            return xb
        be, rows = self.backend, xb.shape[0]
        params = be.rows(self._params_full, 0, rows)
        be.copy_from_host(params, self.augment.params(rows, self.sample[0], self.sample[1], self.seed, batch_id()))
        return be.affine_warp(xb, params, be.rows(self._aug_full, 0, rows))


class DivergenceWatch:
    """Judges the running loss sum of an epoch, read every so often (see ``DIVERGENCE_FACTOR``)."""

    def __init__(self, n_classes: int):
        self.first = True  # the first step's loss is the reference
        self.limit = math.inf
        self.floor = math.log(max(2, n_classes))
        self._sum, self._seen = 0.0, 0

    def new_epoch(self) -> None:
        self._sum, self._seen = 0.0, 0

    def check(self, loss_sum: float, seen: int) -> str | None:
        """``loss_sum`` over the ``seen`` samples of this epoch so far; a reason, or None."""
        if seen == self._seen:
            return None
        window = (loss_sum - self._sum) / (seen - self._seen)
        self._sum, self._seen = loss_sum, seen
        if not math.isfinite(window):
            return f"the loss is {window}"
        if self.first:
            self.first = False
            self.limit = DIVERGENCE_FACTOR * max(window, self.floor)
            return None
        if window > self.limit:
            return (f"the mean loss of the last steps is {window:.4g}, over {DIVERGENCE_FACTOR:g}x where it started "
                    f"({self.limit / DIVERGENCE_FACTOR:.4g})")
        return None


class TrainingMetrics:
    """An epoch's running loss and accuracy, kept on the backend and read back only when due.

    Parameters
    ----------
    backend : Backend
        Holds the float64 ``totals`` array the step adds to (``Backend.xent_accumulate``).
    n_classes, steps, epochs, verbose : int
        The model's classes (for the divergence floor), the steps per epoch, the epoch count and
        the progress bar's verbosity.
    callbacks : sequence of Callback
        Those that override ``on_batch_end`` get every step's loss: the only per-step read-back.
    """

    def __init__(self, backend, n_classes, steps, epochs, verbose, callbacks=()):
        self.backend, self.steps, self.epochs, self.verbose = backend, steps, epochs, verbose
        self.totals = backend.zeros((4,), dtype=np.float64)
        self.watch = DivergenceWatch(n_classes)
        self.batch_callbacks = [cb for cb in callbacks if type(cb).on_batch_end is not Callback.on_batch_end]
        self.global_step = 0  # steps booked by this fit

    def start_epoch(self, epoch: int) -> None:
        self.backend.copy_from_host(self.totals, np.zeros(4))
        self.watch.new_epoch()
        self.bar = ProgressBar(self.steps, epoch, self.epochs, self.verbose)
        self.t0 = time.perf_counter()

    def after_step(self, done: int, seen: int, rows: int, lr: float) -> str | None:
        """Book step ``done`` of the epoch (``seen`` samples so far); a divergence reason or None."""
        self.global_step += 1
        if not (self.batch_callbacks or self.bar.due(done) or done % METRICS_EVERY == 0 or self.watch.first):
            return None
        t = self.backend.to_host(self.totals)
        problem = self.watch.check(t[0], seen)
        if problem:
            return problem
        self.bar.update(done, t[0] / seen, t[1] / seen)
        for cb in self.batch_callbacks:
            cb.on_batch_end(self.global_step - 1, {"loss": float(t[2]), "correct": int(t[3]), "size": rows, "lr": lr})
        return None

    def close(self) -> None:
        """Take an unfinished epoch's progress bar off the screen (fit stopped by an exception)."""
        bar = getattr(self, "bar", None)
        if bar is not None:
            bar.close()

    def end_epoch(self, n: int, lr: float) -> tuple[dict, str | None]:
        """The epoch's logs over its ``n`` samples, and a divergence reason or None."""
        t = self.backend.to_host(self.totals)
        logs = {"loss": float(t[0]) / n, "accuracy": float(t[1]) / n, "lr": lr, "time": time.perf_counter() - self.t0}
        return logs, self.watch.check(t[0], n)


class LastGoodWeights:
    """The parameters as they were after the last healthy epoch, put back if the run diverges."""

    def __init__(self, backend, flat_params):
        self.backend, self.flat_params = backend, flat_params
        self.values = backend.to_host(flat_params)
        self.when = "their values before this fit"

    def keep(self, epoch: int) -> None:
        self.values, self.when = self.backend.to_host(self.flat_params), f"their values after epoch {epoch}"

    def restore(self, where: str):
        """Put the weights back and raise FloatingPointError saying where the run diverged."""
        self.backend.copy_from_host(self.flat_params, self.values)
        raise FloatingPointError(f"training diverged at {where}; the weights are restored to {self.when}. "
                                 "Try a smaller learning rate, or inputs scaled to [0, 1]")


__all__ = ["DIVERGENCE_FACTOR", "METRICS_EVERY", "BatchSource", "DivergenceWatch", "LastGoodWeights",
           "TrainingMetrics"]
