"""The CPUs divided among the trainings running on one machine.

Two trainings that each run a thread per CPU make every OpenMP barrier wait for a thread the
other process has taken off its core. A training on the cpp backend with the default thread count
therefore registers while it runs, in a directory of lock files (one per running training, its
``flock`` held for as long as it runs), and takes its share of the usable CPUs: all of them
alone, one each when two share two CPUs. It looks again every ``POLL_SECONDS`` between steps, so
a run that started alone gives up cores when another starts and takes them back when it ends.

A file whose lock nobody holds belongs to a process that died: it is removed by whoever sees it.
A thread count the user chose (``--threads``, ``MNISTFAST_NUM_THREADS``, ``OMP_NUM_THREADS``,
``CppBackend(threads=...)``) is never changed. Where the directory cannot be written the run keeps
its thread count: sharing is an optimisation, never a reason to fail.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from pathlib import Path

DIR_ENV = "MNISTFAST_SHARE_DIR"
# Between steps a training looks at who else is running at most this often: a step is
# milliseconds, a directory scan tens of microseconds.
POLL_SECONDS = 0.25
_SUFFIX = ".share"


def share_dir() -> Path:
    """Where the running trainings register: ``MNISTFAST_SHARE_DIR``, else a directory of this
    user's in the temporary directory."""
    chosen = os.environ.get(DIR_ENV, "").strip()
    if chosen:
        return Path(chosen)
    return Path(tempfile.gettempdir()) / f"mnistfast-cores-{os.getuid()}"


def share(cpus: int, ranked: int, members: int) -> int:
    """The threads of the member ranked ``ranked`` (0 = the oldest) of ``members`` sharing ``cpus``:
    an equal part, the remainder to the oldest, at least one each."""
    return max(1, cpus // members + (ranked < cpus % members))


class CoreShare:
    """This process's registration while it trains; ``poll()`` sets its share of the CPUs.

    Parameters
    ----------
    cpus : int
        The CPUs to divide (``mnistfast.cpus.usable_cpus()``).
    set_threads : callable
        ``set_threads(n)`` gives the backend ``n`` threads.
    directory : path-like, optional
        The registry (default :func:`share_dir`).
    poll_seconds : float
        The least time between two looks at the registry.
    """

    def __init__(self, cpus: int, set_threads, directory=None, poll_seconds: float = POLL_SECONDS):
        self.cpus, self.set_threads, self.poll_seconds = int(cpus), set_threads, poll_seconds
        self.directory = Path(directory) if directory is not None else share_dir()
        self.name = None  # this process's file in the registry, once registered
        self.threads = self.cpus
        self._fd, self._next = None, 0.0

    def __enter__(self) -> "CoreShare":
        with contextlib.suppress(OSError):
            self._register()
        self.poll(force=True)
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                (self.directory / self.name).unlink()
            os.close(self._fd)
            self._fd = None
        if self.threads != self.cpus:
            self.threads = self.cpus
            self.set_threads(self.cpus)

    def _register(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Named by start time, so the registry's sorted order is the members' age. The file is
        # locked under a temporary name and only then renamed into view: a file of the registry
        # whose lock is free is always a dead process's.
        name = f"{time.time_ns():020d}-{os.getpid()}{_SUFFIX}"
        tmp = self.directory / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(tmp, self.directory / name)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._fd, self.name = fd, name

    def members(self) -> list:
        """The registered names of the running trainings, oldest first; dead ones removed."""
        if self._fd is None:
            return []
        try:
            names = sorted(e.name for e in os.scandir(self.directory) if e.name.endswith(_SUFFIX))
        except OSError:
            return [self.name]
        return [n for n in names if n == self.name or self._alive(n)]

    def _alive(self, name: str) -> bool:
        path = self.directory / name
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return False  # it ended while we looked
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True  # its owner holds the lock
        finally:
            os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
        return False

    def poll(self, force: bool = False) -> int:
        """Set this process's share of the CPUs if ``poll_seconds`` have passed (or ``force``);
        returns the thread count."""
        now = time.monotonic()
        if not force and now < self._next:
            return self.threads
        self._next = now + self.poll_seconds
        names = self.members()
        threads = share(self.cpus, names.index(self.name), len(names)) if self.name in names else self.cpus
        if threads != self.threads:
            self.threads = threads
            self.set_threads(threads)
        return threads


class NoShare:
    """The stand-in where the thread count is not ours to change (a backend without threads, or
    a count the user chose)."""

    def __enter__(self) -> "NoShare":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def poll(self, force: bool = False) -> None:
        return None


__all__ = ["DIR_ENV", "POLL_SECONDS", "CoreShare", "NoShare", "share", "share_dir"]
