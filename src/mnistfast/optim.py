"""Optimizers with state, each step one fused kernel call over the model's flat parameter buffer.

``SGD(lr, momentum=0.0, nesterov=False, weight_decay=0.0)``, ``Adam(lr=1e-3, betas=(0.9, 0.999),
eps=1e-8, weight_decay=0.0)`` and ``AdamW`` (decoupled weight decay, default 1e-2) follow
PyTorch's update rules. Every optimizer also clips: ``clipnorm`` rescales the whole gradient when
its global L2 norm exceeds it, ``clipvalue`` clamps each component to ``[-clipvalue, clipvalue]``
(in that order). ``lr`` may be changed between steps (the schedules in ``fit`` do).
"""

from __future__ import annotations

import math


def _check(name, value, low=0.0, high=math.inf, low_open=False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and value < high
    if not ok:
        raise ValueError(f"{name} must be a finite number {'>' if low_open else '>='} {low}"
                         f"{f' and < {high}' if high != math.inf else ''}, got {value!r}")
    return float(value)


class Optimizer:
    """The base of the optimizers: learning rate, clipping and the step count.

    Parameters
    ----------
    lr : float
        The learning rate (``initial_lr`` keeps the first value; schedules set ``lr`` from it).
    clipvalue : float, optional
        Clamp each gradient component to ``[-clipvalue, clipvalue]``.
    clipnorm : float, optional
        Rescale the gradient when its global L2 norm exceeds this.
    """

    def __init__(self, lr, clipvalue=None, clipnorm=None):
        self.lr = self.initial_lr = _check("lr", lr, low_open=True)
        self.clipvalue = None if clipvalue is None else _check("clipvalue", clipvalue, low_open=True)
        self.clipnorm = None if clipnorm is None else _check("clipnorm", clipnorm, low_open=True)
        self._params = self._grads = self.backend = None
        self.iterations = 0

    def bind(self, params, grads, backend) -> None:
        """Attach to a model's flat parameter and gradient buffers. Re-binding to the same buffers
        keeps the state (a second ``fit`` continues); other buffers start fresh."""
        if params is self._params and grads is self._grads:
            return
        self._params, self._grads, self.backend = params, grads, backend
        self.iterations = 0
        self._init_state(backend, params.shape)

    def _init_state(self, backend, shape) -> None:
        pass

    # The attributes holding per-parameter state (backend arrays, or None where unused).
    _STATE = ()

    def get_state(self) -> dict:
        """``{"iterations": n, "arrays": {name: host array}}``: what a checkpoint keeps."""
        be = self.backend
        arrays = {k: be.to_host(getattr(self, k)) for k in self._STATE if getattr(self, k, None) is not None}
        return {"iterations": self.iterations, "arrays": arrays}

    def set_state(self, state: dict) -> None:
        """Put back a ``get_state`` of the same optimizer, once it is bound to the model."""
        if self._params is None:
            raise RuntimeError(f"{type(self).__name__}.set_state: bind it to the model first")
        for k in self._STATE:
            current = getattr(self, k, None)
            if current is not None:
                if k not in state["arrays"]:
                    raise ValueError(f"{type(self).__name__}.set_state: no {k!r} in the state")
                self.backend.copy_from_host(current, state["arrays"][k])
        self.iterations = int(state["iterations"])

    def _grad_scale(self) -> float:
        if self.clipnorm is None:
            return 1.0
        norm = math.sqrt(self.backend.sum_squares(self._grads))
        return self.clipnorm / norm if norm > self.clipnorm else 1.0

    def step(self) -> None:
        """Apply one update from the bound gradient buffer to the bound parameters."""
        if self._params is None:
            raise RuntimeError(f"{type(self).__name__}.step: not bound to a model (fit binds it)")
        self.iterations += 1
        self._update(self._grad_scale(), self.clipvalue or 0.0)

    def _update(self, grad_scale: float, clip_value: float) -> None:
        raise NotImplementedError

    @property
    def plain_sgd(self) -> bool:
        """True when a step is exactly ``p -= lr * grad`` (no state, decay or clipping): the update
        can then be folded into each layer's gradient GEMM (see ``Sequential.train_step``)."""
        return False

    def count_step(self) -> None:
        """Book a step whose update the layers applied themselves (the folded plain SGD)."""
        self.iterations += 1

    def get_config(self) -> dict:
        """The constructor arguments: ``type(opt)(**opt.get_config())`` is an equal, fresh optimizer."""
        return {"lr": self.lr, "clipvalue": self.clipvalue, "clipnorm": self.clipnorm}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay, as in PyTorch."""

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0, clipvalue=None, clipnorm=None):
        super().__init__(lr, clipvalue, clipnorm)
        self.momentum = _check("momentum", momentum, high=1.0)
        self.weight_decay = _check("weight_decay", weight_decay)
        if nesterov and self.momentum == 0.0:
            raise ValueError("SGD: nesterov needs momentum > 0")
        self.nesterov = bool(nesterov)

    _STATE = ("velocity",)

    def _init_state(self, backend, shape):
        self.velocity = backend.zeros(shape) if self.momentum else None

    def _update(self, grad_scale, clip_value):
        self.backend.sgd_step(self._params, self._grads, self.velocity, self.lr, self.momentum, self.nesterov,
                              self.weight_decay, grad_scale, clip_value)

    @property
    def plain_sgd(self) -> bool:
        return not self.momentum and not self.weight_decay and self.clipvalue is None and self.clipnorm is None

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}


class Adam(Optimizer):
    """Adam with bias correction and optional L2 weight decay (added to the gradient), as in PyTorch."""

    decoupled = False

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, clipvalue=None, clipnorm=None):
        super().__init__(lr, clipvalue, clipnorm)
        self.betas = (_check("betas[0]", betas[0], high=1.0), _check("betas[1]", betas[1], high=1.0))
        self.eps = _check("eps", eps, low_open=True)
        self.weight_decay = _check("weight_decay", weight_decay)

    _STATE = ("m", "v")

    def _init_state(self, backend, shape):
        self.m, self.v = backend.zeros(shape), backend.zeros(shape)

    def _update(self, grad_scale, clip_value):
        self.backend.adam_step(self._params, self._grads, self.m, self.v, self.lr, self.betas[0], self.betas[1],
                               self.eps, self.weight_decay, self.decoupled, self.iterations, grad_scale, clip_value)

    def get_config(self):
        return {**super().get_config(), "betas": self.betas, "eps": self.eps, "weight_decay": self.weight_decay}


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p -= lr * weight_decay * p`` besides the Adam step."""

    decoupled = True

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, clipvalue=None, clipnorm=None):
        super().__init__(lr, betas, eps, weight_decay, clipvalue, clipnorm)


__all__ = ["SGD", "Adam", "AdamW", "Optimizer"]
