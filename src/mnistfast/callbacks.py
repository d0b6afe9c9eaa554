"""Training callbacks and the History that ``fit`` returns, in the Keras idiom."""

from __future__ import annotations


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
