"""Learning-rate schedules for ``fit(lr_schedule=...)``.

A schedule maps the position in training to a learning rate, relative to the optimizer's
initial lr. ``per="epoch"`` schedules change at epoch starts; ``per="step"`` ones at every step
(the step count runs across epochs). Strings name the common ones with their defaults.

- ``Constant()``
- ``StepDecay(milestones=(30, 50, 65), factor=0.1)``: multiply by ``factor`` at each milestone
  epoch (seed 003's schedule).
- ``Exponential(gamma)``: ``lr * gamma ** t``.
- ``Cosine()``: from ``lr`` towards 0 over the run.
- ``OneCycle(pct_start=0.25, div_factor=25, final_div_factor=1e4)``: per step, a cosine warm-up
  from ``lr / div_factor`` to ``lr`` over the first ``pct_start`` of the run, then a cosine
  anneal to ``lr / div_factor / final_div_factor`` (PyTorch's OneCycleLR).
- any ``f(epoch, lr) -> lr``: per epoch.
"""

from __future__ import annotations

import math


class Schedule:
    """The base of the schedules: ``lr(t, total, base)``, changing per ``"epoch"`` or per ``"step"``."""

    per = "epoch"

    def lr(self, t: int, total: int, base: float) -> float:
        """The lr at epoch or step ``t`` (from 0) of ``total``, for initial lr ``base``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """The initial learning rate throughout."""

    def lr(self, t, total, base):
        return base


class StepDecay(Schedule):
    """Multiply the learning rate by ``factor`` at each of the ``milestones`` (epochs, or steps
    with ``per="step"``)."""

    def __init__(self, milestones=(30, 50, 65), factor: float = 0.1, per: str = "epoch"):
        self.milestones, self.factor, self.per = tuple(sorted(int(m) for m in milestones)), float(factor), per
        if not 0 < self.factor <= 1:
            raise ValueError(f"StepDecay: factor must be in (0, 1], got {factor}")

    def lr(self, t, total, base):
        return base * self.factor ** sum(t >= m for m in self.milestones)


class Exponential(Schedule):
    """``base * gamma ** t``."""

    def __init__(self, gamma: float = 0.9, per: str = "epoch"):
        if not 0 < gamma <= 1:
            raise ValueError(f"Exponential: gamma must be in (0, 1], got {gamma}")
        self.gamma, self.per = float(gamma), per

    def lr(self, t, total, base):
        return base * self.gamma**t


class Cosine(Schedule):
    """Half a cosine from ``base`` at ``t = 0`` towards 0 at ``t = total``."""

    def __init__(self, per: str = "epoch"):
        self.per = per

    def lr(self, t, total, base):
        return base * 0.5 * (1.0 + math.cos(math.pi * t / max(total, 1)))


class OneCycle(Schedule):
    """Per step: a cosine warm-up from ``base / div_factor`` to ``base`` over the first
    ``pct_start`` of the run, then a cosine anneal to ``base / div_factor / final_div_factor``
    (PyTorch's OneCycleLR)."""

    per = "step"

    def __init__(self, pct_start: float = 0.25, div_factor: float = 25.0, final_div_factor: float = 1e4):
        if not 0 < pct_start < 1 or div_factor < 1 or final_div_factor < 1:
            raise ValueError("OneCycle: needs 0 < pct_start < 1, div_factor >= 1, final_div_factor >= 1")
        self.pct_start, self.div_factor, self.final_div_factor = float(pct_start), float(div_factor), float(final_div_factor)

    def lr(self, t, total, base):
        start, end = base / self.div_factor, base / self.div_factor / self.final_div_factor
        warm = max(1, round(self.pct_start * total))
        if t < warm:
            return start + (base - start) * 0.5 * (1 - math.cos(math.pi * t / warm))
        frac = (t - warm) / max(1, total - 1 - warm)
        return end + (base - end) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


class _PerEpochFunction(Schedule):
    def __init__(self, fn):
        self.fn = fn

    def lr(self, t, total, base):
        return self.fn(t, base)


NAMED = {"constant": Constant, "cosine": Cosine, "step": StepDecay, "exponential": Exponential, "onecycle": OneCycle}


def get_schedule(schedule) -> Schedule:
    """A :class:`Schedule` from a name (``"constant"``, ``"cosine"``, ``"step"``, ``"exponential"``,
    ``"onecycle"``), a Schedule, or a callable ``f(epoch, lr) -> lr`` applied per epoch."""
    if isinstance(schedule, Schedule):
        return schedule
    if isinstance(schedule, str) and schedule in NAMED:
        return NAMED[schedule]()
    if callable(schedule):
        return _PerEpochFunction(schedule)
    raise ValueError(f"lr_schedule must be one of {sorted(NAMED)}, a Schedule or a callable f(epoch, lr), "
                     f"got {schedule!r}")


def make_schedule(schedule, lr: float, epochs: int, steps_per_epoch: int = 1):
    """``f(epoch, step_in_epoch) -> lr``, checked to be positive and finite."""
    sched = get_schedule(schedule)
    if sched.per not in ("epoch", "step"):
        raise ValueError(f"{sched!r}: per must be 'epoch' or 'step'")

    def at(epoch: int, step: int = 0) -> float:
        if sched.per == "step":
            value = sched.lr(epoch * steps_per_epoch + step, epochs * steps_per_epoch, lr)
        else:
            value = sched.lr(epoch, epochs, lr)
        value = float(value)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"lr_schedule gave {value!r} at epoch {epoch}, step {step}; it must be positive and finite")
        return value

    at.per = sched.per
    return at
