"""The benchmark harness behind ``mnistfast bench`` and ``bench/`` (pytest-benchmark).

Not part of the library: nothing in ``mnistfast`` imports it except the CLI's ``bench`` command.
It holds the comparison workloads (PyTorch models, a lean NumPy loop, OpenBLAS through ctypes)
and the timing discipline (interleaved rounds, medians): ``cpu`` compares the cpp backend on the
CPU, ``cuda`` the cuda backend on a GPU.
"""
