"""``mnistfast bench --backend cuda``: the GPU check, the cuda backend against cuBLAS and PyTorch.

One run on the GPU, in sections, the JSON report rewritten after each (a run cut short keeps what
it measured): SGEMM at 1024^3 and 4096^3 and at the real shapes of a training step, against cuBLAS
with TF32 off; one training epoch of 784-128-64-10 (SGD, batch 128) and of the basic CNN (Adam,
batch 128) against the same networks in PyTorch CUDA eager and under
``torch.compile(mode="reduce-overhead")`` (CUDA graphs); each kernel of one basic-CNN step, timed
with CUDA events, and the launches per step; the host time per step; the training time to 99 %
test accuracy with the cnn-fast recipe. Every timing waits for the GPU before the clock stops;
medians over interleaved rounds. ``bench/gpu_check.sh`` runs it after the kernel suite.

Under Numba's CUDA simulator only ``quick`` runs, at tiny sizes and without PyTorch: a check that
every section works, whose timings mean nothing.
"""

from __future__ import annotations

import numpy as np

from ..callbacks import Callback
from .cpu import CNN_BATCH, CNN_LR, LR, cnn_epoch_flops, epoch_flops, gemm_flops, interleaved_medians

GEMM_SIZES = (1024, 4096)
MLP_LAYERS = (784, 128, 64, 10)
MLP_BATCH = 128
TARGET_ACCURACY = 0.99


def cublas_runner(m: int, n: int, k: int, trans_a=False, trans_b=False):
    """(library name, zero-argument callable doing one ``op(a) @ op(b)`` of those sizes with cuBLAS,
    synchronised), or None without a CUDA PyTorch or CuPy. Transposed operands are transposed views,
    as cuBLAS takes them. TF32 stays off (PyTorch's default for matmul; CuPy's without CUPY_TF32)."""
    try:
        import torch

        if torch.cuda.is_available():
            torch.backends.cuda.matmul.allow_tf32 = False
            a = torch.randn(*((k, m) if trans_a else (m, k)), device="cuda")
            b = torch.randn(*((n, k) if trans_b else (k, n)), device="cuda")
            a, b = (a.t() if trans_a else a), (b.t() if trans_b else b)
            out = torch.empty(m, n, device="cuda")

            def run():
                torch.mm(a, b, out=out)
                torch.cuda.synchronize()

            return "torch", run
    except ImportError:
        pass
    try:
        import cupy as cp
    except ImportError:
        return None
    rng = cp.random.default_rng(0)
    a = rng.standard_normal((k, m) if trans_a else (m, k), dtype=cp.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n), dtype=cp.float32)
    a, b = (a.T if trans_a else a), (b.T if trans_b else b)
    out = cp.empty((m, n), cp.float32)

    def run():
        cp.matmul(a, b, out=out)
        cp.cuda.runtime.deviceSynchronize()

    return "cupy", run


def tf32_state() -> str:
    try:
        import torch

        return f"torch.backends.cuda.matmul.allow_tf32 = {torch.backends.cuda.matmul.allow_tf32}"
    except ImportError:
        return "no torch; CuPy without CUPY_TF32 computes in fp32"


def gemm_runner(be, m: int, n: int | None = None, k: int | None = None, trans_a=False, trans_b=False):
    """One ``op(a) @ op(b)`` (m x n x k; square when only ``m`` is given) on the cuda backend,
    synchronised."""
    n, k = n or m, k or m
    rng = np.random.default_rng(0)
    a = be.to_device(rng.standard_normal((k, m) if trans_a else (m, k), dtype=np.float32))
    b = be.to_device(rng.standard_normal((n, k) if trans_b else (k, n), dtype=np.float32))
    out = be.empty((m, n))

    def run():
        be.gemm(a, b, out, trans_a, trans_b)
        be.synchronize()

    return run


def step_gemm_shapes(batch: int) -> list:
    """(what, m, n, k, trans_a, trans_b) of the GEMMs in one training step of the basic CNN and of
    the MLP at ``batch`` images (conv as im2col GEMMs, NHWC)."""
    r1, r2 = batch * 26 * 26, batch * 11 * 11
    return [
        ("conv1 forward", r1, 32, 9, False, False),
        ("conv1 weight grad", 9, 32, r1, True, False),
        ("conv2 forward", r2, 64, 288, False, False),
        ("conv2 weight grad", 288, 64, r2, True, False),
        ("conv2 input grad", r2, 288, 64, False, True),
        ("dense 1600-128 forward", batch, 128, 1600, False, False),
        ("dense 1600-128 weight grad", 1600, 128, batch, True, False),
        ("dense 1600-128 input grad", batch, 1600, 128, False, True),
        ("MLP 784-128 forward", batch, 128, 784, False, False),
        ("MLP 784-128 weight grad", 784, 128, batch, True, False),
    ]


