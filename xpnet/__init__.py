"""xpnet: the layer-by-layer backprop of *Deep Learning from Scratch*, on every Array API backend.

The same layers, nets and training loop run on NumPy (CPU), CuPy (CUDA GPUs), PyTorch and the
strict reference namespace; ``xpnet.device(...)`` picks where.
"""

from .exceptions import (CheckpointError, CheckpointWriteError, DatasetError, DeviceUnavailableError, DistributedError,
                         TrainingDivergedError, TrainingInterrupted, UnverifiedDataWarning)
from .backend import Device, device, device_of, device_report, devices, use_device
from .gradient import numerical_gradient
from .gradient_check import GradcheckReport, gradcheck
from .layers import (Affine, AddLayer, BatchNormalization, Convolution, Dropout, MulLayer, Pooling, Relu, Sigmoid,
                     SoftmaxWithLoss, Tanh)
from .nets import Net
from .multi_layer_net import MultiLayerNet
from .multi_layer_net_extend import MultiLayerNetExtend
from .two_layer_net import TwoLayerNet
from .convnets import DeepConvNet, SimpleConvNet
from .datasets import load_idx_dataset, load_mnist
from .optimizers import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop
from .trainer import History, Trainer
from .checkpoint import Checkpoint, load_checkpoint, load_net, load_params, save_net, save_params

__version__ = "0.1.0"

__all__ = [
    "Device", "DeviceUnavailableError", "device", "device_of", "device_report", "devices", "use_device",
    "GradcheckReport", "gradcheck", "numerical_gradient",
    "Affine", "AddLayer", "BatchNormalization", "Convolution", "Dropout", "MulLayer", "Pooling", "Relu", "Sigmoid",
    "SoftmaxWithLoss", "Tanh",
    "MultiLayerNet", "MultiLayerNetExtend", "Net", "TwoLayerNet", "SimpleConvNet", "DeepConvNet",
    "DatasetError", "UnverifiedDataWarning", "load_idx_dataset", "load_mnist",
    "SGD", "AdaGrad", "Adam", "Momentum", "Nesterov", "RMSprop",
    "History", "Trainer", "TrainingDivergedError", "TrainingInterrupted", "CheckpointWriteError",
    "Checkpoint", "CheckpointError", "load_checkpoint", "load_net", "save_net", "load_params", "save_params",
    "DistributedError",
]
