"""Layers: forward/backward pairs over backend kernels (PyTorch-like names, Keras-like arguments)."""

from .activations import LeakyReLU, ReLU, Sigmoid, Tanh
from .base import Layer
from .conv import Conv2D
from .dense import Dense
from .dropout import Dropout
from .normalization import BatchNorm
from .pooling import GlobalAvgPool2D, MaxPool2D
from .reshape import Flatten, Reshape

# By class name, for loading saved models.
LAYER_TYPES = {cls.__name__: cls for cls in (Dense, Conv2D, MaxPool2D, GlobalAvgPool2D, ReLU, LeakyReLU, Sigmoid,
                                             Tanh, BatchNorm, Dropout, Flatten, Reshape)}

__all__ = ["LAYER_TYPES", "BatchNorm", "Conv2D", "Dense", "Dropout", "Flatten", "GlobalAvgPool2D", "Layer",
           "LeakyReLU", "MaxPool2D", "ReLU", "Reshape", "Sigmoid", "Tanh"]
