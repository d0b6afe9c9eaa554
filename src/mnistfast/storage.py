"""Files the package writes, written atomically, and model files read with bounded memory.

Model files are plain ``.npz`` archives (no pickle) holding a JSON config and named float32
arrays. This module knows the file format, not the models: ``serialization`` turns the configs
and arrays into models and ensembles.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import shutil
import stat
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place, so a
    crash never leaves a half-written file under the final name. The file gets the permissions a
    plain ``open`` would give it (mkstemp's are 0600). A link at ``path`` is followed (its target
    is written); anything there but a regular file (a directory, device, FIFO, socket) is refused."""
    path = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)  # a link stays a link
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        raise IsADirectoryError(errno.EISDIR, "exists and is a directory", str(path)) if stat.S_ISDIR(mode) else \
            OSError(errno.EEXIST, "exists and is not a regular file (a device, FIFO or socket): not replaced", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)  # gone already if the interruption came after the rename
        raise


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    ok = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0
    return ok


def _leftovers(out: Path, kind: str):
    return sorted(out.parent.glob(f".{out.name}.{kind}-*"))


def clean_leftovers(out) -> None:
    """Remove what an interrupted ``write_directory`` left beside ``out``; if the interruption came
    between the two renames of the fallback swap, put the old directory back first."""
    out = Path(out)
    old = _leftovers(out, "old")
    if old and not out.exists():
        os.rename(old[-1], out)
        old = old[:-1]
    for leftover in old + _leftovers(out, "tmp"):
        shutil.rmtree(leftover, ignore_errors=True)


def write_directory(out, writers: dict) -> None:
    """Write a directory of files as a unit: each ``writers[name](path)`` writes one file into a
    temporary directory beside ``out``, which then replaces ``out`` in one atomic exchange. A crash
    or kill at any point leaves ``out`` either complete and old or complete and new, never a mix
    (leftovers are cleaned by the next write)."""
    out = Path(os.path.realpath(out))  # a link to the directory stays a link; its target is replaced
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for name, write in writers.items():
            write(tmp / name)
        os.chmod(tmp, 0o777 & ~_umask())
        if not out.exists():
            os.rename(tmp, out)
            return
        if not out.is_dir():
            raise NotADirectoryError(f"{out}: exists and is not a directory")
        if _exchange(tmp, out):
            shutil.rmtree(tmp, ignore_errors=True)  # it now holds the old directory
            return
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.rmdir(old)
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path, obj) -> None:
    atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode()))


# The "format" field of a model file's config.
MODEL_FORMAT = "mnistfast.sequential/1"
ENSEMBLE_FORMAT = "mnistfast.ensemble/1"
LEGACY_MLP_FORMAT = "mnistfast.mlp/1"  # written by mnistfast 0.1: an MLP's sizes and W1, b1, ...


def write_model(path, config: dict, arrays: dict) -> None:
    """A model file at ``path``: ``config`` as JSON beside the float32 ``arrays``, atomically."""
    entries = {"config": np.array(json.dumps(config))}
    entries.update({name: np.asarray(a, dtype=np.float32) for name, a in arrays.items()})
    atomic_write(path, lambda f: np.savez(f, **entries))


# Model files are small (the basic CNN's is 1.3 MB); a file claiming more is not one of ours.
MAX_MODEL_BYTES = 1 << 30
MAX_CONFIG_BYTES = 1 << 20


def _not_a_model(path, why: str) -> ValueError:
    return ValueError(f"{path}: not a mnistfast model file: {why}")


