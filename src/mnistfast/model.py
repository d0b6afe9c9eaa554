"""``Sequential``: a stack of layers on one backend, with the Keras-style training API.

One code path serves every backend: the model moves data to the backend once per call, and from
then on passes backend arrays between the layers' forward/backward kernels, the fused
softmax-cross-entropy and the optimizer. All trainable parameters live in one flat backend
buffer (and their gradients in another), so an optimizer step is one kernel call.
"""

from __future__ import annotations

import functools
import math
import sys

import numpy as np

from . import memory
from .backends import get_backend
from .callbacks import History
from .fusion import FusionPlan, check_fusions
from .layers import Layer
from .layers.base import Buffers, api_shape, internal_shape
from .optim import SGD, Adam, AdamW, Optimizer
from .precision import using
from .schedules import make_schedule
from .storage import MODEL_FORMAT, write_model
from .training import BatchSource, LastGoodWeights, TrainingMetrics

FLOAT32_MAX = float(np.finfo(np.float32).max)


def _is_device_array(a) -> bool:
    """A GPU array: anything exporting ``__cuda_array_interface__``, or a Numba device array."""
    return hasattr(a, "__cuda_array_interface__") or bool(getattr(a, "__cuda_ndarray__", False))


# Per sample, each layer's output lives as an activation, its gradient and a work buffer of about
# its size (im2col patches, fused-kernel intermediates): an estimate for the memory budget.
ACTIVATION_COPIES = 3


def activation_bytes(output_shapes, itemsize: int = 4) -> int:
    """Bytes one sample takes in a model whose layers output ``output_shapes`` (an estimate)."""
    return ACTIVATION_COPIES * itemsize * sum(math.prod(shape) for shape in output_shapes)


def _one_call_at_a_time(method):
    """Run ``method`` holding the backend's call lock: a model's layers keep their activations in
    buffers of the model and its backend, so two threads predicting with one model (or with two
    models on one backend) would otherwise mix each other's numbers."""

    @functools.wraps(method)
    def serialized(self, *args, **kwargs):
        with self.backend.call_lock:
            return method(self, *args, **kwargs)

    return serialized


