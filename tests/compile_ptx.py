"""Compile every cuda-backend kernel to PTX for a real GPU, without one: proves that the kernels
type-check and lower under the CUDA target (the simulator runs them as plain Python and checks
neither). Needs NVVM from a CUDA toolkit. Run as a script with NUMBA_ENABLE_CUDASIM unset;
prints one line per kernel and exits non-zero on the first failure."""

import importlib
import re
import sys

import types

from numba import cuda
from numba.cuda import codegen, dispatcher

# NVVM alone lowers to PTX; NVRTC is asked only which architectures exist. Without NVRTC
# installed, name the architecture directly.
codegen.nvrtc.get_arch_option = lambda major, minor: f"compute_{major}{minor}"

CC = (9, 0)  # an H100; any compute capability >= 5.0 would do
# Device functions are compiled for the current device when a kernel calls them: stand one in.
dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=CC)
MODULES = ("gemm", "elementwise", "reduce", "conv")

kernels = []
_real_jit = cuda.jit


def _recording_jit(sig=None, device=False, **options):
    """Kernels are recorded (to compile for CC below); device functions stay lazily typed."""
    def decorate(fn):
        if device:
            return _real_jit(device=True, **options)(fn)
        kernels.append((fn, sig))
        return fn
    return decorate




def compile_all():
    """[(module.kernel, PTX text)] for every kernel of the cuda backend."""
    cuda.jit = _recording_jit
    try:
        for name in MODULES:
            importlib.import_module(f"mnistfast.backends.cuda.{name}")
    finally:
        cuda.jit = _real_jit
    return [(f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__}", cuda.compile_ptx(fn, sig, cc=CC)[0])
            for fn, sig in kernels]


NO_TOOLKIT = 3  # exit status when NVVM or libdevice is missing: nothing to check with


if __name__ == "__main__":
    try:
        compiled = compile_all()
    except Exception as e:  # noqa: BLE001
        text = " ".join(str(e).split())
        if any(s in text for s in ("NVVM", "libdevice", "nvrtc", "libnvvm")):
            print(f"no CUDA toolkit to compile with: {text[:300]}")
            sys.exit(NO_TOOLKIT)
        raise
    for name, ptx in compiled:
        f64 = len(re.findall(r"\.f64", ptx))
        local = len(re.findall(r"(ld|st)\.local", ptx))
        fma = len(re.findall(r"fma\.rn\.f32", ptx))
        print(f"{name}: {len(ptx)} bytes of PTX for sm_{CC[0]}{CC[1]}; f64 {f64} local {local} fma {fma}")
    print(f"compiled {len(compiled)} kernels")
    sys.exit(0 if compiled else 1)
