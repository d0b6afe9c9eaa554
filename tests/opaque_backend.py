"""A backend whose arrays are opaque handles: no __array__, no arithmetic, no indexing.

It runs another backend underneath (the numpy reference by default, or cuda). Model, layer and
optimizer code that did NumPy on a backend array, indexed it or converted it would fail here, as
it would on a GPU, even where the backend underneath would have let it pass (the CUDA
simulator's device arrays are NumPy arrays in disguise).
"""

import numpy as np

from mnistfast.backends import KERNELS, Backend, NumpyBackend


class Opaque:
    __slots__ = ("_a",)
    __array_ufunc__ = None  # NumPy ufuncs refuse it

    def __init__(self, a):
        self._a = a

    @property
    def shape(self):
        return tuple(self._a.shape)

    @property
    def dtype(self):
        return self._a.dtype

    def __array__(self, *args, **kwargs):
        raise TypeError("an opaque backend array was handed to NumPy")

    def __getitem__(self, key):
        raise TypeError("an opaque backend array was indexed outside the backend")

    def __len__(self):
        raise TypeError("len() of an opaque backend array: use .shape")


def _is_inner_array(v):
    return isinstance(v, np.ndarray) or bool(getattr(v, "__cuda_ndarray__", False))


def _unwrap(v):
    return v._a if isinstance(v, Opaque) else v


def _wrap(v):
    return Opaque(v) if _is_inner_array(v) else v


class OpaqueBackend(Backend):
    name = "opaque"

    def __init__(self, inner=None):
        self.inner = NumpyBackend(np.float32) if inner is None else inner
        self.dtype = self.inner.dtype
        self.calls = 0
        for name in KERNELS:
            setattr(self, name, self._wrapped(getattr(self.inner, name)))

    def _wrapped(self, fn):
        def call(*args, **kwargs):
            for v in (*args, *kwargs.values()):
                if _is_inner_array(v):
                    raise TypeError(f"{fn.__name__}: got a bare array where an (opaque) backend array belongs")
            self.calls += 1
            return _wrap(fn(*map(_unwrap, args), **{k: _unwrap(v) for k, v in kwargs.items()}))
        return call

    def empty(self, shape, dtype=None):
        return Opaque(self.inner.empty(shape, dtype))

    def zeros(self, shape, dtype=None):
        return Opaque(self.inner.zeros(shape, dtype))

    def to_device(self, x, dtype=None, copy=True):
        if isinstance(x, Opaque):
            raise TypeError("to_device: already a backend array")
        return Opaque(self.inner.to_device(x, dtype, copy))

    def to_host(self, a):
        if not isinstance(a, Opaque):
            raise TypeError(f"to_host: expected a backend array, got {type(a).__name__}")
        return self.inner.to_host(a._a)

    def copy_from_host(self, dst, x):
        if isinstance(x, Opaque):
            raise TypeError("copy_from_host: the source must be a host array")
        self.inner.copy_from_host(dst._a, x)

    def rows(self, a, lo, hi):
        return Opaque(self.inner.rows(a._a, lo, hi))

    def reshape(self, a, shape):
        return Opaque(self.inner.reshape(a._a, shape))

    def split(self, flat, shapes):
        return [Opaque(v) for v in self.inner.split(flat._a, shapes)]

    def take(self, src, idx, out):
        return Opaque(self.inner.take(src._a, idx._a, out._a))
