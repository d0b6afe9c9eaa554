"""Launch configurations (the same kernels, sized for a real GPU or for the simulator), the
registry of launchers, and the one function that launches, with its recorder.

A launcher is the host side of one contract kernel: a function ``name(be, ...)`` with the table's
argument names, defined beside the CUDA kernels it launches and registered with ``@launcher``.
``CudaBackend`` binds every registered launcher as its method of that name, checked against the
contract, so adding a kernel touches only the module that holds it.

Every kernel goes through :func:`launch`, so :func:`record_launches` sees them all: the tests
count a training step's launches and check its grids (dry, sized for an H100, under the
simulator), and the GPU check times each kernel of a step with CUDA events.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from dataclasses import dataclass, replace

import numpy as np
from numba.cuda import config

from ..base import checked

SIMULATOR = bool(config.ENABLE_CUDASIM)


@dataclass(frozen=True)
class Target:
    """The launch geometry the kernels are compiled and sized for.

    ``fill_blocks`` is the grid a launch should reach to keep every SM busy: work too narrow for
    it (a GEMM with few output tiles, a column sum over few columns) is split along its long
    axis until it does. It is a constant of the target, not read from the device, so that the
    split, and with it the order of every floating-point sum, is the same on any GPU.
    """

    threads: int  # block size of the grid-stride kernels
    max_blocks: int  # grid cap; the grid-stride kernels loop past it
    reduce_threads: int  # block size of the tree reductions (a power of two)
    gemm_tiles: tuple  # (BM, BN, BK, TM, TN) each, largest first: SGEMM block tile, slice, thread tile
    column_block: tuple  # (CX, CY): columns x row groups of a column-sum block
    fill_blocks: int
    latency_bound_bytes: int  # work under both bounds is bound by launch latency, not by SMs:
    latency_bound_macs: int  # it is not split to fill the GPU, and the fill rule exempts it

    def latency_bound(self, array_bytes: int, macs: int = 0) -> bool:
        """Whether a launch touching ``array_bytes`` with ``macs`` multiply-adds is too small to
        need the whole GPU."""
        return array_bytes <= self.latency_bound_bytes and macs <= self.latency_bound_macs


# A real GPU: two blocks for each of an H100's 132 SMs at least, 256 threads a block. A launch
# touching at most 1 MiB (well under a microsecond of HBM traffic) with at most 2^20 multiply-adds
# (a few microseconds on the few SMs its tiles occupy) waits on launch latency, not on the SMs.
GPU = Target(threads=256, max_blocks=4096, reduce_threads=256, gemm_tiles=((64, 64, 16, 4, 4), (32, 32, 16, 2, 2)),
             column_block=(32, 8), fill_blocks=2 * 132, latency_bound_bytes=1 << 20, latency_bound_macs=1 << 20)
# The simulator runs each thread as a Python thread: a few small blocks, still more than one block
# and more than one stride per thread, and nothing exempt from the fill, so that the split paths
# run on the small shapes of the tests.
SIMULATED = Target(threads=16, max_blocks=2, reduce_threads=16, gemm_tiles=((16, 16, 16, 4, 4), (8, 8, 8, 2, 2)),
                   column_block=(4, 4), fill_blocks=4, latency_bound_bytes=0, latency_bound_macs=0)
COMPILED = SIMULATED if SIMULATOR else GPU
WARP = 32

REDUCE_THREADS = COMPILED.reduce_threads  # the tree reductions' shared arrays are sized by it


# kernel name -> (backend method name, checked launcher)
LAUNCHERS: dict = {}


def launcher(kernel: str, method: str | None = None):
    """Register ``fn(be, ...)`` as the cuda backend's launcher of contract kernel ``kernel``, bound
    as the backend method ``method`` (the kernel's name; gemm's is ``_gemm``, under
    ``Backend.gemm``)."""

    def register(fn):
        bound = checked(kernel)(fn)
        bound.__name__ = bound.__qualname__ = kernel  # as messages and the tests name it
        LAUNCHERS[kernel] = (method or kernel, bound)
        return fn

    return register


# -- launching, and the recorder ------------------------------------------------------------------------
@dataclass(frozen=True)
class Launch:
    """One recorded kernel launch."""

    kernel: str
    blocks: int
    threads: int  # per block
    array_bytes: int  # the sizes of its array arguments together: what it may touch at most
    macs: int  # multiply-adds of a GEMM, 0 for other kernels
    seconds: float | None = None  # its GPU time, in a timed recording


class _Recording(threading.local):
    launches: list | None = None
    execute: bool = True
    target: Target | None = None
    events: list | None = None  # (start, stop) per launch, when timed


_recording = _Recording()


def target() -> Target:
    """The geometry launches are sized for now: the compiled one, or a recorder's."""
    return _recording.target or COMPILED


