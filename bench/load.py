"""Trainings side by side on one machine: the cnn-fast recipe run alone, two and four at once, and
beside a busy loop, each run in its own process. Contenders: mnistfast as installed (its short
OpenMP spin, and the CPUs divided among the trainings running: ``mnistfast.core_share``),
mnistfast with a fixed thread count (the short spin alone), mnistfast with a fixed thread count
and libgomp's default spin (``GOMP_SPINCOUNT=300000``: what it ran with before either), and
PyTorch CPU with the same recipe.

    python bench/load.py [--rounds 3] [--no-torch] [--out load.json]

Prints, per contender and scenario, the median training seconds of one run and its ratio to the
same contender alone; the alone runs of the contenders are interleaved, so that their ratio says
what the setting costs on an idle machine. Targets (issue 22): two runs each within 1.8x of one
alone, four within 3.6x, one beside a busy loop within 2.2x, alone unchanged within 3 %.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

_FIXED = {"MNISTFAST_NUM_THREADS": str(len(os.sched_getaffinity(0)))}  # a chosen count is never shared
CONTENDERS = {"mnistfast": {}, "mnistfast, fixed threads": _FIXED,
              "mnistfast, fixed, libgomp spin": {**_FIXED, "GOMP_SPINCOUNT": "300000"}, "pytorch": {}}
BEFORE = "mnistfast, fixed, libgomp spin"
SCENARIOS = {"alone": 1, "two at once": 2, "four at once": 4, "beside a busy loop": 1}
RUNNER = """
import sys
from mnistfast.bench.cpu import mnistfast_fast_cnn_run, steady_allocator, torch_fast_cnn_run
from mnistfast.dataset import load_mnist
steady_allocator()
(X, y), (Xt, yt) = load_mnist()
run = torch_fast_cnn_run if sys.argv[1] == "pytorch" else mnistfast_fast_cnn_run
seconds, accuracy = run(X, y, Xt, yt, 2) if sys.argv[1] == "pytorch" else run(X, y, Xt, yt)
print(seconds, accuracy)
"""
BUSY = "while True: pass"


def runs_at_once(contender: str, n: int, busy: bool) -> list:
    """Training seconds of ``n`` runs started together (beside a busy loop if ``busy``)."""
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "MNISTFAST_NUM_THREADS")}
    env.update(CONTENDERS[contender])
    loop = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
    try:
        procs = [subprocess.Popen([sys.executable, "-c", RUNNER, "pytorch" if contender == "pytorch" else "cpp"],
                                  env=env, stdout=subprocess.PIPE, text=True) for _ in range(n)]
        outs = [p.communicate()[0] for p in procs]
    finally:
        if loop is not None:
            loop.kill()
            loop.wait()
    for p, out in zip(procs, outs):
        if p.returncode:
            raise SystemExit(f"{contender}: a run failed ({p.returncode})")
    return [float(out.split()[0]) for out in outs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--out", default="load.json")
    args = ap.parse_args()
    contenders = [c for c in CONTENDERS if not (args.no_torch and c == "pytorch")]
    times = {c: {s: [] for s in SCENARIOS} for c in contenders}
    for r in range(args.rounds):  # every round takes each scenario for each contender in turn
        for scenario, n in SCENARIOS.items():
            for c in contenders:
                time.sleep(0.5)
                times[c][scenario] += runs_at_once(c, n, scenario == "beside a busy loop")
        print(f"round {r + 1} of {args.rounds} done", file=sys.stderr)
    report = {"cpu": _cpu(), "rounds": args.rounds, "median_s": {}, "vs_alone": {}}
    print(f"cnn-fast recipe, median training seconds of one run over {args.rounds} rounds ({_cpu()})")
    print(f"{'':<31}" + "".join(f"{s:>22}" for s in SCENARIOS))
    for c in contenders:
        med = {s: statistics.median(v) for s, v in times[c].items()}
        ratio = {s: med[s] / med["alone"] for s in SCENARIOS}
        report["median_s"][c], report["vs_alone"][c] = med, ratio
        print(f"{c:<31}" + "".join(f"{med[s]:>13.2f} ({ratio[s]:4.2f}x)" for s in SCENARIOS))
    base = report["median_s"][BEFORE]["alone"]
    report["alone_vs_before"] = report["median_s"]["mnistfast"]["alone"] / base
    print(f"mnistfast alone against {BEFORE} alone: {report['alone_vs_before']:.3f}x the time")
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)


def _cpu() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} CPUs"
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs"


if __name__ == "__main__":
    main()
