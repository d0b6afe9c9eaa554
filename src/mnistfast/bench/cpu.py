"""Benchmark workloads and the ``mnistfast bench`` comparison table.

The same workloads serve ``bench/`` (pytest-benchmark) and the CLI: sgemm at the MLP's training
shapes and at large squares, and one training epoch of an MLP by four implementations - the
mnistfast numpy reference and cpp backends, a lean hand-written NumPy loop, and PyTorch CPU
(where installed) - with the same layers, batch size, learning rate and thread count.

Timings are medians over rounds; within a round every implementation runs once, in turn, so
they share the machine's noise and the ratios are taken side by side.
"""

from __future__ import annotations

import math
import platform
import time

import numpy as np

# name: (M, N, K, trans_a, trans_b) - where each one occurs in training.
GEMM_SHAPES = {
    "NN 128x128x784 (784-128 layer forward)": (128, 128, 784, False, False),
    "TN 784x128x128 (784-128 weight grad)": (784, 128, 128, True, False),
    "NT 128x784x128 (grad into a 784-wide layer)": (128, 784, 128, False, True),
    "NT 128x128x64 (128-64 input grad)": (128, 128, 64, False, True),
    "NN 128x1024x784 (784-1024 layer forward)": (128, 1024, 784, False, False),
    "TN 784x1024x128 (784-1024 weight grad)": (784, 1024, 128, True, False),
    "NN 1024x1024x1024": (1024, 1024, 1024, False, False),
    "NN 2048x2048x2048": (2048, 2048, 2048, False, False),
}

# name: (layers, batch size)
TRAIN_CONFIGS = {
    "784-128-64-10 batch 128": ((784, 128, 64, 10), 128),
    "784-128-64-10 batch 32": ((784, 128, 64, 10), 32),
    "784-1024-10 batch 128": ((784, 1024, 10), 128),
}

CNN_BATCH = 128
LR = 0.05  # small enough that no configuration diverges while it is being timed


def gemm_flops(M, N, K) -> float:
    return 2.0 * M * N * K


def epoch_flops(layers, n_samples: int) -> float:
    """Forward, weight gradients and input gradients (all but the first layer's)."""
    macs = sum(a * b for a, b in zip(layers[:-1], layers[1:]))
    first = layers[0] * layers[1]
    return 2.0 * n_samples * (3 * macs - first)


