"""A backend whose arrays are opaque handles: no __array__, no arithmetic, no indexing.

It runs the numpy reference underneath. Model, layer and optimizer code that did NumPy on a
backend array, indexed it or converted it would fail here, as it would on a GPU backend whose
arrays live in device memory.
"""

import numpy as np

from mnistfast.backends import KERNELS, NumpyBackend


class Opaque:
    __slots__ = ("_a",)
    __array_ufunc__ = None  # NumPy ufuncs refuse it

    def __init__(self, a):
        self._a = a

    @property
    def shape(self):
        return self._a.shape

    def __array__(self, *args, **kwargs):
        raise TypeError("an opaque backend array was handed to NumPy")

    def __getitem__(self, key):
        raise TypeError("an opaque backend array was indexed outside the backend")

    def __len__(self):
        raise TypeError("len() of an opaque backend array: use .shape")


def _unwrap(v):
    return v._a if isinstance(v, Opaque) else v


def _wrap(v):
    return Opaque(v) if isinstance(v, np.ndarray) else v


class OpaqueBackend(NumpyBackend):
    name = "opaque"

    def __init__(self):
        super().__init__(np.float32)
        self.calls = 0
        ref = NumpyBackend(np.float32)
        for name in KERNELS:
            setattr(self, name, self._wrapped(getattr(ref, name)))

    def _wrapped(self, fn):
        def call(*args, **kwargs):
            for v in (*args, *kwargs.values()):
                if isinstance(v, np.ndarray):
                    raise TypeError(f"{fn.__name__}: got a host array where a backend array belongs")
            self.calls += 1
            return _wrap(fn(*map(_unwrap, args), **{k: _unwrap(v) for k, v in kwargs.items()}))
        return call

    def empty(self, shape, dtype=None):
        return Opaque(super().empty(shape, dtype))

    def zeros(self, shape, dtype=None):
        return Opaque(super().zeros(shape, dtype))

    def to_device(self, x, dtype=None):
        if isinstance(x, Opaque):
            raise TypeError("to_device: already a backend array")
        return Opaque(super().to_device(x, dtype))

    def to_host(self, a):
        if not isinstance(a, Opaque):
            raise TypeError(f"to_host: expected a backend array, got {type(a).__name__}")
        return super().to_host(a._a)

    def copy_from_host(self, dst, x):
        if isinstance(x, Opaque):
            raise TypeError("copy_from_host: the source must be a host array")
        super().copy_from_host(dst._a, x)

    def rows(self, a, lo, hi):
        return Opaque(super().rows(a._a, lo, hi))

    def reshape(self, a, shape):
        return Opaque(super().reshape(a._a, shape))

    def split(self, flat, shapes):
        return [Opaque(v) for v in super().split(flat._a, shapes)]

    def take(self, src, idx, out):
        return Opaque(super().take(src._a, idx._a, out._a))