def mnistfast_epoch(be, model_fn, X, y, batch_size, optimizer_fn):
    """One ``fit`` epoch on the cuda backend, the data already on the GPU as PyTorch's is; the
    call returns once the epoch's metrics are read back (the GPU is done). The CLI and the pytest
    bench both time the whole call."""
    model, opt = model_fn(be), optimizer_fn()
    if not model.built:
        model.build(X.shape[1:])
    Xd, yd = be.to_device(X), be.to_device(y)

    def epoch():
        model.fit(Xd, yd, epochs=1, batch_size=batch_size, optimizer=opt, verbose=0)

    return epoch


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


def torch_compiled_epoch(net, opt, X, y, batch_size):
    """``torch_cuda_epoch`` with the network under ``torch.compile(mode="reduce-overhead")``
    (CUDA graphs; the first, warm-up round pays the compilation)."""
    import torch

    return torch_cuda_epoch(torch.compile(net, mode="reduce-overhead"), opt, X, y, batch_size)


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


def host_overhead_per_step(be, X, y, steps: int = 200, model_fn=None) -> float:
    """Seconds of host time per training step: an MLP step at batch 8 does almost no GPU work, so
    its wall time is the Python and launch cost of a step. ``model_fn(be)`` makes the MLP
    (default 784-128-64-10)."""
    from ..presets import MLP

    model = model_fn(be) if model_fn else MLP(list(MLP_LAYERS), backend=be, seed=0)
    n = 8 * steps
    model.fit(X[:n], y[:n], epochs=1, batch_size=8, lr=LR, verbose=0)  # warm-up: buffers, first launches
    t = model.fit(X[:n], y[:n], epochs=1, batch_size=8, lr=LR, verbose=0).history["time"][0]
    return t / steps


def record_step(model, optimizer, X, y, batch_size: int, execute: bool = True, as_target=None,
                timed: bool = False) -> list:
    """The kernel launches of one training step of ``model`` (the batch gather included) on the
    first ``batch_size`` rows of ``X``, ``y``, as ``Launch`` records; arguments as for
    ``CudaBackend.record_launches``. The optimizer is bound to the model as ``fit`` binds it."""
    from ..training import BatchSource

    be = model.backend
    (X, y, on_device), _ = model._fit_data(X, y, None, 0.0)
    optimizer.bind(model.flat_params, model.flat_grads, be)
    source = BatchSource(be, X, y, batch_size, np.random.default_rng(0), on_device=on_device)
    totals = be.zeros((4,), np.float64)
    with be.record_launches(execute, as_target, timed) as launches:
        for xb, yb, _ in source.epoch(lambda: optimizer.iterations):
            model.train_step(xb, yb, optimizer, totals)
            break
    return launches


class StopAtAccuracy(Callback):
    """Stops ``fit`` after the first epoch whose test accuracy reaches ``target``; the test pass
    runs after the epoch's clock has stopped (``History``'s ``time``)."""

    def __init__(self, X, y, target):
        self.X, self.y, self.target, self.accuracy = X, y, target, []

    def on_epoch_end(self, epoch, logs):
        self.accuracy.append(self.model.evaluate(self.X, self.y)["accuracy"])
        if self.accuracy[-1] >= self.target:
            self.model.stop_training = True


def time_to_accuracy(be, X, y, Xt, yt, preset="fast", target=TARGET_ACCURACY):
    """``(training seconds, test accuracy)`` of ``mf.CNN(preset)`` trained by its recipe in one
    ``fit`` (its schedule whole), stopped after the first epoch at ``target`` test accuracy; the
    seconds are None where the recipe ends below it. The data sits on the GPU beforehand."""
    from ..presets import CNN

    model = CNN(preset, backend=be, seed=0)
    stop = StopAtAccuracy(Xt, yt, target)
    kwargs = model.recipe.fit_kwargs()
    kwargs["callbacks"] = [*kwargs.get("callbacks", ()), stop]
    history = model.fit(be.to_device(X.reshape(-1, 1, 28, 28)), be.to_device(y), verbose=0, **kwargs)
    spent = float(np.sum(history.history["time"]))
    return (spent if stop.accuracy[-1] >= target else None), stop.accuracy[-1]


def step_kernel_times(be, model, optimizer, X, y, batch_size) -> list:
    """Each kernel launch of one training step (after a warm-up step), with its GPU time."""
    record_step(model, optimizer, X, y, batch_size)
    return record_step(model, optimizer, X, y, batch_size, timed=True)


