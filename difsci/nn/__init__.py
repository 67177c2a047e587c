"""Neural networks built from difsci kernels (API.md §7–8): their gradients —
weights and input derivatives of any order — come from difsci's own source
transformation; nothing here is hand-written backward code."""
from .activations import gelu, identity, relu, sigmoid, sin, softplus, tanh
from .layers import MLP, Linear
from .losses import mse
from .optim import LBFGS, SGD, Adam
from .pinn import PINN, box_samples

__all__ = ["MLP", "Linear", "mse", "SGD", "Adam", "LBFGS", "PINN", "box_samples",
           "tanh", "sin", "relu", "softplus", "gelu", "sigmoid", "identity"]
