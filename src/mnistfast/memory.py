"""The memory budget: what a model file, or the work asked of a model, may make the package
allocate.

A small file can describe a model of gigabytes (a 10 KB config naming a 200,000-filter
convolution), and a model's activations grow with the batch: the sizes are computed from the
shapes before anything is allocated and checked against the budget. The budget is
``MNISTFAST_MAX_MEMORY`` (bytes, or with a K/M/G/T suffix) when set, else half of the machine's
physical memory.
"""

from __future__ import annotations

import os

BUDGET_ENV = "MNISTFAST_MAX_MEMORY"
DEFAULT_FRACTION = 0.5
_SUFFIXES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def physical_memory() -> int:
    """Bytes of physical memory (0 where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def parse_size(text: str, what: str = BUDGET_ENV) -> int:
    """``"512M"``, ``"2G"``, ``"1048576"`` -> bytes; ValueError naming ``what`` otherwise."""
    t = str(text).strip().upper().removesuffix("B").removesuffix("I")
    unit = t[-1:] if t[-1:] in _SUFFIXES and t[-1:] else ""
    number = t[: len(t) - len(unit)]
    try:
        value = float(number) * _SUFFIXES[unit]
    except ValueError:
        value = -1.0
    if not 0 < value < 1 << 62:
        raise ValueError(f"{what}={text!r} is not a size (bytes, or a number with K, M, G or T)")
    return int(value)


def budget() -> int:
    """The most bytes the package lets one model or one call ask for."""
    value = os.environ.get(BUDGET_ENV, "").strip()
    if value:
        return parse_size(value)
    total = physical_memory()
    return int(total * DEFAULT_FRACTION) if total else 1 << 62


def describe(nbytes: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{nbytes} bytes"


def check(nbytes: int, what: str) -> None:
    """MemoryError-free refusal: ValueError when ``what`` would need more than the budget."""
    limit = budget()
    if nbytes > limit:
        source = f"set by {BUDGET_ENV}" if os.environ.get(BUDGET_ENV, "").strip() else \
            f"half the physical memory; {BUDGET_ENV} sets another"
        raise ValueError(f"{what} would need {describe(nbytes)}, more than the memory budget of {describe(limit)} "
                         f"({source})")


def rows_within_budget(per_row: int, rows: int, what: str) -> int:
    """How many of ``rows`` (each needing ``per_row`` bytes) fit the budget at once: at least one,
    or ValueError where even one does not."""
    check(per_row, f"{what}, for one sample,")
    return max(1, min(rows, budget() // max(1, per_row)))
