import numpy as np
import pytest

import mnistfast as mf


@pytest.fixture(scope="session")
def ref():
    """The ground truth: the numpy backend in float64."""
    return mf.get_backend("numpy", dtype=np.float64)


@pytest.fixture(scope="session")
def cpp():
    return mf.get_backend("cpp")


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
