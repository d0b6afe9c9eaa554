"""The multilayer perceptron of the seed documents, on any backend.

Dense layers with ReLU between them, a softmax output, cross-entropy averaged over the batch,
He-initialised weights ``(fan_in, fan_out)``, zero biases, and mini-batch SGD. The training step
below is the only one: every backend runs exactly this sequence of kernel calls.
"""

from __future__ import annotations

import math
import time

import numpy as np

from .backends import Backend, get_backend
from .progress import ProgressBar

DEFAULT_LAYERS = (784, 128, 64, 10)


class Callback:
    """Subclass and pass to ``fit(callbacks=[...])``; the hooks receive the running logs."""

    def on_batch_end(self, step: int, logs: dict) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        pass


class History:
    """What ``fit`` returns, as in Keras: ``history.history["loss"]`` is one value per epoch."""

    def __init__(self):
        self.epoch: list[int] = []
        self.history: dict[str, list[float]] = {}

    def append(self, epoch: int, logs: dict) -> None:
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


def _lr_schedule(schedule, lr: float, epochs: int):
    if schedule == "constant":
        return lambda e: lr
    if schedule == "cosine":
        return lambda e: lr * 0.5 * (1.0 + math.cos(math.pi * e / max(epochs, 1)))
    if callable(schedule):
        def checked(e):
            value = float(schedule(e, lr))
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"lr_schedule returned {value!r} for epoch {e}; it must be positive and finite")
            return value
        return checked
    raise ValueError(f"lr_schedule must be 'constant', 'cosine' or a callable, got {schedule!r}")


class _Workspace:
    """Every buffer a step needs, sized for ``rows`` samples; smaller batches use leading rows."""

    def __init__(self, backend: Backend, layers, rows: int, train: bool):
        self.rows = rows
        self.x = backend.empty((rows, layers[0]))
        self.y = np.empty(rows, dtype=np.int64)
        self.acts = [backend.empty((rows, n)) for n in layers[1:]]
        self.dz = [backend.empty((rows, n)) for n in layers[1:]] if train else None


