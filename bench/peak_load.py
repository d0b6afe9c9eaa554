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


def peaks():
    kernels = [k for k in _core.available_gemm_kernels() + _core.available_bf16_gemm_kernels()
               if _core.Kernels(1, k, "auto").peak_gflops(1) is not None]
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
