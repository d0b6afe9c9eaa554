import pytest

import mnistfast as mf
from mnistfast import _core


@pytest.fixture(scope="session")
def peak_gflops():
    return _core.peak_gflops()


@pytest.fixture(scope="session")
def mnist_train():
    (X, y), _ = mf.load_mnist()
    return X, y