class MLP:
    """``MLP([784, 128, 64, 10], backend="cpp", seed=0)``.

    ``backend`` is ``"numpy"`` (the reference), ``"cpp"`` or a Backend instance. ``dtype`` is for
    the numpy reference only (``np.float64`` for gradient checks); the default is float32.
    """

    def __init__(self, layers=DEFAULT_LAYERS, backend="cpp", seed: int = 0, dtype=None):
        layers = tuple(layers)
        if len(layers) < 2 or not all(isinstance(n, (int, np.integer)) and n >= 1 for n in layers):
            raise ValueError(f"layers must be at least two positive integers, e.g. (784, 128, 10); got {layers}")
        self.layers = tuple(int(n) for n in layers)
        self.backend = get_backend(backend, **({} if dtype is None else {"dtype": dtype}))
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self.params = self._he_init()
        self.grads = [self.backend.zeros(p.shape) for p in self.params]

    # -- parameters -----------------------------------------------------------------------------
    def _he_init(self):
        params = []
        for fan_in, fan_out in zip(self.layers[:-1], self.layers[1:]):
            # Drawn in float64 and then rounded, so every backend and dtype starts from the
            # same weights for a given seed.
            w = self._rng.standard_normal((fan_in, fan_out)) * math.sqrt(2.0 / fan_in)
            params += [self.backend.asarray(w), self.backend.zeros((fan_out,))]
        return params

    @property
    def num_layers(self) -> int:
        return len(self.layers) - 1

    def get_params(self) -> list[np.ndarray]:
        """``[W1, b1, W2, b2, ...]`` as copies; ``W`` is ``(fan_in, fan_out)``."""
        return [p.copy() for p in self.params]

    def set_params(self, params) -> None:
        params = list(params)
        if len(params) != len(self.params):
            raise ValueError(f"set_params: expected {len(self.params)} arrays [W1, b1, ...], got {len(params)}")
        new = []
        for k, (old, p) in enumerate(zip(self.params, params)):
            p = np.asarray(p)
            name = f"{'W' if k % 2 == 0 else 'b'}{k // 2 + 1}"
            if p.shape != old.shape:
                raise ValueError(f"set_params: {name} has shape {p.shape}, expected {old.shape}")
            if p.dtype.kind not in "fiu":
                raise TypeError(f"set_params: {name} has non-numeric dtype {p.dtype}")
            if not np.all(np.isfinite(p)):
                raise ValueError(f"set_params: {name} contains NaN or Inf")
            new.append(p)
        for old, p in zip(self.params, new):
            old[...] = p

    # -- input checks ---------------------------------------------------------------------------
    def _check_x(self, X, what="X") -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.layers[0]:
            raise ValueError(f"{what} has shape {X.shape}, expected (n_samples, {self.layers[0]})")
        if X.dtype.kind not in "fiu":
            raise TypeError(f"{what} has dtype {X.dtype}, expected a numeric array")
        if len(X) == 0:
            raise ValueError(f"{what} is empty")
        X = self.backend.asarray(X)
        if not np.isfinite(X).all():
            raise ValueError(f"{what} contains NaN or Inf")
        return X

    def _check_y(self, y, n: int, what="y") -> np.ndarray:
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != n:
            raise ValueError(f"{what} has shape {y.shape}, expected ({n},) to match the samples")
        if y.dtype.kind not in "iu":
            if y.dtype.kind == "f" and np.all(y == np.round(y)):
                y = y.astype(np.int64)
            else:
                raise TypeError(f"{what} must hold integer class labels, got dtype {y.dtype}")
        n_classes = self.layers[-1]
        if y.min() < 0 or y.max() >= n_classes:
            bad = int(np.argmax((y < 0) | (y >= n_classes)))
            raise ValueError(f"{what}[{bad}] = {y[bad]} is not a class label in 0..{n_classes - 1}")
        return np.ascontiguousarray(y, dtype=np.int64)

    # -- the step -------------------------------------------------------------------------------
    def _forward(self, ws: _Workspace, x: np.ndarray) -> np.ndarray:
        n, be, last = len(x), self.backend, self.num_layers - 1
        h = x
        for i in range(self.num_layers):
            out = ws.acts[i][:n]
            be.linear_forward(h, self.params[2 * i], self.params[2 * i + 1], out, relu=i < last)
            h = out
        return h

    def _backward(self, ws: _Workspace, x: np.ndarray) -> None:
        """Fills self.grads from ws.dz[-1] (dL/dlogits), which softmax_xent wrote."""
        n, be = len(x), self.backend
        dz = ws.dz[-1][:n]
        for i in reversed(range(self.num_layers)):
            h_in = x if i == 0 else ws.acts[i - 1][:n]
            be.gemm(h_in, dz, out=self.grads[2 * i], trans_a=True)
            be.bias_grad(dz, out=self.grads[2 * i + 1])
            if i > 0:
                d_prev = ws.dz[i - 1][:n]
                be.linear_backward_input(dz, self.params[2 * i], h_in, out=d_prev)
                dz = d_prev

    def _train_step(self, ws: _Workspace, x: np.ndarray, y: np.ndarray, lr: float):
        logits = self._forward(ws, x)
        loss, correct = self.backend.softmax_xent(logits, y, ws.dz[-1][: len(x)])
        self._backward(ws, x)
        for p, g in zip(self.params, self.grads):
            self.backend.sgd_update(p, g, lr)
        return loss, correct

    def loss_and_grads(self, X, y):
        """Mean loss and its gradients ``[dW1, db1, ...]`` on one batch, without updating."""
        X = self._check_x(X)
        y = self._check_y(y, len(X))
        ws = _Workspace(self.backend, self.layers, len(X), train=True)
        loss, _ = self.backend.softmax_xent(self._forward(ws, X), y, ws.dz[-1])
        self._backward(ws, X)
        return loss, [g.copy() for g in self.grads]

    # -- Keras-style API ------------------------------------------------------------------------
    def fit(self, X, y, epochs: int = 1, batch_size: int = 128, lr: float = 0.1, validation_data=None,
            shuffle: bool = True, verbose: int = 1, lr_schedule="constant", callbacks=()) -> History:
        """Mini-batch SGD. ``shuffle=False`` takes the batches in data order.

        ``lr_schedule``: ``"constant"``, ``"cosine"`` (per epoch, from ``lr`` down towards 0 over
        ``epochs``), or a callable ``f(epoch_index, lr) -> lr``.
        ``verbose``: 0 silent, 1 a progress bar per epoch, 2 one line per epoch.
        ``callbacks``: :class:`Callback` objects; ``on_batch_end`` gets the batch's ``loss``.
        """
        X = self._check_x(X)
        y = self._check_y(y, len(X))
        if validation_data is not None:
            Xv, yv = validation_data
            Xv = self._check_x(Xv, "validation X")
            yv = self._check_y(yv, len(Xv), "validation y")
        if not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {lr!r}")

        schedule = _lr_schedule(lr_schedule, lr, epochs)

        n = len(X)
        batch_size = min(int(batch_size), n)
        steps = -(-n // batch_size)
        ws = _Workspace(self.backend, self.layers, batch_size, train=True)
        history = History()
        for epoch in range(1, epochs + 1):
            epoch_lr = schedule(epoch - 1)
            order = self._rng.permutation(n) if shuffle else None
            bar = ProgressBar(steps, epoch, epochs, verbose)
            t0 = time.perf_counter()
            loss_sum, correct_sum = 0.0, 0
            for step in range(steps):
                lo, hi = step * batch_size, min(n, (step + 1) * batch_size)
                if order is None:
                    xb, yb = X[lo:hi], y[lo:hi]
                else:
                    idx = order[lo:hi]
                    xb, yb = ws.x[: hi - lo], ws.y[: hi - lo]
                    self.backend.take_rows(X, idx, xb)
                    np.take(y, idx, out=yb)
                loss, correct = self._train_step(ws, xb, yb, epoch_lr)
                if not math.isfinite(loss):
                    raise FloatingPointError(
                        f"training diverged at epoch {epoch}, step {step + 1}: loss is {loss}; try a smaller lr"
                    )
                loss_sum += loss * (hi - lo)
                correct_sum += correct
                bar.update(step + 1, loss_sum / hi, correct_sum / hi)
                for cb in callbacks:
                    cb.on_batch_end(step, {"loss": loss, "correct": correct, "size": hi - lo})
            logs = {"loss": loss_sum / n, "accuracy": correct_sum / n, "lr": epoch_lr,
                    "time": time.perf_counter() - t0}
            if validation_data is not None:
                val = self.evaluate(Xv, yv)
                logs["val_loss"], logs["val_accuracy"] = val["loss"], val["accuracy"]
            history.append(epoch, logs)
            bar.finish(logs)
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
        return history

    def _logits_batches(self, X, batch_size: int):
        ws = _Workspace(self.backend, self.layers, min(batch_size, len(X)), train=False)
        for lo in range(0, len(X), ws.rows):
            yield lo, self._forward(ws, X[lo : lo + ws.rows])

    def evaluate(self, X, y, batch_size: int = 1024) -> dict:
        """``{"loss": mean cross-entropy, "accuracy": fraction correct}``."""
        X = self._check_x(X)
        y = self._check_y(y, len(X))
        loss_sum, correct_sum = 0.0, 0
        for lo, logits in self._logits_batches(X, batch_size):
            loss, correct = self.backend.softmax_xent(logits, y[lo : lo + len(logits)])
            loss_sum += loss * len(logits)
            correct_sum += correct
        return {"loss": loss_sum / len(X), "accuracy": correct_sum / len(X)}

    def predict_proba(self, X, batch_size: int = 1024) -> np.ndarray:
        """Class probabilities, ``(n_samples, n_classes)``."""
        X = self._check_x(X)
        out = np.empty((len(X), self.layers[-1]), dtype=self.backend.dtype)
        for lo, logits in self._logits_batches(X, batch_size):
            z = logits - logits.max(axis=1, keepdims=True)
            e = np.exp(z)
            out[lo : lo + len(z)] = e / e.sum(axis=1, keepdims=True)
        return out

    def predict(self, X, batch_size: int = 1024) -> np.ndarray:
        """Predicted class labels (int64)."""
        X = self._check_x(X)
        out = np.empty(len(X), dtype=np.int64)
        for lo, logits in self._logits_batches(X, batch_size):
            out[lo : lo + len(logits)] = logits.argmax(axis=1)
        return out

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the architecture and weights to an ``.npz`` (no pickle), atomically."""
        from .serialization import save_mlp

        save_mlp(self, path)

    def __repr__(self) -> str:
        return f"MLP(layers={list(self.layers)}, backend={self.backend.name!r})"