# -- sgemm ------------------------------------------------------------------------------------
def gemm_operands(M, N, K, trans_a, trans_b, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((K, M) if trans_a else (M, K), dtype=np.float32)
    b = rng.standard_normal((N, K) if trans_b else (K, N), dtype=np.float32)
    return a, b, np.empty((M, N), np.float32)


def gemm_runner(impl: str, M, N, K, trans_a, trans_b, threads=None):
    """A zero-argument callable doing one sgemm with ``impl`` ('numpy' = OpenBLAS via matmul, 'cpp')."""
    a, b, out = gemm_operands(M, N, K, trans_a, trans_b)
    if impl == "numpy":
        A, B = (a.T if trans_a else a), (b.T if trans_b else b)  # views: BLAS sees the transpose flag
        return lambda: np.matmul(A, B, out=out)
    if impl == "cpp":
        from ..backends import CppBackend

        be = CppBackend(threads=threads)
        return lambda: be.gemm(a, b, out, trans_a, trans_b)
    raise ValueError(f"unknown gemm implementation {impl!r}")


# -- one epoch of training --------------------------------------------------------------------
def lean_numpy_epoch(X, y, layers, batch_size, lr=LR, seed=0):
    """A minimal hand-written NumPy MLP training loop: the baseline a user would write."""
    rng = np.random.default_rng(seed)
    Ws = [(rng.standard_normal((i, o)) * math.sqrt(2.0 / i)).astype(np.float32) for i, o in zip(layers[:-1], layers[1:])]
    bs = [np.zeros(o, np.float32) for o in layers[1:]]
    lr32 = np.float32(lr)
    n = len(X)

    def epoch():
        perm = rng.permutation(n)
        for lo in range(0, n, batch_size):
            idx = perm[lo : lo + batch_size]
            h, yb = X[idx], y[idx]
            acts = [h]
            for W, b in zip(Ws[:-1], bs[:-1]):
                h = h @ W
                h += b
                np.maximum(h, 0, out=h)
                acts.append(h)
            z = h @ Ws[-1]
            z += bs[-1]
            z -= z.max(axis=1, keepdims=True)
            np.exp(z, out=z)
            z /= z.sum(axis=1, keepdims=True)
            z[np.arange(len(yb)), yb] -= 1.0
            dz = z / np.float32(len(yb))
            for i in range(len(Ws) - 1, -1, -1):
                dW, db = acts[i].T @ dz, dz.sum(axis=0)
                if i:
                    dz = dz @ Ws[i].T
                    dz *= acts[i] > 0
                Ws[i] -= lr32 * dW
                bs[i] -= lr32 * db

    return epoch


def _backend(name, threads):
    from ..backends import get_backend

    return get_backend(name, **({"threads": threads} if name == "cpp" else {}))


def mnistfast_epoch(X, y, layers, batch_size, backend, lr=LR, seed=0, threads=None):
    """One ``fit`` epoch; returns the epoch's own time (input validation, once per fit, excluded)."""
    from ..presets import MLP

    model = MLP(layers, backend=_backend(backend, threads), seed=seed)
    return lambda: model.fit(X, y, epochs=1, batch_size=batch_size, lr=lr, verbose=0).history["time"][0]


# -- the basic CNN ------------------------------------------------------------------------------
CNN_LR = 1e-3


def cnn_epoch_flops(n_samples: int) -> float:
    """The basic CNN: forward, weight gradients, input gradients (all but the first layer's)."""
    conv1 = 26 * 26 * 32 * 9
    conv2 = 11 * 11 * 64 * 288
    dense = 1600 * 128 + 128 * 64 + 64 * 10
    return 2.0 * n_samples * (2 * conv1 + 3 * conv2 + 3 * dense)


# The basic CNN's convolutions at batch 128: (name, N, H, W, C, F, conv_algorithm, pooled); 3x3
# kernels, stride 1, valid. conv1 takes the direct single-channel kernel; conv2 is timed by both
# algorithms, then as the model runs it, fused with the 2x2 max pool after it (conv1 too runs fused
# in the model). GFLOP/s count the direct convolution's multiply-adds for the whole map, so a
# Winograd or pooled row can pass the FMA peak.
CONV_LAYERS = [("conv1 1->32 on 28x28 (direct)", 128, 28, 28, 1, 32, "auto", False),
               ("conv2 32->64 on 13x13 (im2col + GEMM)", 128, 13, 13, 32, 64, "im2col", False),
               ("conv2 32->64 on 13x13 (Winograd F(2x2,3x3))", 128, 13, 13, 32, 64, "winograd", False),
               ("conv2 + max pool 2x2 (Winograd, fused)", 128, 13, 13, 32, 64, "auto", True)]


def conv_runners(be, N, H, W, C, F, seed=0, pooled=False):
    """(forward, backward) callables for one conv layer on backend ``be``; backward computes dw,
    db and, except for the first layer (C == 1), dx. ``pooled``: the conv2d_maxpool_* pair with a
    2x2 pool and ReLU, as a Conv2D followed by MaxPool2D runs."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, H, W, C), dtype=np.float32)
    w = rng.standard_normal((9 * C, F), dtype=np.float32)
    b, dw, db = np.zeros(F, np.float32), np.empty((9 * C, F), np.float32), np.empty(F, np.float32)
    out = np.empty((N, H - 2, W - 2, F), np.float32)
    dy = rng.standard_normal(out.shape, dtype=np.float32)
    dx = None if C == 1 else np.empty_like(x)
    geom = ((3, 3), (1, 1), (0, 0))
    if pooled:
        conv_hw = out.shape[1:3]
        shape = (N, conv_hw[0] // 2, conv_hw[1] // 2, F)
        pout, arg = np.empty(shape, np.float32), np.empty(shape, np.int32)
        pdy = rng.standard_normal(shape, dtype=np.float32)
        be.conv2d_maxpool_forward(x, w, b, pout, arg, *geom, conv_hw, 2, True)  # a valid argmax for backward
        return (lambda: be.conv2d_maxpool_forward(x, w, b, pout, arg, *geom, conv_hw, 2, True),
                lambda: be.conv2d_maxpool_backward(pdy, arg, pout, x, w, dw, db, *geom, conv_hw, 2, True, dx))
    return (lambda: be.conv2d_forward(x, w, b, out, *geom, relu=True),
            lambda: be.conv2d_backward(dy, x, w, dw, db, dx, *geom))


def conv_flops(N, H, W, C, F, backward=False, with_dx=True):
    macs = N * (H - 2) * (W - 2) * F * 9 * C
    return 2.0 * macs * ((2 if with_dx else 1) if backward else 1)


def mnistfast_cnn_epoch(X, y, batch_size, backend="cpp", seed=0, threads=None, precision="fp32"):
    """One epoch of ``mf.CNN("basic")`` with Adam in ``precision``; returns the epoch's own time."""
    from ..optim import Adam
    from ..presets import CNN

    model = CNN("basic", backend=_backend(backend, threads), seed=seed)
    opt = Adam(lr=CNN_LR)
    return lambda: model.fit(X, y, epochs=1, batch_size=batch_size, optimizer=opt, verbose=0,
                             precision=precision).history["time"][0]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), for the report: figures hold for one CPU only."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bf16_hardware(threads=None) -> str | None:
    """The cpp backend's bf16 GEMM kernel where the CPU has bf16 instructions, else None: the
    bench's bf16 contenders run only there (emulation would time the emulation)."""
    from ..backends import CppBackend

    be = CppBackend(threads=threads)
    return be.bf16_kernel if be.bf16_support == "hardware" else None


