import numpy as np
import pytest

import mnistfast as mf

# Every backend the kernel suite covers: each is checked against the float64 numpy reference.
BACKENDS = ["numpy", "cpp"]


@pytest.fixture(scope="session")
def ref():
    """The ground truth: the numpy backend in float64."""
    return mf.get_backend("numpy", dtype=np.float64)


@pytest.fixture(scope="session")
def cpp():
    return mf.get_backend("cpp")


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request):
    """Each backend in float32, in turn."""
    return mf.get_backend(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def mnist():
    return mf.load_mnist()


@pytest.fixture(scope="session")
def mnist_small(mnist):
    """A few thousand real images: enough to show learning on 2 cores in seconds."""
    (X, y), (Xt, yt) = mnist
    return (X[:6000], y[:6000]), (Xt[:2000], yt[:2000])


def uniform(rng, *shape):
    return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)


def f64(*arrays):
    return [None if a is None else np.asarray(a, dtype=np.float64) for a in arrays]
