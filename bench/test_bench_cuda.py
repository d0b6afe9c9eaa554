"""The cuda backend on a real GPU: sgemm against cuBLAS, training epochs against PyTorch CUDA.
`mnistfast bench --backend cuda` prints the same comparison as one table."""

import os

import numpy as np
import pytest

import mnistfast as mf
from mnistfast.bench import cuda as bench_cuda
from mnistfast.bench.cpu import CNN_BATCH, CNN_LR, LR, cnn_epoch_flops, epoch_flops, gemm_flops

problem = mf.backends.cuda_status()
pytestmark = pytest.mark.skipif(problem is not None or os.environ.get("NUMBA_ENABLE_CUDASIM") == "1",
                                reason=f"needs a real GPU ({problem or 'the CUDA simulator is on'})")


@pytest.fixture(scope="module")
def cuda_backend():
    return mf.get_backend("cuda")


@pytest.mark.parametrize("impl", ["cuda", "cublas"])
@pytest.mark.parametrize("n", bench_cuda.GEMM_SIZES)
def test_sgemm(benchmark, cuda_backend, impl, n):
    if impl == "cublas":
        lib = bench_cuda.cublas_runner(n, n, n)
        if lib is None:
            pytest.skip("no cuBLAS binding: install cupy or a CUDA build of torch")
        fn = lib[1]
    else:
        fn = bench_cuda.gemm_runner(cuda_backend, n)
    benchmark.group = f"sgemm {n}^3 on the GPU"
    benchmark.pedantic(fn, rounds=10 if n <= 1024 else 3, warmup_rounds=1)
    benchmark.extra_info["tflops"] = round(gemm_flops(n, n, n) / benchmark.stats.stats.median / 1e12, 2)


@pytest.mark.parametrize("impl", ["cuda", "torch"])
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_epoch(benchmark, cuda_backend, mnist_train, impl, model):
    X, y = mnist_train
    if model == "cnn":
        X = np.ascontiguousarray(X.reshape(-1, 1, 28, 28))
    batch = CNN_BATCH if model == "cnn" else bench_cuda.MLP_BATCH
    if impl == "torch":
        if not bench_cuda.have_torch_cuda():
            pytest.skip("PyTorch with CUDA is not installed")
        import torch

        net = bench_cuda.torch_nets()[model == "cnn"]
        opt = torch.optim.Adam(net.parameters(), lr=CNN_LR) if model == "cnn" else torch.optim.SGD(net.parameters(), lr=LR)
        fn = bench_cuda.torch_cuda_epoch(net, opt, X, y, batch)
    elif model == "cnn":
        fn = bench_cuda.mnistfast_epoch(cuda_backend, lambda b: mf.CNN("basic", backend=b), X, y, batch,
                                        lambda: mf.optim.Adam(lr=CNN_LR))
    else:
        fn = bench_cuda.mnistfast_epoch(cuda_backend, lambda b: mf.MLP(backend=b), X, y, batch,
                                        lambda: mf.optim.SGD(lr=LR))
    benchmark.group = f"epoch {model} on the GPU"
    benchmark.pedantic(fn, rounds=3, warmup_rounds=1)
    flops = cnn_epoch_flops(len(X)) if model == "cnn" else epoch_flops(bench_cuda.MLP_LAYERS, len(X))
    benchmark.extra_info["gflops"] = round(flops / benchmark.stats.stats.median / 1e9, 1)
