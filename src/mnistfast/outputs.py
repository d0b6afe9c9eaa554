"""Where the command line writes results, checked before any work starts.

Nothing the user owns is replaced or deleted unless mnistfast wrote it:

- a run directory (``train --out``) is replaced whole by ``storage.write_directory``, so it must be
  new, empty, or a run directory of ours: one holding our marker file, or (runs written before the
  marker existed) only the files a run writes;
- an output file (``predict --out``, ``eval --out``) must be new or a regular file; devices,
  FIFOs, sockets and directories are refused;
- a symbolic link is followed: the link stays, its target is written;
- the check for a writable location tests the directory the write happens in (a run directory's
  parent, where its replacement is built), by creating something there, and that its disk has
  room;
- one writer at a time: a run directory is locked (``fcntl.flock`` on a lock file beside it) from
  the check until its files are in place, and a second writer fails at once.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat
import tempfile
from pathlib import Path

# A run directory holds this file, so that a later run may replace the directory.
RUN_MARKER = ".mnistfast-run"
# What a run directory held before the marker existed: a later run may replace those too.
_RUN_FILES = {"model.npz", "history.json", "eval.json"}
# Room asked for beyond the model itself: the history, the figures, the file system's slack.
DISK_MARGIN_BYTES = 16 << 20


class OutputError(ValueError):
    """An output location that cannot or must not be written (one line for the user)."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISREG, "a regular file"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def _follow(path: Path, what: str) -> Path:
    """``path`` with a symbolic link at its end followed (the link is never replaced)."""
    if path.is_symlink():
        target = Path(os.path.realpath(path))
        if not target.exists() and not target.parent.is_dir():
            raise OutputError(f"{what} {path}: a symbolic link to {target}, whose directory does not exist")
        return target
    return path


def _existing_ancestor(directory: Path) -> Path:
    """``directory``, or its nearest ancestor that exists (where a write under it would start)."""
    while not directory.exists() and directory.parent != directory:
        directory = directory.parent
    return directory


def _writable_dir(directory: Path, what: str, path: Path) -> None:
    """Fail unless a file can be created in ``directory`` (or in the ancestor that will hold it)."""
    probe_in = _existing_ancestor(directory)
    if not probe_in.is_dir():
        raise OutputError(f"{what} {path}: {probe_in} is not a directory, so nothing can be written under it")
    try:  # access() answers for the real user and ignores read-only mounts: try it instead
        os.rmdir(tempfile.mkdtemp(prefix=".mnistfast-probe-", dir=probe_in))
    except OSError as e:
        raise OutputError(f"{what} {path}: cannot write in {probe_in} ({e.strerror})") from None


def _room(directory: Path, need: int, what: str, path: Path) -> None:
    where = _existing_ancestor(directory)
    free = shutil.disk_usage(where).free
    if free < need:
        raise OutputError(f"{what} {path}: {where} has {free >> 20} MiB free, and the results need about "
                          f"{need >> 20} MiB")


def check_output_file(path, what: str = "--out", need_bytes: int = 0) -> Path:
    """The path to write an output file at (a link's target), after checking that it is new or a
    regular file and that its directory takes a new file with ``need_bytes`` to spare."""
    path = _follow(Path(path), what)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        raise OutputError(f"{what} {path}: exists and is {_kind(mode)}; give the path of a regular file")
    _writable_dir(path.parent, what, path)
    _room(path.parent, need_bytes + DISK_MARGIN_BYTES, what, path)
    return path


def check_output_dir(path, what: str = "--out") -> Path:
    """Check a directory that outputs are added to (nothing in it is removed): it is a directory
    or can be made, and a file can be created there."""
    path = _follow(Path(path), what)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path}: exists and is {_kind(os.stat(path).st_mode)}, not a directory")
    _writable_dir(path, what, path)
    return path


def is_run_directory(path: Path) -> bool:
    """Whether ``path`` is a directory mnistfast may replace: empty, marked as a run, or holding
    only the files a run writes."""
    names = [p.name for p in path.iterdir()]
    return not names or RUN_MARKER in names or all(n in _RUN_FILES or n.endswith(".png") for n in names)


class RunDirectory:
    """A run directory about to be written, checked and locked; a context manager.

    Parameters
    ----------
    out : path-like
        The run directory (``train --out``); a link to a directory is followed.
    need_bytes : int
        What the results will take (the model file); the disk must have that and a margin free.

    Raises
    ------
    OutputError
        Where ``out`` is not a run directory of ours, is not a directory, cannot be written, has
        no room, or another run holds its lock.
    """

    def __init__(self, out, need_bytes: int = 0, what: str = "--out"):
        given = Path(out)
        _follow(given, what)
        self.path = Path(os.path.realpath(given))  # "." and ".." named, links followed
        self.what, self.given, self.need = what, given, need_bytes
        self._lock_fd = None

    def __enter__(self) -> "RunDirectory":
        path, what = self.path, self.what
        if path.parent == path:
            raise OutputError(f"{what} {self.given}: the root directory cannot be a run directory")
        self._lock()
        try:
            if path.exists() or path.is_symlink():
                mode = os.lstat(path).st_mode
                if not stat.S_ISDIR(mode):
                    raise OutputError(f"{what} {self.given}: exists and is {_kind(mode)}, not a directory")
                if not is_run_directory(path):
                    found = sorted(p.name for p in path.iterdir() if p.name != RUN_MARKER)
                    shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
                    raise OutputError(f"{what} {self.given}: the directory holds files mnistfast did not write "
                                      f"({shown}), which a run would replace; choose a new or empty directory")
            _writable_dir(path.parent, what, self.given)
            _room(path.parent, self.need + DISK_MARGIN_BYTES, what, self.given)
        except BaseException:
            self._unlock()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._unlock()

    def require_room(self, need_bytes: int) -> None:
        """Fail unless the disk holding the run has ``need_bytes`` and the margin free (called once
        the model's size is known, before training)."""
        _room(self.path.parent, need_bytes + DISK_MARGIN_BYTES, self.what, self.given)

    def _lock(self) -> None:
        parent = self.path.parent
        _writable_dir(parent, self.what, self.given)
        parent.mkdir(parents=True, exist_ok=True)
        lock = parent / f".{self.path.name}.lock"
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise OutputError(f"{self.what} {self.given}: another mnistfast run is writing there (it holds "
                                  f"{lock}); wait for it to finish or choose another directory") from None
            raise
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None
