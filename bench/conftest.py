import pytest

import mnistfast as mf
from mnistfast.bench.cpu import steady_allocator

# The baselines allocate every step; give them glibc's large-block reuse from the start, as
# `mnistfast bench` does (see steady_allocator).
steady_allocator()


@pytest.fixture(scope="session")
def cpp_backend():
    return mf.get_backend("cpp")


@pytest.fixture(scope="session")
def peak_gflops(cpp_backend):
    return cpp_backend.peak_gflops()


@pytest.fixture(scope="session")
def mnist_train():
    (X, y), _ = mf.load_mnist()
    return X, y