class ModelArrays(Mapping):
    """The arrays of a model file by name, each read from the archive when first asked for: a
    member the model does not use is never decompressed."""

    def __init__(self, path, names, prefix: str = ""):
        self.path, self._names, self._prefix, self._cache = path, list(names), prefix, {}

    def __getitem__(self, name):
        if name not in self._cache:
            if name not in self._names:
                raise KeyError(name)
            self._cache[name] = self._read(self._prefix + name)
        return self._cache[name]

    def __iter__(self):
        return iter(self._names)

    def __len__(self):
        return len(self._names)

    def with_prefix(self, prefix: str) -> "ModelArrays":
        """The arrays whose names start with ``prefix``, named without it (an ensemble member's)."""
        names = [n[len(prefix):] for n in self._names if n.startswith(prefix)]
        return ModelArrays(self.path, names, self._prefix + prefix)

    def pop_config(self):
        value = self._read("config")
        self._names.remove("config")
        return value

    def _read(self, member):
        # Past the magic number, a damaged archive can make zipfile and numpy raise almost
        # anything (struct.error, zlib.error, NotImplementedError...): all mean the same here.
        try:
            with zipfile.ZipFile(self.path) as zf, zf.open(member + ".npy") as f:
                return np.lib.format.read_array(f, allow_pickle=False)
        except Exception as e:  # noqa: BLE001
            raise _not_a_model(self.path, f"entry {member!r} could not be read ({type(e).__name__}: {e})") from None


def _why_not_a_file(path: Path) -> str:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "no such model file" if not path.is_symlink() else "a symbolic link to nothing (no such model file)"
    except OSError as e:  # a loop of links, a path through a file, ...
        return f"not a model file ({e.strerror})"
    if stat.S_ISDIR(mode):
        return "is a directory; give the model file in it (model.npz)" if (path / "model.npz").is_file() else \
            "is a directory, not a model file"
    kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    return f"is {kind}, not a model file"


def read_model(path) -> tuple[dict, "ModelArrays"]:
    """``(config, arrays)`` from a model file; ValueError naming the file if it is not one.

    The archive's directory is checked before any array is read: its members must be ``.npy``
    arrays whose uncompressed sizes add up to at most ``MAX_MODEL_BYTES``. The arrays are read
    when asked for (``ModelArrays``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {_why_not_a_file(path)}")
    try:
        with open(path, "rb") as f:
            start = f.read(64)
    except PermissionError:
        raise ValueError(f"{path}: permission denied (the file is not readable)") from None
    if not start.startswith(b"PK\x03\x04"):
        if start.startswith(b"\x93NUMPY"):
            raise _not_a_model(path, "it is a single .npy array; models are .npz archives written by model.save")
        if start[:1] in (b"{", b"[") or all(32 <= c < 127 or c in (9, 10, 13) for c in start):
            raise _not_a_model(path, "it is a text file; models are .npz archives written by model.save")
        raise _not_a_model(path, "it is not an .npz (zip) archive")
    # Past the magic number, a damaged archive can make zipfile and numpy raise almost anything
    # (NotImplementedError for a bogus version field, struct.error, zlib.error, ...): whatever
    # they raise while parsing means the same thing here.
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except Exception as e:  # noqa: BLE001
        raise _not_a_model(path, f"a damaged zip archive ({type(e).__name__}: {e})") from None
    total = sum(i.file_size for i in infos)
    if total > MAX_MODEL_BYTES:
        raise _not_a_model(path, f"its arrays would take {total} bytes, more than the {MAX_MODEL_BYTES >> 20} MiB limit")
    if not any(i.filename == "config.npy" for i in infos):
        raise _not_a_model(path, "the archive has no 'config' entry")
    config_info = next(i for i in infos if i.filename == "config.npy")
    if config_info.file_size > MAX_CONFIG_BYTES:
        raise _not_a_model(path, f"its config entry is {config_info.file_size} bytes")
    arrays = ModelArrays(path, [i.filename[:-4] for i in infos if i.filename.endswith(".npy")])
    try:
        config = json.loads(str(arrays.pop_config()))
    except (KeyError, json.JSONDecodeError):
        raise _not_a_model(path, "its 'config' entry is not readable JSON") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: the model config is a JSON {type(config).__name__}, expected an object")
    return config, arrays