def torch_cnn_epoch(X, y, batch_size, threads, seed=0):
    """The same CNN in PyTorch CPU (NCHW, Conv2d/ReLU/MaxPool2d/Linear, Adam), the same batches."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Linear(128, 64),
                          nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=CNN_LR)
    return _torch_epoch(model, opt, np.ascontiguousarray(X.reshape(-1, 1, 28, 28)), y, batch_size)


def _torch_epoch(model, opt, X, y, batch_size):
    """One shuffled epoch of PyTorch training with cross-entropy, as a zero-argument callable."""
    import torch

    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    n = len(X)

    def epoch():
        perm = torch.randperm(n)
        for lo in range(0, n, batch_size):
            idx = perm[lo : lo + batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(Xt[idx]), yt[idx]).backward()
            opt.step()

    return epoch


def torch_epoch(X, y, layers, batch_size, threads, lr=LR, seed=0):
    """The same MLP in PyTorch CPU: nn.Linear/ReLU, CrossEntropyLoss, SGD."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    mods = []
    for i, (a, b) in enumerate(zip(layers[:-1], layers[1:])):
        mods.append(torch.nn.Linear(a, b))
        if i < len(layers) - 2:
            mods.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*mods)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    return _torch_epoch(model, opt, X, y, batch_size)


def have_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def epoch_runners(X, y, layers, batch_size, threads, include_torch=True):
    runners = {
        "numpy reference": mnistfast_epoch(X, y, layers, batch_size, "numpy"),
        "lean numpy": lean_numpy_epoch(X, y, layers, batch_size),
        "cpp": mnistfast_epoch(X, y, layers, batch_size, "cpp", threads=threads),
    }
    if include_torch and have_torch():
        runners["pytorch"] = torch_epoch(X, y, layers, batch_size, threads)
    return runners


# -- timing and the table -----------------------------------------------------------------------
def _timed(fn) -> float:
    t0 = time.perf_counter()
    r = fn()
    dt = time.perf_counter() - t0
    return r if isinstance(r, float) else dt


# OpenBLAS keeps its threads spinning for about 2**28 cycles (~0.1 s) after a call, and OpenMP
# runtimes spin too: on 2 cores, whatever runs next shares them with those spinners. Every
# block of calls therefore starts after this pause, once the previous runtime has gone idle.
SETTLE_S = 0.25


# glibc serves each block of 128 KiB or more with a fresh mmap, paid in page faults when first
# written, until freeing a large block raises that threshold (up to 32 MiB). PyTorch and NumPy
# allocate their activations every step, so their speed depended on what had run before in the
# process: PyTorch's basic-CNN epoch took 14.7 s from a fresh start and 10.9 s after large frees,
# on the same machine. mnistfast allocates once per fit and is not affected. The bench fixes the
# threshold at its ceiling before measuring, so the baselines always run at their faster speed.
_MMAP_THRESHOLD = 32 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)