class Sequential:
    """``Sequential([Conv2D(32, 3, activation="relu"), MaxPool2D(), Flatten(), Dense(10)],
    input_shape=(1, 28, 28), backend="cpp", seed=0)``.

    ``input_shape`` excludes the batch axis: ``(features,)`` or ``(C, H, W)``; without it the model
    is built by the first ``fit`` from the data. The last layer's outputs are the class logits.
    ``dtype`` is for the numpy reference only (``np.float64`` for gradient checks). ``fusions``:
    the kernel fusions allowed (names from ``mnistfast.fusion.FUSIONS``; ``None``, the default,
    allows all, ``()`` none); ``summary()`` lists those in force.
    """

    def __init__(self, layers, input_shape=None, backend="cpp", seed: int = 0, dtype=None, fusions=None):
        self.layers = list(layers)
        if not self.layers or not all(isinstance(layer, Layer) for layer in self.layers):
            raise TypeError("Sequential needs a non-empty list of layers (mf.layers.Dense, Conv2D, ...)")
        if len({id(layer) for layer in self.layers}) != len(self.layers):
            raise ValueError("Sequential: the same layer object appears twice")
        self.backend = get_backend(backend, **({} if dtype is None else {"dtype": dtype}))
        self.seed = seed
        self.fusions = check_fusions(fusions)
        self.plan = None  # the FusionPlan, made by build
        self._rng = np.random.default_rng(seed)
        self.input_shape = None
        self._bufs = Buffers(self.backend)
        self.preprocessing = None  # a Preprocessing, applied to raw (integer) pixel input
        # Where the model's training data came from ({"data": absolute path or None for the
        # bundled MNIST, "seed": the split's seed}), saved with it: eval and plot default to it.
        self.trained_on = None
        # The user's names of the classes, index by index (None: the indices themselves), and the
        # images' (C, H, W) when the input is flat: predict and eval read image files by them.
        self.classes = None
        self.image_shape = None
        if input_shape is not None:
            self.build(input_shape)

    # -- building -------------------------------------------------------------------------------
    @property
    def built(self) -> bool:
        """True once the model knows its input shape and holds its parameters."""
        return self.input_shape is not None

    def build(self, input_shape) -> "Sequential":
        """Build for inputs of ``input_shape`` (``(features,)`` or the API's ``(C, H, W)``): shape
        every layer, plan the fusions, allocate and initialise the parameters. Returns the model."""
        if self.built:
            raise RuntimeError("the model is already built")
        shape = tuple(int(d) for d in input_shape)
        if len(shape) not in (1, 3) or min(shape) < 1:
            raise ValueError(f"input_shape must be (features,) or (C, H, W), got {input_shape!r}")
        be = self.backend
        self.input_shape = shape
        s = internal_shape(shape)
        for i, layer in enumerate(self.layers):
            try:
                s = layer.build(s, be)
            except ValueError as e:
                raise ValueError(f"layer {i} ({type(layer).__name__}): {e}") from None
            layer.seed = (self.seed * 1_000_003 + i) % 2**63
        if len(s) != 1:
            raise ValueError(f"the last layer must output class scores (n_classes,), got {api_shape(s)}; "
                             "end with Flatten() and Dense(n_classes)")
        self.n_classes = s[0]
        self.plan = FusionPlan(self.layers, self.fusions)
        for layer, layer_plan in zip(self.layers, self.plan.layers):
            layer.configure(layer_plan)

        # One flat buffer for all parameters, one for their gradients; layers get views.
        shapes = [shape for layer in self.layers for shape in layer.param_shapes()]
        total = sum(int(np.prod(sh, dtype=np.int64)) for sh in shapes)
        self.flat_params, self.flat_grads = be.zeros((total,)), be.zeros((total,))
        p_views, g_views = be.split(self.flat_params, shapes), be.split(self.flat_grads, shapes)
        at = 0
        for layer in self.layers:
            k = len(layer.param_shapes())
            state = [be.zeros(sh) for sh in layer.state_shapes()]
            layer.bind(p_views[at : at + k], g_views[at : at + k], state)
            at += k
            for j, (p, value) in enumerate(zip(layer.params, layer.init_params(self._rng))):
                be.copy_from_host(p, layer.from_api(j, np.asarray(value, dtype=be.dtype)))
            for s_arr, value in zip(layer.state, layer.init_state()):
                be.copy_from_host(s_arr, np.asarray(value, dtype=be.dtype))
        return self

    def _require_built(self, what: str):
        if not self.built:
            raise RuntimeError(f"{what}: the model is not built yet; pass input_shape= or call fit first")

    # -- parameters -----------------------------------------------------------------------------
    def _named_arrays(self):
        """(name, layer, kind, index) for every array get_params returns, in order."""
        for i, layer in enumerate(self.layers):
            for k, name in enumerate(layer.param_names):
                yield f"layer{i}.{name}", layer, "param", k
            for k, name in enumerate(layer.state_names):
                yield f"layer{i}.{name}", layer, "state", k

    @_one_call_at_a_time
    def get_params(self) -> list:
        """Host copies, layer by layer: each layer's parameters (API layout: Dense ``W (fan_in,
        fan_out)``, ``b``; Conv2D ``W (out, in, kh, kw)``, ``b``; BatchNorm ``gamma``, ``beta``) then its
        saved state (BatchNorm ``running_mean``, ``running_var``)."""
        self._require_built("get_params")
        be, out = self.backend, []
        for _, layer, kind, k in self._named_arrays():
            if kind == "param":
                out.append(layer.to_api(k, be.to_host(layer.params[k])))
            else:
                out.append(be.to_host(layer.state[k]))
        return out

    def param_names(self) -> list:
        """The names of the arrays ``get_params`` returns (``"layer0.W"``, ``"layer0.b"``, ...), in its order."""
        return [name for name, *_ in self._named_arrays()]

    @_one_call_at_a_time
    def set_params(self, params) -> None:
        """The inverse of ``get_params``: every array is checked before any is written."""
        self._require_built("set_params")
        params = list(params)
        entries = list(self._named_arrays())
        if len(params) != len(entries):
            raise ValueError(f"set_params: expected {len(entries)} arrays {[e[0] for e in entries]}, got {len(params)}")
        staged = []
        for (name, layer, kind, k), p in zip(entries, params):
            p = np.asarray(p)
            want = layer.api_param_shapes()[k] if kind == "param" else layer.state_shapes()[k]
            if p.shape != tuple(want):
                raise ValueError(f"set_params: {name} has shape {p.shape}, expected {tuple(want)}")
            if p.dtype.kind not in "fiu":
                raise TypeError(f"set_params: {name} has non-numeric dtype {p.dtype}")
            if not np.all(np.isfinite(p)):
                raise ValueError(f"set_params: {name} contains NaN or Inf")
            if p.size and np.max(np.abs(p)) > FLOAT32_MAX:
                raise ValueError(f"set_params: {name} has values beyond the float32 range")
            value = layer.from_api(k, p) if kind == "param" else p
            staged.append((layer.params[k] if kind == "param" else layer.state[k], value))
        for dst, value in staged:
            self.backend.copy_from_host(dst, np.asarray(value, dtype=self.backend.dtype))

    def count_params(self) -> int:
        """The number of trainable parameters."""
        self._require_built("count_params")
        return sum(int(np.prod(s, dtype=np.int64)) for layer in self.layers for s in layer.param_shapes())

    # -- input checks ---------------------------------------------------------------------------
    def _check_x(self, X, what="X", fitting: bool = False) -> np.ndarray:
        """Host array ``(n, *internal input shape)`` in the backend's float dtype. Integer input is
        raw pixels and goes through the model's preprocessing (see ``mf.Preprocessing``)."""
        X = np.asarray(X)
        if X.dtype.kind not in "fiu":
            raise TypeError(f"{what} has dtype {X.dtype}, expected a numeric array")
        if X.ndim < 2 or len(X) == 0:
            raise ValueError(f"{what} has shape {X.shape}, expected a non-empty (n_samples, ...) array")
        if X.dtype.kind in "iu":
            X = self._preprocess(X, what, fitting)
        sample = X.shape[1:]
        if not self.built:
            self.build(sample if len(sample) in (1, 3) else (int(np.prod(sample)),))
        want = self.input_shape
        if sample != want:
            if int(np.prod(sample)) != int(np.prod(want)):
                raise ValueError(f"{what} has shape {X.shape}, expected (n_samples, {', '.join(map(str, want))})"
                                 f" or (n_samples, {int(np.prod(want))})")
            X = X.reshape((len(X), *want))
        if len(want) == 3:
            X = X.transpose(0, 2, 3, 1)  # NCHW -> the kernels' NHWC
        X = np.ascontiguousarray(X, dtype=self.backend.dtype)
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
        if y.min() < 0 or y.max() >= self.n_classes:
            bad = int(np.argmax((y < 0) | (y >= self.n_classes)))
            raise ValueError(f"{what}[{bad}] = {y[bad]} is not a class label in 0..{self.n_classes - 1}")
        return np.ascontiguousarray(y, dtype=np.int64)

    def _preprocess(self, X, what, fitting):
        if X.size and (X.min() < 0 or X.max() > 255):
            raise ValueError(f"{what} holds integers outside 0..255; integer input is taken as raw pixels")
        pre = self.preprocessing
        if pre is None:
            if not fitting:
                raise ValueError(
                    f"{what} holds raw integer pixels, but this model has no preprocessing recorded (it was trained "
                    "on float inputs): pass inputs prepared as for training, or set model.preprocessing")
            from .preprocessing import Preprocessing

            pre = self.preprocessing = Preprocessing("scale")
        if not pre.fitted:
            if not fitting:
                raise ValueError(f"{what}: the model's {pre!r} has no statistics yet; fit it on training pixels")
            pre.fit(X)
        return pre(X)

    # -- forward and backward -------------------------------------------------------------------
    def forward(self, x, training: bool = False):
        """Logits for a backend array ``x`` of shape ``(n, *internal input shape)``."""
        layers = self.layers
        for i in self.plan.forward_order:
            x = layers[i].forward(x, training)
        return x

    def backward(self, dlogits, sgd_lr=None) -> None:
        """Fills every layer's gradients from dL/dlogits; with ``sgd_lr`` (only where the plan
        folds SGD) the layers apply ``p -= sgd_lr * grad`` to their parameters instead."""
        dy, layers = dlogits, self.layers
        if sgd_lr is None:
            for i in self.plan.backward_order:
                dy = layers[i].backward(dy)
        else:
            for i in self.plan.backward_order:
                layer = layers[i]
                dy = layer.backward(dy, sgd_lr) if layer.params else layer.backward(dy)

    def train_step(self, x, y, optimizer: Optimizer, totals) -> None:
        """One mini-batch step on backend arrays; the loss and correct count are added to the
        backend array ``totals`` (see ``Backend.xent_accumulate``), not returned: reading them
        would wait for a GPU every step."""
        logits = self.forward(x, training=True)
        dlogits = self._bufs.get("dlogits", x.shape[0], (self.n_classes,))
        self.backend.xent_accumulate(logits, y, dlogits, totals)
        if self.plan.folds_sgd(optimizer):
            self.backward(dlogits, sgd_lr=optimizer.lr)
            optimizer.count_step()  # the layers applied the update
        else:
            self.backward(dlogits)
            optimizer.step()

    @_one_call_at_a_time
    def loss_and_grads(self, X, y, training: bool = True):
        """Mean loss and its gradients (API layout, the order of ``get_params`` without the state)
        on one batch, without updating the parameters."""
        X = self._check_x(X)
        y = self._check_y(y, len(X))
        be = self.backend
        logits = self.forward(be.to_device(X), training=training)
        dlogits = be.empty((len(X), self.n_classes))
        loss, _ = be.softmax_xent(logits, be.to_device(y), dlogits)
        self.backward(dlogits)
        grads = [layer.to_api(k, be.to_host(g)) for layer in self.layers for k, g in enumerate(layer.grads)]
        return loss, grads

    # -- Keras-style API ------------------------------------------------------------------------
    @_one_call_at_a_time
    def fit(self, X, y, epochs: int = 1, batch_size: int = 128, lr=None, optimizer: Optimizer | None = None,
            lr_schedule="constant", validation_data=None, validation_split: float = 0.0, shuffle: bool = True,
            verbose: int = 1, callbacks=(), augment=None, initial_epoch: int = 0,
            precision: str | None = None) -> History:
        """Mini-batch training; returns a :class:`History`.

        ``X`` (and ``validation_data``'s) may be, on the cuda backend, a GPU array (CuPy, PyTorch
        CUDA, Numba) of float32 in the model's input layout, used in place: nothing is copied
        through the host but the labels, which are checked there. The model must be built.

        ``optimizer``: an ``mf.optim`` object (it keeps its state across ``fit`` calls), or a
        name as in Keras (``"sgd"``, ``"adam"``, ``"adamw"``: a new one at ``lr``, by default 0.1
        for SGD and 1e-3 for the others); without one, plain SGD at ``lr`` (default 0.1).
        ``lr_schedule``: a name (``"constant"``, ``"cosine"``, ``"step"``, ``"exponential"``, ``"onecycle"``), an ``mf.schedules`` object
        or ``f(epoch_index, lr) -> lr``; it runs from the optimizer's ``initial_lr``.
        ``validation_split``: the last fraction of ``X``/``y`` (before shuffling, as in Keras) is
        held out and evaluated after each epoch instead of ``validation_data``. ``shuffle=False``
        takes the batches in data order. ``verbose``: 0 silent, 1 a progress bar per epoch, 2 one
        line per epoch. ``callbacks``: :class:`Callback` objects (``mf.callbacks``). ``augment``:
        an ``mf.augment.RandomAffine`` applied to every training batch on the backend (image
        models only; seeded by the model's seed and the step, unless it has its own seed).
        ``initial_epoch``: the epochs already trained (as in Keras): training runs epochs
        ``initial_epoch + 1 .. epochs`` on the schedule of a run of ``epochs``, so a run stopped
        and resumed from a checkpoint (``mnistfast.checkpoint``) continues as if never stopped.
        ``precision``: ``"fp32"``, ``"bf16"`` or ``"auto"`` for this ``fit`` (``mnistfast.precision``:
        bf16 rounds the GEMM operands and keeps float32 weights and optimizer state; where the
        backend has no bf16 a note says so and fp32 runs); ``None`` keeps the backend's.
        """
        note = (lambda why: print(f"mnistfast: note: {why}", file=sys.stderr)) if verbose else (lambda why: None)
        with using(self.backend, precision, note):
            return self._fit(X, y, epochs, batch_size, lr, optimizer, lr_schedule, validation_data, validation_split,
                             shuffle, verbose, callbacks, augment, initial_epoch)

    def _fit(self, X, y, epochs, batch_size, lr, optimizer, lr_schedule, validation_data, validation_split, shuffle,
             verbose, callbacks, augment, initial_epoch) -> History:
        (X, y, on_device), validation = self._fit_data(X, y, validation_data, validation_split)
        epochs, batch_size, initial_epoch = self._fit_counts(epochs, batch_size, initial_epoch, X.shape[0])
        optimizer, be = _fit_optimizer(optimizer, lr), self.backend
        optimizer.bind(self.flat_params, self.flat_grads, be)
        source = BatchSource(be, X, y, batch_size, self._rng if shuffle else None, augment, self.seed, on_device)
        schedule = make_schedule(lr_schedule, optimizer.initial_lr, epochs, source.steps)
        metrics = TrainingMetrics(be, self.n_classes, source.steps, epochs, verbose, callbacks)
        good = LastGoodWeights(be, self.flat_params)
        history = History()
        self.stop_training = False
        self.lr_scale, self.lr_floor = 1.0, 0.0  # set by ReduceLROnPlateau
        for cb in callbacks:
            cb.set_context(self, optimizer)
            cb.on_train_begin({})
        with be.core_share() as cores:
            try:
                for epoch in range(initial_epoch + 1, epochs + 1):
                    self._fit_epoch(epoch, source, optimizer, schedule, metrics, good, cores)
                    logs = self._end_epoch(epoch, source.n, optimizer.lr, metrics, good, validation)
                    history.append(epoch, logs)
                    metrics.bar.finish(logs)
                    for cb in callbacks:
                        cb.on_epoch_end(epoch, logs)
                    if self.stop_training:
                        break
            finally:
                metrics.close()
                self._bufs.clear()
        for cb in callbacks:
            cb.on_train_end(history.history)
        return history

    def _fit_counts(self, epochs, batch_size, initial_epoch, n: int) -> tuple[int, int, int]:
        """``fit``'s counts, checked, and its batch against the memory budget."""
        epochs, batch_size = _count("epochs", epochs, 0), _count("batch_size", batch_size, 1)
        initial_epoch = _count("initial_epoch", initial_epoch, 0)
        if initial_epoch > epochs:
            raise ValueError(f"fit: initial_epoch {initial_epoch} is past the last epoch, {epochs}")
        rows = min(batch_size, n)
        memory.check(rows * self._bytes_per_sample(), f"fit: a batch of {rows} samples")
        return epochs, batch_size, initial_epoch

    def _fit_epoch(self, epoch, source, optimizer, schedule, metrics, good, cores) -> None:
        """One pass over ``source``: a training step per batch, the metrics read when due, the
        thread count (``cores``, the backend's ``core_share()``) looked at between steps."""
        self._set_lr(optimizer, schedule, epoch - 1, 0)
        metrics.start_epoch(epoch)
        per_step = schedule.per == "step"
        for step, (xb, yb, seen) in enumerate(source.epoch(lambda: optimizer.iterations)):
            if per_step:
                self._set_lr(optimizer, schedule, epoch - 1, step)
            cores.poll()
            self.train_step(xb, yb, optimizer, metrics.totals)
            problem = metrics.after_step(step + 1, seen, xb.shape[0], optimizer.lr)
            if problem:
                good.restore(f"epoch {epoch}, step {step + 1}: {problem}")

    def _end_epoch(self, epoch, n, lr, metrics, good, validation) -> dict:
        """The epoch's logs, once its weights are judged healthy (else they are put back and
        FloatingPointError raised), with the validation scores if there is validation data."""
        logs, problem = metrics.end_epoch(n, lr)
        if not problem and not math.isfinite(self.backend.sum_squares(self.flat_params)):
            problem = "the parameters are no longer finite"
        if problem:
            good.restore(f"epoch {epoch}: {problem}")
        good.keep(epoch)
        if validation is not None:
            val = self._evaluate_prepared(*validation)
            logs["val_loss"], logs["val_accuracy"] = val["loss"], val["accuracy"]
        return logs

    def _set_lr(self, optimizer, schedule, epoch_index, step) -> None:
        lr = schedule(epoch_index, step) * self.lr_scale
        optimizer.lr = max(lr, self.lr_floor) if self.lr_scale < 1.0 else lr

    def _fit_data(self, X, y, validation_data, validation_split):
        """The checked training triple ``(X, y, on_device)`` and the validation triple (or None)
        for ``fit``."""
        X, y, on_device = self._labelled(X, y, "X", fitting=True)
        if validation_split:
            if validation_data is not None:
                raise ValueError("fit: pass validation_data or validation_split, not both")
            if not 0.0 < validation_split < 1.0:
                raise ValueError(f"validation_split must lie strictly between 0 and 1, got {validation_split}")
            n = X.shape[0]
            cut = n - int(round(n * validation_split))
            if cut in (0, n):
                raise ValueError(f"validation_split {validation_split} of {n} samples leaves an empty split")
            return (X[:cut], y[:cut], on_device), (X[cut:], y[cut:], on_device)
        if validation_data is None:
            return (X, y, on_device), None
        Xv, yv = validation_data
        return (X, y, on_device), self._labelled(Xv, yv, "validation X")

    def _labelled(self, X, y, what="X", fitting: bool = False):
        """``(X, y, on_device)``: checked inputs and their int64 labels. A GPU array ``X`` stays on
        the device (see ``_device_input``); labels, small, are checked on the host."""
        X, on_device = self._prepare_input(X, what, fitting)
        if _is_device_array(y):
            y = self.backend.to_host(self.backend.from_foreign(y))
        return X, self._check_y(y, X.shape[0], what[:-1] + "y"), on_device

    def _prepare_input(self, X, what="X", fitting: bool = False):
        """(array, on_device): a checked host array, or a backend view of a device array (CuPy,
        PyTorch CUDA, Numba) that never goes through the host."""
        if _is_device_array(X):
            return self._device_input(X, what), True
        return self._check_x(X, what, fitting), False

    def _device_input(self, X, what):
        be = self.backend
        if not hasattr(be, "from_foreign"):
            raise TypeError(f"{what} is a GPU array, but the model runs on the {be.name} backend; copy it to the host "
                            "or use backend='cuda'")
        x = be.from_foreign(X)
        if np.dtype(x.dtype) != be.dtype:
            raise TypeError(f"{what} is a device array of dtype {np.dtype(x.dtype)}; the cuda backend takes {be.dtype}")
        self._require_built("a device input")
        n, want = x.shape[0], self.input_shape
        size = int(np.prod(want))
        if len(x.shape) < 2 or n == 0 or int(np.prod(x.shape[1:])) != size or not x.is_c_contiguous():
            raise ValueError(f"{what} has shape {tuple(x.shape)}, expected a C-contiguous (n_samples, "
                             f"{', '.join(map(str, want))}) or (n_samples, {size}) array")
        if not math.isfinite(be.sum_squares(be.reshape(x, (n * size,)))):
            raise ValueError(f"{what} contains NaN or Inf")
        if len(want) == 1:
            return be.reshape(x, (n, size))
        c, h, w = want
        nhwc = be.empty((n, h * w, c))
        be.batched_transpose(be.reshape(x, (n, c, h * w)), nhwc)  # NCHW -> the kernels' NHWC, on the device
        return be.reshape(nhwc, (n, h, w, c))

    def _bytes_per_sample(self) -> int:
        return activation_bytes([layer.output_shape for layer in self.layers], self.backend.dtype.itemsize)

    def _logits_batches(self, X, batch_size: int, on_device: bool = False):
        """(start row, logits) over a prepared input, moved to the backend a batch at a time."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        be = self.backend
        batch_size = memory.rows_within_budget(self._bytes_per_sample(), batch_size, "predicting")
        for lo in range(0, X.shape[0], batch_size):
            hi = min(X.shape[0], lo + batch_size)
            yield lo, self.forward(be.rows(X, lo, hi) if on_device else be.to_device(X[lo:hi]), training=False)

    def _evaluate_prepared(self, X, y, on_device: bool = False, batch_size: int = 256) -> dict:
        be = self.backend
        totals = be.zeros((4,), dtype=np.float64)
        y_dev = be.to_device(y)
        for lo, logits in self._logits_batches(X, batch_size, on_device):
            be.xent_accumulate(logits, be.rows(y_dev, lo, lo + logits.shape[0]), None, totals)
        t = be.to_host(totals)  # the one read-back
        return {"loss": float(t[0]) / len(y), "accuracy": float(t[1]) / len(y)}

    @_one_call_at_a_time
    def evaluate(self, X, y, batch_size: int = 256) -> dict:
        """``{"loss": mean cross-entropy, "accuracy": fraction correct}``. ``X`` may be a host array
        or, on the cuda backend, a GPU array (CuPy, PyTorch CUDA) used in place."""
        self._require_built("evaluate")
        X, y, on_device = self._labelled(X, y)
        return self._evaluate_prepared(X, y, on_device, batch_size)

    @_one_call_at_a_time
    def predict_proba(self, X, batch_size: int = 256) -> np.ndarray:
        """Class probabilities, ``(n_samples, n_classes)``, float32."""
        self._require_built("predict_proba")
        X, on_device = self._prepare_input(X)
        out = np.empty((X.shape[0], self.n_classes), dtype=np.float32)
        for lo, logits in self._logits_batches(X, batch_size, on_device):
            z = self.backend.to_host(logits).astype(np.float64)
            e = np.exp(z - z.max(axis=1, keepdims=True))
            out[lo : lo + len(z)] = e / e.sum(axis=1, keepdims=True)
        return out

    @_one_call_at_a_time
    def predict(self, X, batch_size: int = 256) -> np.ndarray:
        """Predicted class labels (int64)."""
        self._require_built("predict")
        X, on_device = self._prepare_input(X)
        out = np.empty(X.shape[0], dtype=np.int64)
        for lo, logits in self._logits_batches(X, batch_size, on_device):
            z = self.backend.to_host(logits)
            out[lo : lo + len(z)] = z.argmax(axis=1)
        return out

    # -- description and persistence ------------------------------------------------------------
    def get_config(self) -> dict:
        """The architecture as JSON-ready data (input shape, seed, layers and their arguments,
        preprocessing, the training data's origin): what ``save`` writes beside the arrays."""
        self._require_built("get_config")
        config = {"input_shape": list(self.input_shape), "seed": self.seed,
                  "layers": [{"type": type(layer).__name__, "config": layer.get_config()} for layer in self.layers]}
        if self.preprocessing is not None:
            config["preprocessing"] = self.preprocessing.get_config()
        if self.trained_on is not None:
            config["trained_on"] = dict(self.trained_on)
        if self.classes is not None:
            config["classes"] = list(self.classes)
        if self.image_shape is not None:
            config["image_shape"] = list(self.image_shape)
        return config

    def summary(self, print_fn=print) -> str:
        """A Keras-style table of the layers, their output shapes (API order) and parameter counts,
        then the kernel fusions in force (see ``mnistfast.fusion``)."""
        self._require_built("summary")
        rows = [("Layer (type)", "Output Shape", "Param #")]
        for i, layer in enumerate(self.layers):
            count = sum(int(np.prod(s, dtype=np.int64)) for s in layer.param_shapes())
            shape = "(None, " + ", ".join(str(d) for d in api_shape(layer.output_shape)) + ")"
            rows.append((f"{i}: {layer!r}", shape, f"{count:,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(3)]
        line = "-" * (sum(widths) + 4)
        fmt = lambda r: f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}"  # noqa: E731
        text = "\n".join([fmt(rows[0]), line, *map(fmt, rows[1:]), line,
                          f"Total params: {self.count_params():,}   input {self.input_shape}, backend {self.backend.name}",
                          "Fusions:", *("  " + note for note in self.plan.describe())])
        if print_fn is not None:
            print_fn(text)
        return text

    @_one_call_at_a_time
    def save(self, path) -> None:
        """Write the architecture, parameters, state and preprocessing to an ``.npz`` (no pickle),
        atomically."""
        write_model(path, *self.to_payload())

    @_one_call_at_a_time
    def export(self, path, format: str = "onnx") -> None:
        """Write the model for other tools: ``"onnx"`` (raw uint8 pixels ``(batch, features)`` in,
        probabilities out, the preprocessing inside), ``"torch"`` (the same as a ``torch.export``
        program) or ``"safetensors"``; see ``mnistfast.export``."""
        from .export import export

        export(self, path, format)

    def to_payload(self) -> tuple[dict, dict]:
        """(config, named arrays): what ``save`` writes."""
        params = self.get_params()
        bad = [name for name, p in zip(self.param_names(), params) if not np.all(np.isfinite(p))]
        if bad:
            raise ValueError(f"save: {', '.join(bad)} contain NaN or Inf; a diverged model is not saved")
        arrays = dict(zip(self.param_names(), params))
        if self.preprocessing is not None:
            arrays.update(self.preprocessing.arrays())
        return {"format": MODEL_FORMAT, **self.get_config()}, arrays

    def __repr__(self) -> str:
        shape = f", input_shape={self.input_shape}" if self.built else ""
        return f"Sequential({len(self.layers)} layers{shape}, backend={self.backend.name!r})"


def _count(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be a {'positive' if low else 'non-negative'} integer, got {value!r}")
    return int(value)


# fit(optimizer="adam"): the names Keras takes, each at its default rate unless lr says otherwise.
_OPTIMIZER_NAMES = {"sgd": (SGD, 0.1), "adam": (Adam, 1e-3), "adamw": (AdamW, 1e-3)}


def _fit_optimizer(optimizer, lr) -> Optimizer:
    if optimizer is None:
        return SGD(lr=0.1 if lr is None else lr)
    if isinstance(optimizer, str):
        if optimizer.lower() not in _OPTIMIZER_NAMES:
            raise ValueError(f"fit: unknown optimizer {optimizer!r}; name one of {', '.join(_OPTIMIZER_NAMES)} "
                             "or pass an mf.optim object")
        cls, default = _OPTIMIZER_NAMES[optimizer.lower()]
        return cls(lr=default if lr is None else lr)
    if lr is not None:
        raise ValueError("fit: pass lr to the optimizer (e.g. mf.optim.Adam(lr=...)), not beside it")
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be an mf.optim optimizer, got {type(optimizer).__name__}")
    return optimizer
