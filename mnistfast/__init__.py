"""mnistfast: neural networks on MNIST with hand-written C++ kernels and a NumPy reference."""

from .backends import Backend, available_backends, get_backend
from .data import DataFormatError, load_csv, load_mnist, read_idx, train_val_split
from .mlp import MLP, Callback, History
from .serialization import load_model

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
    "load_model",
    "read_idx",
    "train_val_split",
]
