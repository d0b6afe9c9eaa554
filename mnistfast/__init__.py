"""mnistfast: neural networks on MNIST with hand-written C++ kernels and a NumPy reference."""

from .backends import Backend, available_backends, get_backend
from .data import DataFormatError, load_csv, load_mnist, read_idx, train_val_split
from .mlp import MLP, Callback, History
from .serialization import load_model
from .threads import get_num_threads, set_num_threads

try:
    from .threads import apply_env as _apply_thread_env

    _apply_thread_env()
except ImportError:  # the extension is missing; the cpp backend explains when asked for
    pass

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "Backend",
    "Callback",
    "DataFormatError",
    "History",
    "available_backends",
    "get_backend",
    "load_csv",
    "load_mnist",
    "get_num_threads",
    "load_model",
    "read_idx",
    "set_num_threads",
    "train_val_split",
]
