"""The peak probe quiet and beside busy loops: `python bench/peak_load.py [--busy 2]`.

Prints each kernel's measured peak (GFLOP/s on 2 threads, three calls) with the machine quiet and
then with `--busy` spinning processes beside it. A load-proof probe reads the same both times.
"""

import argparse
import multiprocessing as mp

from mnistfast import _core


def spin():
    while True:
        pass


PROBED = ("avx2", "avx512", "avx512bf16")  # the kernels whose instructions have a peak probe


def peaks():
    available = _core.available_gemm_kernels() + _core.available_bf16_gemm_kernels()
    kernels = [k for k in PROBED if k in available]
    return {k: [round(_core.Kernels(2, k, "auto").peak_gflops()) for _ in range(3)] for k in kernels}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--busy", type=int, default=2, help="spinning processes beside the probe (default 2)")
    args = ap.parse_args()
    print("quiet:", peaks())
    procs = [mp.Process(target=spin, daemon=True) for _ in range(args.busy)]
    for p in procs:
        p.start()
    try:
        print(f"beside {args.busy} busy loops:", peaks())
    finally:
        for p in procs:
            p.terminate()


if __name__ == "__main__":
    main()
