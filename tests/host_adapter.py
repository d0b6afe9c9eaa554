"""Runs a device backend's kernels on host NumPy arrays, so the kernel suite written for host
arrays covers it: every array argument is copied to the device, the kernel runs, and every
array argument is copied back into the caller's array (outputs land where the caller expects).
Arrays keep their dtype on the way over, so dtype checks still see the caller's dtype."""

import numpy as np
import pytest

from mnistfast.backends import KERNELS

# What the CUDA simulator runs in a second or so: multiply-adds for the GEMM-shaped kernels,
# elements for the rest. Larger cases skip there (a real GPU runs them all).
SIM_MACS = 60_000
SIM_ELEMENTS = 40_000


def _macs(name, args):
    """Multiply-adds of the GEMM-shaped kernels (None for the others)."""
    if name == "gemm":
        a, b = args[0], args[1]
        k = a.shape[0] if (len(args) > 3 and args[3]) else a.shape[1]
        return a.size * b.size // max(1, k)
    if name == "linear_forward":
        return args[0].size * args[1].shape[1]
    if name == "linear_backward_input":
        return args[0].size * args[1].shape[0]
    if name == "linear_weight_grad":
        return args[0].size * args[1].shape[1]
    if name == "conv2d_forward":
        return args[3].size * args[1].shape[0]
    if name == "conv2d_backward":
        return 2 * args[0].size * args[2].shape[0]
    return None


class HostArrays:
    def __init__(self, backend):
        self.inner = backend
        self.simulator = getattr(backend, "simulator", False)
        self.name = backend.name
        self.dtype = backend.dtype
        for name in KERNELS:
            setattr(self, name, self._wrapped(getattr(backend, name)))

    def _wrapped(self, fn):
        be = self.inner

        def call(*args, **kwargs):
            if self.simulator:
                self._check_budget(fn.__name__, args, kwargs)
            moved = {}

            def dev(v):
                if isinstance(v, np.ndarray):
                    if id(v) not in moved:
                        moved[id(v)] = (v, be.to_device(v, dtype=v.dtype))
                    return moved[id(v)][1]
                return v

            result = fn(*map(dev, args), **{k: dev(v) for k, v in kwargs.items()})
            for host, device in moved.values():
                if host.flags.writeable:
                    host[...] = be.to_host(device)
            for host, device in moved.values():
                if result is device:
                    return host
            return result

        return call

    @staticmethod
    def _check_budget(name, args, kwargs):
        arrays = [v for v in (*args, *kwargs.values()) if isinstance(v, np.ndarray)]
        elements = sum(a.size for a in arrays)
        macs = _macs(name, [a for a in args])
        if elements > SIM_ELEMENTS or (macs is not None and macs > SIM_MACS):
            work = f"{elements} elements" + (f", {macs} multiply-adds" if macs is not None else "")
            pytest.skip(f"{name} on {work} is too large for the CUDA simulator; it runs on a real GPU")

    def __getattr__(self, name):
        return getattr(self.inner, name)
