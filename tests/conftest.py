import gzip
import os
import shutil
import sys

import numpy as np
import pytest


def _has_nvidia_gpu() -> bool:
    return os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi") is not None


# Without a GPU the cuda backend runs in Numba's CUDA simulator, which must be switched on before
# anything imports Numba. The simulator runs each CUDA thread as a Python thread that waits at
# every barrier: a short switch interval keeps them from idling 5 ms per barrier.
if "NUMBA_ENABLE_CUDASIM" not in os.environ and not _has_nvidia_gpu():
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    sys.setswitchinterval(1e-4)

import mnistfast as mf  # noqa: E402
from mnistfast.data import MNIST_FILES, bundled_mnist_dir, read_idx  # noqa: E402
from host_adapter import HostArrays  # noqa: E402

CUDA_PROBLEM = mf.backends.cuda_status()
CUDA_SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"

# Every backend the kernel suite covers: each is checked against the float64 numpy reference.
# MNISTFAST_TEST_BACKENDS=numpy,cpp narrows it (the sanitizer run in .ci/run leaves cuda out).
BACKENDS = ["numpy", "cpp"] + ([] if CUDA_PROBLEM else ["cuda"])
if os.environ.get("MNISTFAST_TEST_BACKENDS"):
    BACKENDS = [b for b in BACKENDS if b in os.environ["MNISTFAST_TEST_BACKENDS"].split(",")]
needs_cuda = pytest.mark.skipif(CUDA_PROBLEM is not None, reason=f"cuda backend unavailable: {CUDA_PROBLEM}")


def make_backend(name):
    """A backend whose kernels take host arrays (a device backend is wrapped in HostArrays)."""
    be = mf.get_backend(name)
    return HostArrays(be) if name == "cuda" else be


@pytest.fixture(scope="session")
def ref():
    """The ground truth: the numpy backend in float64."""
    return mf.get_backend("numpy", dtype=np.float64)


@pytest.fixture(scope="session")
def cpp():
    return mf.get_backend("cpp")


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request):
    """Each backend in float32, in turn; kernels take host arrays."""
    return make_backend(request.param)


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


@pytest.fixture(scope="session")
def small_mnist_dir(tmp_path_factory):
    """The first 3000 / 500 real images, written as a standard IDX directory."""
    d = tmp_path_factory.mktemp("mnist_small")
    for key, (stem, _) in MNIST_FILES.items():
        arr = read_idx(bundled_mnist_dir() / (stem + ".gz"))[: 3000 if key.startswith("train") else 500]
        magic = 2051 if arr.ndim == 3 else 2049
        header = np.array([magic, *arr.shape], dtype=">u4").tobytes()
        (d / (stem + ".gz")).write_bytes(gzip.compress(header + arr.tobytes()))
    return d
