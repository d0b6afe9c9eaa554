"""``mnistfast bench --backend cuda``: the cuda backend against cuBLAS and PyTorch CUDA eager.

Side by side in one run on the GPU: SGEMM at 1024^3 and 4096^3 against cuBLAS (through CuPy or
PyTorch, whichever is installed), one training epoch of 784-128-64-10 (SGD, batch 128) and of the
basic CNN (Adam, batch 128) against the same networks in PyTorch CUDA eager, the host overhead
per training step, and the training time to 99 % test accuracy with the basic CNN's recipe.
Every timing waits for the GPU before the clock stops; medians over interleaved rounds.
"""

from __future__ import annotations

import numpy as np

from .cpu import CNN_BATCH, CNN_LR, LR, cnn_epoch_flops, epoch_flops, gemm_flops, interleaved_medians

GEMM_SIZES = (1024, 4096)
MLP_LAYERS = (784, 128, 64, 10)
MLP_BATCH = 128
TARGET_ACCURACY = 0.99


def cublas_matmul(n: int):
    """(library name, zero-argument callable doing one n^3 sgemm with cuBLAS, synchronised), or None."""
    try:
        import cupy as cp

        a, b = cp.random.standard_normal((n, n), dtype=cp.float32), cp.random.standard_normal((n, n), dtype=cp.float32)
        out = cp.empty((n, n), cp.float32)

        def run():
            cp.matmul(a, b, out=out)
            cp.cuda.runtime.deviceSynchronize()

        return "cupy", run
    except ImportError:
        pass
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        a, b = torch.randn(n, n, device="cuda"), torch.randn(n, n, device="cuda")
        out = torch.empty(n, n, device="cuda")

        def run():
            torch.mm(a, b, out=out)
            torch.cuda.synchronize()

        return "torch", run
    except ImportError:
        return None


def gemm_runner(be, n: int):
    """One n^3 sgemm on the cuda backend, synchronised."""
    rng = np.random.default_rng(0)
    a = be.to_device(rng.standard_normal((n, n), dtype=np.float32))
    b = be.to_device(rng.standard_normal((n, n), dtype=np.float32))
    out = be.empty((n, n))

    def run():
        be.gemm(a, b, out)
        be.synchronize()

    return run


def mnistfast_epoch(be, model_fn, X, y, batch_size, optimizer_fn):
    """One ``fit`` epoch on the cuda backend (fit ends by reading the epoch's metrics: synchronised)."""
    model, opt = model_fn(be), optimizer_fn()
    return lambda: model.fit(X, y, epochs=1, batch_size=batch_size, optimizer=opt, verbose=0).history["time"][0]


def torch_cuda_epoch(net, opt, X, y, batch_size):
    """One shuffled epoch of PyTorch CUDA eager, the data already on the GPU, synchronised."""
    import torch

    loss_fn = torch.nn.CrossEntropyLoss()
    Xd, yd = torch.from_numpy(X).cuda(), torch.from_numpy(y).cuda()
    n = len(X)

    def epoch():
        perm = torch.randperm(n, device="cuda")
        for lo in range(0, n, batch_size):
            idx = perm[lo : lo + batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(net(Xd[idx]), yd[idx]).backward()
            opt.step()
        torch.cuda.synchronize()

    return epoch


def torch_nets():
    """(mlp, cnn) in PyTorch with the architectures of mf.MLP and mf.CNN("basic"), on the GPU."""
    from torch import nn

    mlp = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)).cuda()
    cnn = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Linear(128, 64),
                        nn.ReLU(), nn.Linear(64, 10)).cuda()
    return mlp, cnn


def have_torch_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def host_overhead_per_step(be, X, y, steps: int = 200) -> float:
    """Seconds of host time per training step: an MLP step at batch 8 does almost no GPU work, so
    its wall time is the Python and launch cost of a step."""
    from ..presets import MLP

    model = MLP(list(MLP_LAYERS), backend=be, seed=0)
    n = 8 * steps
    model.fit(X[:n], y[:n], epochs=1, batch_size=8, lr=LR, verbose=0)  # warm-up: buffers, first launches
    t = model.fit(X[:n], y[:n], epochs=1, batch_size=8, lr=LR, verbose=0).history["time"][0]
    return t / steps


def record_step(model, optimizer, X, y, batch_size: int, execute: bool = True, as_target=None) -> list:
    """The kernel launches of one training step of ``model`` (the batch gather included) on the
    first ``batch_size`` rows of ``X``, ``y``, as ``Launch`` records; arguments as for
    ``CudaBackend.record_launches``. The optimizer is bound to the model as ``fit`` binds it."""
    from ..training import BatchSource

    be = model.backend
    X, y, _ = model._fit_data(X, y, None, 0.0)
    optimizer.bind(model.flat_params, model.flat_grads, be)
    source = BatchSource(be, X, y, batch_size, np.random.default_rng(0))
    totals = be.zeros((4,), np.float64)
    with be.record_launches(execute, as_target) as launches:
        for xb, yb, _ in source.epoch(lambda: optimizer.iterations):
            model.train_step(xb, yb, optimizer, totals)
            break
    return launches


def time_to_accuracy(be, X, y, Xt, yt, target=TARGET_ACCURACY):
    """Training seconds until the basic CNN's recipe first reaches ``target`` test accuracy (checked
    after each epoch, outside the clock), or None within the recipe's epochs; and the accuracy."""
    from ..presets import CNN

    model = CNN("basic", backend=be, seed=0)
    kwargs = model.recipe.fit_kwargs()
    epochs, schedule = kwargs.pop("epochs"), kwargs.pop("lr_schedule")
    opt = kwargs.pop("optimizer")
    base_lr = opt.lr
    from ..schedules import make_schedule

    lr_at = make_schedule(schedule, base_lr, epochs)
    spent, acc = 0.0, 0.0
    for epoch in range(epochs):
        opt.lr = lr_at(epoch, 0)
        spent += model.fit(X, y, epochs=1, optimizer=opt, verbose=0, **kwargs).history["time"][0]
        acc = model.evaluate(Xt, yt)["accuracy"]
        if acc >= target:
            return spent, acc
    return None, acc