def steady_allocator() -> bool:
    """Fix glibc's mmap threshold (see above); False where there is no glibc (nothing to fix)."""
    import ctypes
    import ctypes.util

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD))


def interleaved_medians(runners: dict, rounds: int, calls: int = 1, warmup: int = 1) -> dict:
    """Median seconds per call of each runner. Rounds take the runners in turn; in a round each
    runner makes ``calls`` calls in a row after a settling pause."""
    times = {k: [] for k in runners}
    for r in range(warmup + rounds):
        for k, fn in runners.items():
            time.sleep(SETTLE_S)
            block = [_timed(fn) for _ in range(calls)]
            if r >= warmup:
                times[k] += block
    return {k: float(np.median(v)) for k, v in times.items()}


def run(rounds: int = 5, gemm_rounds: int = 30, threads: int | None = None, include_torch: bool = True,
        quick: bool = False, log=print) -> dict:
    """Measure everything and return the report (also printed through ``log``)."""
    from ..backends import CppBackend
    from ..dataset import load_mnist

    steady_allocator()
    be = CppBackend(threads=threads)
    threads = be.threads
    peak = be.peak_gflops()
    report = {
        "machine": {"processor": platform.processor() or platform.machine(), "cpu_model": cpu_model(),
                    "threads": threads,
                    "measured_peak_gflops": peak, "gemm_kernel": be.gemm_kernel,
                    "numpy": np.__version__},
        "gemm": [], "train": [], "conv": [], "cnn": [],
    }
    pk = f"{peak:.0f} GFLOP/s measured FMA peak" if peak else "no FMA peak measured (generic kernel)"
    log(f"mnistfast bench: {threads} threads, gemm kernel {be.gemm_kernel}, {pk}")
    log(f"medians over {rounds} interleaved rounds ({gemm_rounds} sgemm calls or 1 epoch per round)\n")

    log(f"{'sgemm':<46} {'numpy ms':>9} {'cpp ms':>9} {'cpp/numpy':>9} {'cpp GF/s':>9} {'% peak':>7}")
    shapes = dict(list(GEMM_SHAPES.items())[:4]) if quick else GEMM_SHAPES
    for name, (M, N, K, ta, tb) in shapes.items():
        calls = max(3, gemm_rounds if M * N * K < 1e8 else gemm_rounds // 10)
        med = interleaved_medians({impl: gemm_runner(impl, M, N, K, ta, tb, threads) for impl in ("numpy", "cpp")},
                                  rounds, calls)
        gf = gemm_flops(M, N, K) / med["cpp"] / 1e9
        row = {"shape": name, "M": M, "N": N, "K": K, "trans_a": ta, "trans_b": tb,
               "numpy_s": med["numpy"], "cpp_s": med["cpp"], "speedup_vs_numpy": med["numpy"] / med["cpp"],
               "cpp_gflops": gf, "numpy_gflops": gemm_flops(M, N, K) / med["numpy"] / 1e9,
               "cpp_fraction_of_peak": gf / peak if peak else None}
        report["gemm"].append(row)
        pct = f"{100 * gf / peak:6.0f}%" if peak else "      -"
        log(f"{name:<46} {1e3 * med['numpy']:9.3f} {1e3 * med['cpp']:9.3f} {row['speedup_vs_numpy']:8.2f}x "
            f"{gf:9.1f} {pct}")

    (X, y), _ = load_mnist()
    if quick:
        X, y = X[:10000], y[:10000]
    log(f"\none epoch on {len(X)} images (s)       " + " ".join(f"{k:>15}" for k in
        ["numpy reference", "lean numpy", "cpp", "pytorch"]) + "   cpp vs lean / torch   cpp GF/s  % peak")
    for name, (layers, batch) in TRAIN_CONFIGS.items():
        med = interleaved_medians(epoch_runners(X, y, layers, batch, threads, include_torch), rounds)
        flops = epoch_flops(layers, len(X))
        row = {"config": name, "layers": list(layers), "batch_size": batch, "epoch_s": med,
               "epoch_gflop": flops / 1e9, "cpp_gflops": flops / med["cpp"] / 1e9,
               "flop_limit_s": flops / (peak * 1e9) if peak else None,
               "speedup_vs_lean_numpy": med["lean numpy"] / med["cpp"],
               "speedup_vs_pytorch": med["pytorch"] / med["cpp"] if "pytorch" in med else None}
        report["train"].append(row)
        cells = " ".join(f"{med[k]:15.3f}" if k in med else f"{'-':>15}"
                         for k in ["numpy reference", "lean numpy", "cpp", "pytorch"])
        vs_torch = f"{row['speedup_vs_pytorch']:.2f}x" if row["speedup_vs_pytorch"] else "-"
        pct = f"{100 * row['cpp_gflops'] / peak:6.0f}%" if peak else "-"
        log(f"{name:<37} {cells}   {row['speedup_vs_lean_numpy']:5.2f}x / {vs_torch:<6} {row['cpp_gflops']:9.1f} {pct}")

    log(f"\n{'conv layer (batch 128, 3x3, NHWC)':<56} {'fwd ms':>7} {'GF/s':>6} {'% peak':>6}"
        f" {'bwd ms':>7} {'GF/s':>6} {'% peak':>6}")
    for name, N, H, W, C, F, algorithm, pooled in CONV_LAYERS:
        fwd, bwd = conv_runners(CppBackend(threads=threads, conv_algorithm=algorithm), N, H, W, C, F, pooled=pooled)
        med = interleaved_medians({"fwd": fwd, "bwd": bwd}, rounds, calls=10)
        gf_f = conv_flops(N, H, W, C, F) / med["fwd"] / 1e9
        gf_b = conv_flops(N, H, W, C, F, backward=True, with_dx=C > 1) / med["bwd"] / 1e9
        report["conv"].append({"layer": name, "forward_s": med["fwd"], "backward_s": med["bwd"],
                               "forward_gflops": gf_f, "backward_gflops": gf_b})
        pf = f"{100 * gf_f / peak:5.0f}%" if peak else "     -"
        pb = f"{100 * gf_b / peak:5.0f}%" if peak else "     -"
        log(f"{name + (' (bwd: dw, db)' if C == 1 else ' (bwd: dw, db, dx)'):<56} {1e3 * med['fwd']:7.2f} "
            f"{gf_f:6.1f} {pf} {1e3 * med['bwd']:7.2f} {gf_b:6.1f} {pb}")

    # The basic CNN: cpp against PyTorch (the numpy reference takes minutes per epoch here).
    flops = cnn_epoch_flops(len(X))
    bf16 = bf16_hardware(threads)
    report["machine"]["bf16_kernel"] = bf16
    log(f"\nbasic CNN, Adam, batch {CNN_BATCH}: one epoch (s)   {'cpp':>8} {'cpp bf16':>8} {'pytorch':>8}   "
        f"cpp vs torch   bf16 vs fp32   cpp GF/s  % peak")
    runners = {"cpp": mnistfast_cnn_epoch(X, y, CNN_BATCH, threads=threads)}
    if bf16:
        runners["cpp bf16"] = mnistfast_cnn_epoch(X, y, CNN_BATCH, threads=threads, precision="bf16")
    if include_torch and have_torch():
        runners["pytorch"] = torch_cnn_epoch(X, y, CNN_BATCH, threads)
    med = interleaved_medians(runners, max(1, rounds // 2))
    gf = flops / med["cpp"] / 1e9
    row = {"config": f"basic CNN batch {CNN_BATCH}", "epoch_s": med, "epoch_gflop": flops / 1e9, "cpp_gflops": gf,
           "flop_limit_s": flops / (peak * 1e9) if peak else None,
           "speedup_vs_pytorch": med["pytorch"] / med["cpp"] if "pytorch" in med else None,
           "bf16_speedup_vs_fp32": med["cpp"] / med["cpp bf16"] if "cpp bf16" in med else None}
    report["cnn"].append(row)
    cell = {k: f"{med[k]:8.2f}" if k in med else f"{'-':>8}" for k in ("cpp bf16", "pytorch")}
    vs = f"{row['speedup_vs_pytorch']:.2f}x" if row["speedup_vs_pytorch"] else "-"
    vs_bf16 = f"{row['bf16_speedup_vs_fp32']:.2f}x" if bf16 else "- (no bf16 instructions)"
    pct = f"{100 * gf / peak:6.0f}%" if peak else "-"
    log(f"{'':<40} {med['cpp']:8.2f} {cell['cpp bf16']} {cell['pytorch']}   {vs:>12}   {vs_bf16:>12}   {gf:8.1f} {pct}")
    if include_torch and not have_torch():
        log("(pytorch column empty: torch is not installed; `pip install torch` adds it)")
    return report


def write_report(report: dict, path) -> None:
    from ..storage import write_json

    write_json(path, report)



# -- the fast CNN recipe: time to 99 % against PyTorch --------------------------------------------
def torch_bf16_autocast(net):
    """PyTorch's fastest CPU set-up for a CNN: the net in channels_last (oneDNN's blocked
    convolutions) and its forward pass under bf16 autocast. Returns (net, input preparer, context)."""
    import torch

    net = net.to(memory_format=torch.channels_last)
    return net, (lambda x: x.contiguous(memory_format=torch.channels_last)), \
        (lambda: torch.autocast("cpu", dtype=torch.bfloat16))


def torch_fast_cnn_run(X, y, Xt, yt, threads, seed=0, bf16_autocast=False):
    """The cnn-fast recipe in PyTorch CPU: the same net, Adam with OneCycleLR (the same warm-up
    fraction and divisors), one epoch at batch 256; with ``bf16_autocast``, in channels_last under
    bf16 autocast (``torch_bf16_autocast``). Returns (training seconds, test accuracy)."""
    import contextlib

    import torch
    from torch import nn

    from ..presets import RECIPES
    from ..schedules import get_schedule

    r = RECIPES["cnn-fast"]
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    net = nn.Sequential(nn.Conv2d(1, 24, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(24, 32, 3), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(800, 256), nn.ReLU(), nn.Linear(256, 10))
    prepare, context = (lambda x: x), contextlib.nullcontext
    if bf16_autocast:
        net, prepare, context = torch_bf16_autocast(net)
    kwargs = r.fit_kwargs()
    opt = torch.optim.Adam(net.parameters(), lr=r.lr, betas=kwargs["optimizer"].betas)
    one_cycle = get_schedule(kwargs["lr_schedule"])  # the recipe's OneCycle, with its options
    steps = -(-len(X) // r.batch_size) * r.epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=r.lr, total_steps=steps, pct_start=one_cycle.pct_start,
                                                div_factor=one_cycle.div_factor,
                                                final_div_factor=one_cycle.final_div_factor, cycle_momentum=False)
    Xd, yd = torch.from_numpy(X.reshape(-1, 1, 28, 28)), torch.from_numpy(y)
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    for _ in range(r.epochs):
        perm = torch.randperm(len(X))
        for lo in range(0, len(X), r.batch_size):
            idx = perm[lo : lo + r.batch_size]
            opt.zero_grad(set_to_none=True)
            with context():
                loss = loss_fn(net(prepare(Xd[idx])), yd[idx])
            loss.backward()
            opt.step()
            sched.step()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        logits = net(prepare(torch.from_numpy(Xt.reshape(-1, 1, 28, 28)))).float()
        acc = float((logits.argmax(1) == torch.from_numpy(yt)).float().mean())
    return seconds, acc


def mnistfast_fast_cnn_run(X, y, Xt, yt, threads=None, seed=0, precision="fp32"):
    """``mf.CNN("fast")`` with its recipe on cpp in ``precision``: (training seconds, test accuracy)."""
    from ..presets import CNN

    model = CNN("fast", backend=_backend("cpp", threads), seed=seed)
    t0 = time.perf_counter()
    model.fit(X, y, verbose=0, precision=precision, **model.recipe.fit_kwargs())
    seconds = time.perf_counter() - t0
    return seconds, model.evaluate(Xt, yt)["accuracy"]


# One contender's run of the race, alone in a fresh process: two OpenMP runtimes (ours, PyTorch's)
# in one process would time each other's spinning threads too.
_RACE_RUNNER = """
import json, sys
from mnistfast.bench.cpu import mnistfast_fast_cnn_run, steady_allocator, torch_fast_cnn_run
from mnistfast.dataset import load_mnist
contender, threads, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
steady_allocator()
(X, y), (Xt, yt) = load_mnist()
if contender.startswith("pytorch"):
    run = torch_fast_cnn_run(X, y, Xt, yt, threads, seed, bf16_autocast=contender == "pytorch bf16")
else:
    run = mnistfast_fast_cnn_run(X, y, Xt, yt, threads, seed, precision="bf16" if contender == "cpp bf16" else "fp32")
print(json.dumps(run))
"""


def fast_cnn_run_in_process(contender: str, threads: int, seed: int) -> tuple:
    """(training seconds, test accuracy) of one race run of ``contender`` ("cpp", "cpp bf16",
    "pytorch", "pytorch bf16") in a process of its own (data loading not timed)."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _RACE_RUNNER, contender, str(threads), str(seed)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:] or ["no message"]
        raise RuntimeError(f"the {contender} race run failed: {last[0]}")
    seconds, accuracy = json.loads(done.stdout.strip().splitlines()[-1])
    return seconds, accuracy


def fast_cnn_race(seeds: int = 5, threads=None, include_torch=True, log=print) -> dict:
    """The cnn-fast recipe's contenders over ``seeds`` seeds, interleaved, each run in a process of
    its own: training time (data already in memory) and test accuracy of each run, and their
    medians and means."""
    from ..backends import CppBackend

    threads = CppBackend(threads=threads).threads
    bf16 = bf16_hardware(threads)
    runs = {"cpp": [], "cpp bf16": [], "pytorch": [], "pytorch bf16": []}
    log(f"cnn-fast recipe (conv 24 5x5, pool, conv 32 3x3, pool, dense 256; Adam one-cycle, 1 epoch, batch 256), "
        f"{threads} threads" + (f"; bf16 on {bf16}" if bf16 else "; no bf16 instructions: fp32 only"))
    log(f"{'seed':>4} {'cpp s':>7} {'cpp acc':>8} {'bf16 s':>7} {'bf16 acc':>8} {'torch s':>8} {'torch acc':>9} "
        f"{'torch bf16 s':>12} {'acc':>7}   (torch bf16: autocast + channels_last)")
    nan = (float("nan"), float("nan"))
    for seed in range(seeds):
        time.sleep(SETTLE_S)
        runs["cpp"].append(fast_cnn_run_in_process("cpp", threads, seed))
        if bf16:
            time.sleep(SETTLE_S)
            runs["cpp bf16"].append(fast_cnn_run_in_process("cpp bf16", threads, seed))
        if include_torch and have_torch():
            for peer in ("pytorch", "pytorch bf16"):
                time.sleep(SETTLE_S)
                runs[peer].append(fast_cnn_run_in_process(peer, threads, seed))
        b = runs["cpp bf16"][-1] if runs["cpp bf16"] else nan
        t = runs["pytorch"][-1] if runs["pytorch"] else nan
        tb = runs["pytorch bf16"][-1] if runs["pytorch bf16"] else nan
        log(f"{seed:>4} {runs['cpp'][-1][0]:7.2f} {runs['cpp'][-1][1]:8.4f} {b[0]:7.2f} {b[1]:8.4f} {t[0]:8.2f} "
            f"{t[1]:9.4f} {tb[0]:12.2f} {tb[1]:7.4f}")
    summary = {k: {"median_s": float(np.median([s for s, _ in v])), "mean_accuracy": float(np.mean([a for _, a in v])),
                   "runs": v} for k, v in runs.items() if v}
    line = " - ".join(f"{k}: median {v['median_s']:.2f} s, mean accuracy {v['mean_accuracy']:.4f}"
                      for k, v in summary.items())
    for k in ("cpp", "cpp bf16"):
        for peer in ("pytorch", "pytorch bf16"):
            if peer in summary and k in summary:
                line += f" - {k} is {summary[peer]['median_s'] / summary[k]['median_s']:.2f}x faster than {peer}"
    if "cpp bf16" in summary:
        line += f" - bf16 is {summary['cpp']['median_s'] / summary['cpp bf16']['median_s']:.2f}x faster than fp32"
    log(line)
    summary["machine"] = {"cpu_model": cpu_model(), "threads": threads, "bf16_kernel": bf16}
    return summary