@contextlib.contextmanager
def record_launches(execute: bool = True, as_target: Target | None = None, timed: bool = False):
    """Record every kernel launched in this thread inside the block; yields the list of
    :class:`Launch`.

    ``execute=False`` records without running anything (the arrays keep whatever they held), and
    ``as_target`` then sizes the launches for another geometry: under the simulator,
    ``record_launches(execute=False, as_target=GPU)`` gives the launches a real GPU would see for
    full-size work, which the simulator could not run in reasonable time. ``timed=True`` brackets
    each launch with CUDA events and, when the block ends, waits for the GPU and fills each
    record's ``seconds`` (under the simulator, host time: launches are synchronous there).
    """
    if as_target is not None and execute and as_target is not COMPILED:
        raise ValueError("record_launches: kernels compiled for one target cannot run sized for another")
    if timed and not execute:
        raise ValueError("record_launches: a dry run has nothing to time")
    saved = (_recording.launches, _recording.execute, _recording.target, _recording.events)
    launches: list = []
    events: list | None = [] if timed else None
    _recording.launches, _recording.execute, _recording.target, _recording.events = launches, execute, as_target, events
    try:
        yield launches
    finally:
        _recording.launches, _recording.execute, _recording.target, _recording.events = saved
    if events is not None:
        for i, (start, stop) in enumerate(events):
            launches[i] = replace(launches[i], seconds=_elapsed(start, stop))


def _event():
    if SIMULATOR:
        return time.perf_counter()
    from numba import cuda

    ev = cuda.event()
    ev.record()
    return ev


def _elapsed(start, stop) -> float:
    if SIMULATOR:
        return stop - start
    stop.synchronize()
    return start.elapsed_time(stop) / 1e3


def launch(kernel, blocks: int, threads, *args, macs: int = 0, name: str | None = None) -> None:
    """``kernel[blocks, threads](*args)``: the one place every kernel of the backend is launched.
    For the recorder: ``macs``, a GEMM's multiply-adds; ``name``, the kernel's name where it
    depends on the target (a dry run for another target names what that target would run)."""
    rec = _recording
    if rec.launches is None:
        kernel[blocks, threads](*args)
        return
    size = sum(a.size * a.dtype.itemsize for a in args if getattr(a, "__cuda_ndarray__", False))
    per_block = threads if isinstance(threads, int) else int(np.prod(threads))
    name = name or getattr(kernel, "__name__", str(kernel))
    rec.launches.append(Launch(name, int(blocks), per_block, size, int(macs)))
    if not rec.execute:
        return
    start = _event() if rec.events is not None else None
    kernel[blocks, threads](*args)
    if start is not None:
        rec.events.append((start, _event()))


def run(kernel, n: int, *args) -> None:
    """Launch grid-stride ``kernel`` over ``n`` items (nothing for ``n == 0``)."""
    if n:
        blocks, threads = grid(n)
        launch(kernel, blocks, threads, *args)


def grid(n: int):
    """(blocks, threads) for a grid-stride kernel over ``n`` items. Blocks shrink (down to one
    warp) before the grid falls short of the target's fill, so a few thousand items still spread
    over every SM."""
    t = target()
    threads = t.threads
    while threads > WARP and -(-n // threads) < t.fill_blocks:
        threads //= 2
    return max(1, min(t.max_blocks, -(-n // threads))), threads


def grid_blocks(n_blocks: int) -> int:
    """Blocks for a kernel that loops over ``n_blocks`` independent work items (tiles, channels)."""
    return max(1, min(target().max_blocks, n_blocks))


def chunk_to_fill(items: int, length: int, min_chunk: int) -> int:
    """How long the chunks of a ``length``-long axis should be so that ``items`` independent
    pieces of work, each cut into chunks, reach the target's fill: ``length`` (no cut) when they
    already do, and never shorter than ``min_chunk``. Cut into ``ceil(length / chunk)`` chunks."""
    want = -(-target().fill_blocks // max(1, items))
    if want <= 1 or length < 2 * min_chunk:
        return length
    return max(min_chunk, length // want)


def _share_simulator_shared_arrays_safely():
    """Make the simulator's ``cuda.shared.array`` hand every thread of a block the same array.

    The simulator finds a block's shared array by the caller's file and line in a dict and
    creates it on a miss. Two threads that miss at the same time each create one (check, then
    set, without a lock), and the thread left holding its own copy reads uninitialised memory
    after the barrier: the rare wrong GEMM tile and drifting training run seen under the
    simulator. The same lookup, under a lock.
    """
    from numba.cuda.simulator.kernelapi import FakeCUDAShared
    from numba.core import types
    from numba.np import numpy_support

    original = FakeCUDAShared.array
    if getattr(original, "locked", False):
        return
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:  # dynamic shared memory needs no lookup
            return original(self, shape, dtype, alignment)
        if isinstance(dtype, types.Type):
            dtype = numpy_support.as_dtype(dtype)
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)
        with lock:
            found = self._allocations.get(key)
            if found is None:
                found = self._allocations[key] = np.empty(shape, dtype)
        return found

    array.locked = True
    FakeCUDAShared.array = array


if SIMULATOR:
    _share_simulator_shared_arrays_safely()
