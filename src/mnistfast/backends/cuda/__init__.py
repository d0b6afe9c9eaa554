"""Numba CUDA kernels for the ``cuda`` backend, one module per family.

Importing a module here compiles its kernels (each has one explicit signature, so the dispatcher
skips type inference at launch); ``CudaBackend`` imports them only once a GPU or the simulator is
known to be there. Every kernel loops grid-stride, so a launch may use fewer threads than
elements: ``launch.py`` sizes grids for the GPU, and keeps them tiny under the simulator, where
each thread is a Python thread.
"""
