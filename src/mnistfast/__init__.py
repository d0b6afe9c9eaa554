"""mnistfast: neural networks on MNIST with hand-written C++ kernels and a NumPy reference."""

# search imports Optuna only when a search runs; both are light to import.
from . import augment, callbacks, layers, optim, schedules, search, submission
from .backends import Backend, available_backends, get_backend
from .callbacks import Callback, EarlyStopping, History, ModelCheckpoint, ReduceLROnPlateau
from .data import DataFormatError, load_csv, read_idx, train_val_split
from .dataset import Dataset, load_dataset, load_mnist
from .layers import (BatchNorm, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, LeakyReLU, MaxPool2D, ReLU,
                     Reshape, Sigmoid, Tanh)
from .ensemble import Ensemble
from .model import Sequential
from .preprocessing import Preprocessing
from .presets import CNN, MLP, RECIPES
from .serialization import load_model

__version__ = "0.2.0"

__all__ = [
    "CNN", "MLP", "RECIPES", "Backend", "BatchNorm", "Callback", "Conv2D", "DataFormatError", "Dataset", "Dense", "Dropout",
    "EarlyStopping", "Ensemble", "augment", "ModelCheckpoint", "ReduceLROnPlateau", "callbacks", "schedules",
    "Flatten", "GlobalAvgPool2D", "History", "LeakyReLU", "MaxPool2D", "Preprocessing", "ReLU", "Reshape", "Sequential", "Sigmoid",
    "Tanh", "available_backends", "get_backend", "layers", "load_csv", "load_dataset", "load_mnist", "load_model", "optim",
    "read_idx", "search", "submission", "train_val_split",
]
