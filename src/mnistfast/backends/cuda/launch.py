"""Launch configurations (the same kernels, sized for a real GPU or for the simulator), and the
registry of launchers.

A launcher is the host side of one contract kernel: a function ``name(be, ...)`` with the table's
argument names, defined beside the CUDA kernels it launches and registered with ``@launcher``.
``CudaBackend`` binds every registered launcher as its method of that name, checked against the
contract, so adding a kernel touches only the module that holds it.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
from numba.cuda import config

from ..base import checked

SIMULATOR = bool(config.ENABLE_CUDASIM)

# A real GPU: 256 threads a block and enough blocks to fill every SM several times over; the
# kernels loop grid-stride past that. The simulator runs each thread as a Python thread, so it
# gets two small blocks: still more than one block and more than one stride per thread.
THREADS = 16 if SIMULATOR else 256
MAX_BLOCKS = 2 if SIMULATOR else 4096

# Block size of the reductions (a power of two: the shared-memory tree halves it).
REDUCE_THREADS = 16 if SIMULATOR else 256


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


def run(kernel, n: int, *args) -> None:
    """Launch grid-stride ``kernel`` over ``n`` items (nothing for ``n == 0``)."""
    if n:
        kernel[grid(n)](*args)


def grid(n: int):
    """(blocks, threads) for a grid-stride kernel over ``n`` items."""
    blocks = max(1, min(MAX_BLOCKS, -(-n // THREADS)))
    return blocks, THREADS


def grid_blocks(n_blocks: int) -> int:
    """Blocks for a kernel that loops over ``n_blocks`` independent work items (tiles, channels)."""
    return max(1, min(MAX_BLOCKS, n_blocks))


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
