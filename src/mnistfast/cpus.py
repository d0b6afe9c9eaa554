"""How many CPUs this process may use, the thread counts the C++ kernels accept, and how the
OpenMP threads wait.

A container or a ``taskset`` gives a process fewer CPUs than the machine has: the affinity mask
limits which CPUs it may run on, a cgroup CPU quota (``docker --cpus 1``) how much time it gets
on them. The default thread count honours both, so that a container given one CPU runs one
thread instead of a team that waits on itself at every barrier.

OpenMP threads that reach a barrier first spin before they sleep; libgomp's default spin
(300,000 rounds) is time taken from any other process on the same cores, which then waits for
it at its own barriers: two trainings side by side on two cores ran 3.6-4.5x slower each. While
the C++ extension (and with it libgomp) loads, the package asks for a short spin instead,
unless the user chose a policy (``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``); the measurements
are in docs/performance.md (``python bench/load.py``).
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

THREADS_ENV = "MNISTFAST_NUM_THREADS"
# More threads than this many per CPU of the machine is a typo, not a setting (and thousands of
# threads abort inside the OpenMP runtime).
MAX_THREADS_PER_CPU = 4

_CGROUP_ROOT = Path("/sys/fs/cgroup")

# Spin rounds at an OpenMP barrier before a thread sleeps (libgomp's GOMP_SPINCOUNT).
SPIN_ROUNDS = 1000


# What openmp_settings() set while the runtime loaded (for tests and reports).
APPLIED: dict = {}


@contextlib.contextmanager
def openmp_settings():
    """Ask libgomp for a short spin while it loads, unless the user set a wait policy: libgomp
    reads its variables once, when it starts. The environment is put back afterwards, so that
    other OpenMP runtimes loaded later in the process (PyTorch bundles its own libgomp) and child
    processes keep their defaults. ``mnistfast.backends.cpp_backend`` imports the extension inside."""
    chosen = "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ
    if not chosen:
        os.environ["GOMP_SPINCOUNT"] = str(SPIN_ROUNDS)
        APPLIED["GOMP_SPINCOUNT"] = str(SPIN_ROUNDS)
    try:
        yield
    finally:
        if not chosen:
            os.environ.pop("GOMP_SPINCOUNT", None)


def _affinity_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cgroup_quota_cpus(root: Path = _CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """CPUs' worth of time the cgroup quota allows (cgroup v2 ``cpu.max`` of this process's group
    and its ancestors, or v1 ``cpu.cfs_quota_us``), or None without a quota."""
    limits = []
    try:
        groups = proc_cgroup.read_text().splitlines()
    except OSError:
        groups = []
    for line in groups:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":  # v2: walk from the group up to the root
            group = root / parts[2].lstrip("/")
            while True:
                limits.append(_v2_limit(group / "cpu.max"))
                if group == root or root not in group.parents:
                    break
                group = group.parent
        elif "cpu" in parts[1].split(","):  # v1
            for base in (root / "cpu,cpuacct", root / "cpu"):
                limits.append(_v1_limit(base / parts[2].lstrip("/")))
                limits.append(_v1_limit(base))
    found = [q for q in limits if q is not None]
    return min(found) if found else None


def _v2_limit(path: Path) -> float | None:
    try:
        quota, period = path.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _v1_limit(group: Path) -> float | None:
    try:
        quota = int((group / "cpu.cfs_quota_us").read_text())
        period = int((group / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def usable_cpus() -> int:
    """The CPUs this process may use: its affinity mask, capped by a cgroup CPU quota (rounded up)."""
    n = _affinity_cpus()
    quota = _cgroup_quota_cpus()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


def max_threads() -> int:
    """The largest thread count the C++ kernels accept."""
    return MAX_THREADS_PER_CPU * (os.cpu_count() or 1)


def check_threads(n, source: str = "threads") -> int:
    """``n`` as a thread count, or ValueError naming ``source`` (a flag or variable)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{source} must be a positive integer, got {n!r}")
    if n > max_threads():
        raise ValueError(f"{source} = {n} is more than {MAX_THREADS_PER_CPU} threads per CPU of this machine "
                         f"({os.cpu_count()} CPUs): at most {max_threads()}")
    return n


def chosen_threads() -> int | None:
    """The thread count the environment names: ``MNISTFAST_NUM_THREADS`` (checked: a bad value is
    a ValueError naming it), else ``OMP_NUM_THREADS`` when it starts with a positive integer, else None."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if value:
        try:
            n = int(value)
        except ValueError:
            raise ValueError(f"{THREADS_ENV}={value!r} is not a positive integer") from None
        return check_threads(n, f"{THREADS_ENV}")
    omp = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if omp.isdigit() and int(omp) >= 1:
        return min(int(omp), max_threads())
    return None


def default_threads() -> int:
    """The thread count the environment names (:func:`chosen_threads`), else the usable CPUs."""
    chosen = chosen_threads()
    return usable_cpus() if chosen is None else chosen
