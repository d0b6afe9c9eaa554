"""Learning-rate schedules for ``fit(lr_schedule=...)``: per epoch, from the optimizer's initial lr."""

from __future__ import annotations

import math


def make_schedule(schedule, lr: float, epochs: int):
    """``"constant"``, ``"cosine"`` (from ``lr`` towards 0 over ``epochs``) or ``f(epoch, lr) -> lr``."""
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