def run(rounds: int = 5, quick: bool = False, log=print, out=None, include_torch: bool = True) -> dict:
    """Measure every section and return the report (printed through ``log``; written to ``out``
    after each section when given)."""
    from ..backends import get_backend
    from ..dataset import load_mnist
    from ..optim import SGD, Adam
    from ..layers import Conv2D, Dense, Flatten, MaxPool2D
    from ..model import Sequential
    from ..presets import CNN, MLP
    from .cpu import write_report

    be = get_backend("cuda")
    sim = be.simulator
    if sim and not quick:
        raise RuntimeError("the cuda benchmark needs a real GPU: under NUMBA_ENABLE_CUDASIM only --quick runs "
                           "(tiny sizes, timings meaningless)")
    gpu = "Numba CUDA simulator" if sim else be._cuda.get_current_device().name
    gpu = gpu.decode() if isinstance(gpu, bytes) else str(gpu)
    torch_ok = include_torch and not sim and have_torch_cuda()
    rounds = 1 if sim else rounds
    report = {"machine": {"gpu": gpu, "simulator": sim, "tf32": tf32_state()}, "gemm": [], "step_gemms": [],
              "train": [], "step_kernels": None, "launches_per_step": {}, "host_overhead_s_per_step": None,
              "time_to_99": None}

    def section_done():
        if out is not None:
            write_report(report, out)

    log(f"mnistfast bench --backend cuda on {gpu}; medians over {rounds} interleaved rounds; {tf32_state()}\n")
    report["gemm"] = gemm_table(be, [(f"{n}^3", n, n, n, False, False) for n in
                                     ((16,) if sim else GEMM_SIZES[:1] if quick else GEMM_SIZES)], rounds, log)
    section_done()
    log("")
    shapes = step_gemm_shapes(MLP_BATCH)
    if sim:  # conv1's two GEMMs at batch 1 (the second splits along K): what the simulator runs in seconds
        shapes = step_gemm_shapes(1)[:2]
    report["step_gemms"] = gemm_table(be, shapes, rounds, log)
    section_done()

    (X, y), (Xt, yt) = load_mnist()
    if quick:
        X, y = X[:10000], y[:10000]
    batch = MLP_BATCH
    X_img = np.ascontiguousarray(X.reshape(-1, 1, 28, 28))
    mlp_fn = lambda b: MLP(list(MLP_LAYERS), backend=b, seed=0)  # noqa: E731
    cnn_fn = lambda b: CNN("basic", backend=b, seed=0)  # noqa: E731
    flops = {"mlp": epoch_flops(MLP_LAYERS, len(X)), "cnn": cnn_epoch_flops(len(X))}
    if sim:  # stand-ins small enough for the simulator (7x7 digits, 10x10 images): the code runs
        X, y = X[:48].reshape(-1, 28, 28)[:, ::4, ::4].reshape(-1, 49).copy(), y[:48]
        X_img = X_img[:48, :, 4:24:2, 4:24:2].copy()
        batch = 16
        mlp_fn = lambda b: MLP([49, 16, 10], backend=b, seed=0)  # noqa: E731
        cnn_fn = lambda b: Sequential([Conv2D(4, 3, activation="relu"), MaxPool2D(2), Flatten(), Dense(10)],  # noqa: E731
                                      input_shape=(1, 10, 10), backend=b, seed=0)
        flops = {"mlp": None, "cnn": None}
        report["machine"]["stand_in_models"] = "MLP 49-16-10 on 7x7 digits, conv 4 3x3 + pool + dense on 10x10"
    names = ("MLP stand-in SGD", "CNN stand-in Adam") if sim else ("784-128-64-10 SGD", "basic CNN Adam")
    configs = [(names[0], mlp_fn, lambda: SGD(lr=LR), flops["mlp"], X, 0, "sgd"),
               (names[1], cnn_fn, lambda: Adam(lr=CNN_LR), flops["cnn"], X_img, 1, "adam")]
    report["train"] = epoch_table(be, configs, y, batch, rounds, torch_ok, log)
    section_done()

    launches = step_kernel_times(be, cnn_fn(be), Adam(lr=CNN_LR), X_img, y, batch)
    report["step_kernels"] = [{"kernel": r.kernel, "blocks": r.blocks, "threads": r.threads,
                               "us": 1e6 * r.seconds} for r in launches]
    mlp_launches = record_step(mlp_fn(be), SGD(lr=LR), X, y, batch)
    report["launches_per_step"] = {"basic CNN": len(launches), "MLP": len(mlp_launches)}
    total = sum(r.seconds for r in launches)
    log(f"\none {names[1].rsplit(' ', 1)[0]} step at batch {batch}: {len(launches)} launches, {1e6 * total:.0f} us of kernels "
        f"(MLP step: {len(mlp_launches)} launches)")
    for r in sorted(launches, key=lambda r: -r.seconds)[:12]:
        log(f"  {r.kernel:<28} {r.blocks:>6} blocks x {r.threads:<4} {1e6 * r.seconds:9.1f} us")
    section_done()

    overhead = host_overhead_per_step(be, X, y, steps=4 if sim else 200, model_fn=mlp_fn)
    report["host_overhead_s_per_step"] = overhead
    log(f"\nhost time per training step (MLP, batch 8): {1e6 * overhead:.0f} us")
    section_done()
    if not quick:
        spent, acc = time_to_accuracy(be, X, y, Xt, yt)
        report["time_to_99"] = {"seconds": spent, "test_accuracy": acc, "recipe": "cnn-fast"}
        log(f"cnn-fast recipe to {TARGET_ACCURACY:.0%} test accuracy: "
            + (f"{spent:.2f} s of training (test accuracy {acc:.4f})" if spent else f"not reached ({acc:.4f})"))
        section_done()
    return report


