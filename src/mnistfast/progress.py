"""A Keras-style progress line for ``fit``."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """verbose=1: a bar redrawn in place on a terminal (a few plain lines per epoch otherwise);
    verbose=2: one line per epoch; verbose=0: nothing."""

    WIDTH = 30
    LOG_LINES_PER_EPOCH = 4  # when the output is not a terminal (CI logs, files)

    def __init__(self, steps: int, epoch: int, epochs: int, verbose: int, stream=None):
        self.steps, self.verbose = steps, verbose
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.t0 = self._last = time.perf_counter()
        self._next_log = 1
        if verbose:
            self._write(f"Epoch {epoch}/{epochs}\n")

    def _write(self, s: str) -> None:
        self.stream.write(s)
        self.stream.flush()

    def due(self, step: int) -> bool:
        """Whether ``update(step, ...)`` would draw: the caller reads the metrics only then."""
        if self.verbose != 1 or step >= self.steps:
            return False
        if self.tty:
            return time.perf_counter() - self._last >= 0.1
        return step * self.LOG_LINES_PER_EPOCH >= self._next_log * self.steps

    def update(self, step: int, loss: float, acc: float) -> None:
        if not self.due(step):
            return
        now = time.perf_counter()
        if self.tty:
            done = self.WIDTH * step // self.steps
            bar = "=" * done + (">" if done < self.WIDTH else "") + "." * (self.WIDTH - done - 1)
            self._write(f"\r{step:>{len(str(self.steps))}}/{self.steps} [{bar[:self.WIDTH]}] "
                        f"- {now - self.t0:.1f}s - loss: {loss:.4f} - accuracy: {acc:.4f}")
        else:
            self._next_log += 1
            self._write(f"{step}/{self.steps} - {now - self.t0:.1f}s - loss: {loss:.4f} - accuracy: {acc:.4f}\n")
        self._last = now

    def finish(self, logs: dict) -> None:
        if not self.verbose:
            return
        parts = [f"{k}: {v:.4g}" if k == "lr" else f"{k}: {v:.4f}" for k, v in logs.items() if k != "time"]
        line = f"{self.steps}/{self.steps} - {logs['time']:.2f}s - " + " - ".join(parts)
        # On a terminal the summary replaces the bar: carriage return, then clear to the end of the
        # line, so no tail of the longer bar line survives.
        self._write(("\r\x1b[K" if self.tty and self.verbose == 1 else "") + line + "\n")