def run(rounds: int = 5, quick: bool = False, log=print) -> dict:
    from ..backends import get_backend
    from ..data import load_mnist
    from ..optim import SGD, Adam
    from ..presets import CNN, MLP

    be = get_backend("cuda")
    if be.simulator:
        raise RuntimeError("the cuda benchmark needs a real GPU: under NUMBA_ENABLE_CUDASIM the timings mean nothing")
    gpu = be._cuda.get_current_device().name
    gpu = gpu.decode() if isinstance(gpu, bytes) else str(gpu)
    report = {"machine": {"gpu": gpu}, "gemm": [], "train": [], "host_overhead_s_per_step": None,
              "time_to_99": None}
    log(f"mnistfast bench --backend cuda on {gpu}; medians over {rounds} interleaved rounds\n")

    log(f"{'sgemm NN':<12} {'ours ms':>9} {'cuBLAS ms':>10} {'ours TF/s':>10} {'cuBLAS TF/s':>12} {'ours/cuBLAS':>12}")
    for n in GEMM_SIZES[:1] if quick else GEMM_SIZES:
        runners = {"cuda": gemm_runner(be, n)}
        lib = cublas_matmul(n)
        if lib is not None:
            runners["cublas"] = lib[1]
        calls = 20 if n <= 1024 else 5
        med = interleaved_medians(runners, rounds, calls)
        tf = {k: gemm_flops(n, n, n) / v / 1e12 for k, v in med.items()}
        row = {"n": n, "seconds": med, "tflops": tf, "cublas_via": lib[0] if lib else None,
               "fraction_of_cublas": tf["cuda"] / tf["cublas"] if "cublas" in tf else None}
        report["gemm"].append(row)
        cub = (f"{1e3 * med['cublas']:10.3f} {tf['cuda']:10.2f} {tf['cublas']:12.2f} {row['fraction_of_cublas']:11.2f}x"
               if lib else f"{'-':>10} {tf['cuda']:10.2f} {'-':>12} {'-':>12}")
        log(f"{n}^3{'':<{12 - len(str(n)) - 2}} {1e3 * med['cuda']:9.3f} {cub}")
    if not report["gemm"] or report["gemm"][0]["cublas_via"] is None:
        log("(no cuBLAS column: install cupy or a CUDA build of torch)")

    (X, y), (Xt, yt) = load_mnist()
    if quick:
        X, y = X[:10000], y[:10000]
    torch_ok = have_torch_cuda()
    if torch_ok:
        import torch

        t_mlp, t_cnn = torch_nets()
    log(f"\none epoch on {len(X)} images (s)   {'cuda':>8} {'torch cuda':>11}   cuda vs torch   cuda GF/s")
    configs = [
        ("784-128-64-10 SGD batch 128", lambda b: MLP(list(MLP_LAYERS), backend=b, seed=0), MLP_BATCH,
         lambda: SGD(lr=LR), epoch_flops(MLP_LAYERS, len(X)), X,
         (lambda: torch_cuda_epoch(t_mlp, torch.optim.SGD(t_mlp.parameters(), lr=LR), X, y, MLP_BATCH))),
        (f"basic CNN Adam batch {CNN_BATCH}", lambda b: CNN("basic", backend=b, seed=0), CNN_BATCH,
         lambda: Adam(lr=CNN_LR), cnn_epoch_flops(len(X)), X,
         (lambda: torch_cuda_epoch(t_cnn, torch.optim.Adam(t_cnn.parameters(), lr=CNN_LR),
                                   np.ascontiguousarray(X.reshape(-1, 1, 28, 28)), y, CNN_BATCH))),
    ]
    for name, model_fn, batch, opt_fn, flops, Xin, torch_fn in configs:
        runners = {"cuda": mnistfast_epoch(be, model_fn, Xin, y, batch, opt_fn)}
        if torch_ok:
            runners["torch"] = torch_fn()
        med = interleaved_medians(runners, rounds)
        row = {"config": name, "epoch_s": med, "cuda_gflops": flops / med["cuda"] / 1e9,
               "speedup_vs_torch_cuda": med["torch"] / med["cuda"] if "torch" in med else None}
        report["train"].append(row)
        tc = f"{med['torch']:11.3f}" if "torch" in med else f"{'-':>11}"
        vs = f"{row['speedup_vs_torch_cuda']:.2f}x" if row["speedup_vs_torch_cuda"] else "-"
        log(f"{name:<34} {med['cuda']:8.3f} {tc}   {vs:>13}   {row['cuda_gflops']:9.1f}")

    overhead = host_overhead_per_step(be, X, y)
    report["host_overhead_s_per_step"] = overhead
    log(f"\nhost time per training step (MLP, batch 8): {1e6 * overhead:.0f} us")
    if not quick:
        spent, acc = time_to_accuracy(be, X, y, Xt, yt)
        report["time_to_99"] = {"seconds": spent, "test_accuracy": acc, "recipe": "CNN('basic') recipe"}
        log(f"basic CNN recipe to {TARGET_ACCURACY:.0%} test accuracy: "
            + (f"{spent:.2f} s of training (test accuracy {acc:.4f})" if spent else f"not reached ({acc:.4f})"))
    return report
