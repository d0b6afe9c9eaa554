"""One training epoch: numpy reference, lean NumPy loop, cpp, PyTorch CPU (skipped without torch)."""

import time

import pytest

from mnistfast.bench.cpu import (CNN_BATCH, SETTLE_S, TRAIN_CONFIGS, cnn_epoch_flops, epoch_flops, have_torch,
                             lean_numpy_epoch, mnistfast_cnn_epoch, mnistfast_epoch, torch_cnn_epoch, torch_epoch)

IMPLS = ["numpy reference", "lean numpy", "cpp", "pytorch"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("config", list(TRAIN_CONFIGS))
def test_epoch(benchmark, config, impl, mnist_train, peak_gflops, cpp_backend):
    X, y = mnist_train
    layers, batch = TRAIN_CONFIGS[config]
    if impl == "pytorch":
        if not have_torch():
            pytest.skip("PyTorch is not installed (pip install torch==2.13.0)")
        fn = torch_epoch(X, y, layers, batch, cpp_backend.threads)
    elif impl == "lean numpy":
        fn = lean_numpy_epoch(X, y, layers, batch)
    else:
        fn = mnistfast_epoch(X, y, layers, batch, "numpy" if impl == "numpy reference" else "cpp")
    benchmark.group = f"epoch {config}"
    time.sleep(SETTLE_S)
    benchmark.pedantic(fn, rounds=3, warmup_rounds=1)
    gflops = epoch_flops(layers, len(X)) / benchmark.stats.stats.median / 1e9
    benchmark.extra_info.update(gflops=round(gflops, 1), images_per_s=round(len(X) / benchmark.stats.stats.median),
                                fraction_of_peak=round(gflops / peak_gflops, 3) if peak_gflops else None)


@pytest.mark.parametrize("impl", ["cpp", "pytorch"])
def test_cnn_epoch(benchmark, impl, mnist_train, peak_gflops, cpp_backend):
    """The basic CNN, Adam, batch 128: one epoch on cpp and in PyTorch CPU with the same threads."""
    X, y = mnist_train
    if impl == "pytorch":
        if not have_torch():
            pytest.skip("PyTorch is not installed (pip install torch==2.13.0)")
        fn = torch_cnn_epoch(X, y, CNN_BATCH, cpp_backend.threads)
    else:
        fn = mnistfast_cnn_epoch(X, y, CNN_BATCH, threads=cpp_backend.threads)
    benchmark.group = f"epoch basic CNN batch {CNN_BATCH}"
    time.sleep(SETTLE_S)
    benchmark.pedantic(fn, rounds=3, warmup_rounds=1)
    gflops = cnn_epoch_flops(len(X)) / benchmark.stats.stats.median / 1e9
    benchmark.extra_info.update(gflops=round(gflops, 1), images_per_s=round(len(X) / benchmark.stats.stats.median),
                                fraction_of_peak=round(gflops / peak_gflops, 3) if peak_gflops else None)
