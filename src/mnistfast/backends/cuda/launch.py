"""Launch configurations: the same kernels, sized for a real GPU or for the simulator."""

from __future__ import annotations

from numba.cuda import config

SIMULATOR = bool(config.ENABLE_CUDASIM)

# A real GPU: 256 threads a block and enough blocks to fill every SM several times over; the
# kernels loop grid-stride past that. The simulator runs each thread as a Python thread, so it
# gets two small blocks: still more than one block and more than one stride per thread.
THREADS = 16 if SIMULATOR else 256
MAX_BLOCKS = 2 if SIMULATOR else 4096

# Block size of the reductions (a power of two: the shared-memory tree halves it).
REDUCE_THREADS = 16 if SIMULATOR else 256


def grid(n: int):
    """(blocks, threads) for a grid-stride kernel over ``n`` items."""
    blocks = max(1, min(MAX_BLOCKS, -(-n // THREADS)))
    return blocks, THREADS


def grid_blocks(n_blocks: int) -> int:
    """Blocks for a kernel that loops over ``n_blocks`` independent work items (tiles, channels)."""
    return max(1, min(MAX_BLOCKS, n_blocks))
