"""``fit``'s progress display.

verbose=1 on a terminal (or in a notebook): a tqdm bar per epoch, redrawn in place at the
terminal's width, with the step rate, the time left and the running loss and accuracy; when the
epoch ends the bar gives way to the epoch's summary line, so each epoch leaves one line. Piped
output (CI logs, files) gets a few plain lines per epoch with the same figures instead of
carriage returns. verbose=2: the summary line alone; verbose=0: nothing.
"""

from __future__ import annotations

import sys
import time


def _in_notebook() -> bool:
    return "ipykernel" in sys.modules


class ProgressBar:
    """The progress of one epoch of ``steps`` steps; see the module's docstring."""

    LOG_LINES_PER_EPOCH = 4  # when the output is neither a terminal nor a notebook
    REDRAW_S = 0.1

    def __init__(self, steps: int, epoch: int, epochs: int, verbose: int, stream=None):
        self.steps, self.verbose = steps, verbose
        self.stream = stream or sys.stdout
        self.t0 = self._last = time.perf_counter()
        self._next_log = 1
        self.label = f"Epoch {epoch}/{epochs}"
        self.bar = self._tqdm(self.label) if verbose == 1 else None
        self.drawn = self.bar is not None  # the summary line then carries the label the bar had
        if verbose == 1 and not self.drawn:
            self._write(self.label + "\n")

    def _tqdm(self, desc: str):
        isatty = getattr(self.stream, "isatty", lambda: False)
        if not (isatty() or _in_notebook()):
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:  # installed without its dependencies: plain lines
            return None
        return tqdm(total=self.steps, desc=desc, unit="step", file=self.stream, dynamic_ncols=True, leave=False,
                    mininterval=self.REDRAW_S, bar_format="{desc}: {n_fmt}/{total_fmt} [{elapsed}<{remaining}, "
                                                          "{rate_fmt}]{postfix} |{bar}|")

    def _write(self, s: str) -> None:
        self.stream.write(s)
        self.stream.flush()

    def due(self, step: int) -> bool:
        """Whether ``update(step, ...)`` would draw: the caller reads the metrics only then."""
        if self.verbose != 1 or step >= self.steps:
            return False
        if self.bar is not None:
            return time.perf_counter() - self._last >= self.REDRAW_S
        return step * self.LOG_LINES_PER_EPOCH >= self._next_log * self.steps

    def update(self, step: int, loss: float, acc: float) -> None:
        if not self.due(step):
            return
        now = time.perf_counter()
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {loss:.4f} acc {acc:.4f}", refresh=False)
            self.bar.update(step - self.bar.n)
        else:
            self._next_log += 1
            elapsed = now - self.t0
            rate = step / elapsed if elapsed > 0 else float("inf")
            self._write(f"{step}/{self.steps} - {elapsed:.1f}s - {rate:.1f} steps/s - {(self.steps - step) / rate:.1f}s "
                        f"left - loss: {loss:.4f} - accuracy: {acc:.4f}\n")
        self._last = now

    def close(self) -> None:
        """Take the bar off the screen (an interrupted epoch leaves no half-drawn line)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def finish(self, logs: dict) -> None:
        """The epoch's summary line, in place of its bar."""
        self.close()
        if not self.verbose:
            return
        parts = [f"{k}: {v:.4g}" if k == "lr" else f"{k}: {v:.4f}" for k, v in logs.items() if k != "time"]
        prefix = f"{self.label} - " if self.drawn else ""
        self._write(f"{prefix}{self.steps}/{self.steps} - {logs['time']:.2f}s - " + " - ".join(parts) + "\n")