def gemm_table(be, shapes, rounds, log) -> list:
    """Our SGEMM against cuBLAS on each (what, m, n, k, trans_a, trans_b); printed and returned."""
    log(f"{'sgemm':<28} {'m x n x k':>22} {'ours us':>10} {'cuBLAS us':>10} {'ours TF/s':>10} {'ours/cuBLAS':>12}")
    rows = []
    for what, m, n, k, ta, tb in shapes:
        runners = {"cuda": gemm_runner(be, m, n, k, ta, tb)}
        lib = cublas_runner(m, n, k, ta, tb)
        if lib is not None:
            runners["cublas"] = lib[1]
        calls = 1 if be.simulator else 3 if m * n * k > 2**33 else 20
        med = interleaved_medians(runners, rounds, calls)
        tf = {key: gemm_flops(m, n, k) / v / 1e12 for key, v in med.items()}
        ratio = med["cublas"] / med["cuda"] if "cublas" in med else None
        rows.append({"what": what, "m": m, "n": n, "k": k, "trans_a": ta, "trans_b": tb, "seconds": med,
                     "tflops": tf, "cublas_via": lib[0] if lib else None, "fraction_of_cublas": ratio})
        cub = f"{1e6 * med['cublas']:10.1f}" if lib else f"{'-':>10}"
        log(f"{what:<28} {f'{m}x{n}x{k}':>22} {1e6 * med['cuda']:10.1f} {cub} {tf['cuda']:10.2f} "
            f"{f'{ratio:.2f}x' if ratio else '-':>12}")
    return rows


def epoch_table(be, configs, y, batch, rounds, torch_ok, log) -> list:
    """One epoch of each (name, model_fn, optimizer_fn, flops, X, torch net index, torch optimizer):
    cuda against PyTorch eager and compiled."""
    if torch_ok:
        import torch

        torch_opts = {"sgd": lambda p: torch.optim.SGD(p, lr=LR), "adam": lambda p: torch.optim.Adam(p, lr=CNN_LR)}
    log(f"\none epoch (s)                      {'cuda':>8} {'eager':>8} {'compiled':>9}   vs eager  vs compiled")
    rows = []
    for name, model_fn, opt_fn, flops, Xin, which, opt_name in configs:
        runners = {"cuda": mnistfast_epoch(be, model_fn, Xin, y, batch, opt_fn)}
        if torch_ok:
            eager, compiled = torch_nets()[which], torch_nets()[which]
            runners["eager"] = torch_cuda_epoch(eager, torch_opts[opt_name](eager.parameters()), Xin, y, batch)
            runners["compiled"] = torch_compiled_epoch(compiled, torch_opts[opt_name](compiled.parameters()), Xin, y,
                                                       batch)
        med = interleaved_medians(runners, rounds)
        row = {"config": f"{name} batch {batch} on {len(Xin)} images", "epoch_s": med,
               "cuda_gflops": flops / med["cuda"] / 1e9 if flops else None,
               "speedup_vs_eager": med["eager"] / med["cuda"] if "eager" in med else None,
               "speedup_vs_compiled": med["compiled"] / med["cuda"] if "compiled" in med else None}
        rows.append(row)
        cells = " ".join(f"{med[k]:8.3f}" if k in med else f"{'-':>8}" for k in ("eager", "compiled"))
        vs = " ".join(f"{row[k]:9.2f}x" if row[k] else f"{'-':>10}" for k in ("speedup_vs_eager", "speedup_vs_compiled"))
        log(f"{row['config']:<32} {med['cuda']:8.3f} {cells}   {vs}")
    return rows
