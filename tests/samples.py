"""Small inputs several test files share: the batch of the input-check tests (test_nets.py,
test_validation.py), the first images of MNIST (for the trainer, optimizers and checkpoints), and
a three-class problem and the MultiLayerNetExtend that learns it (checkpoints, the trainers)."""

import numpy as np

import xpnet

N, D, C = 5, 8, 3  # samples, features, classes of the input-check batch and its net, TwoLayerNet(D, 4, C)


def data(dev, n=N, d=D):
    """(x, integer labels t, one-hot T) on ``dev``: n samples of d features, C classes, float32."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, C, n)
    x = dev.asarray(rng.random((n, d)), dtype="float32")
    return x, dev.asarray(labels), dev.asarray(np.eye(C)[labels], dtype="float32")


def small(mnist, n=6000):
    """The first ``n`` training images of MNIST and the first 2000 test images: x, t, x_test, t_test."""
    (x, t), (xt, tt) = mnist
    return x[:n], t[:n], xt[:2000], tt[:2000]


def three_classes(n=300):
    """x: n samples of 20 uniform features, float32; t: the argmax of the first three (int64)."""
    rng = np.random.default_rng(0)
    x = rng.random((n, 20)).astype("float32")
    return x, (x[:, :3].argmax(axis=1)).astype(np.int64)


def extend_net(dev=None, **kw):
    """A 20-16-12-3 MultiLayerNetExtend for ``three_classes``: dropout 0.2, batch norm, weight decay
    0.01, float32, seed 0, unless ``kw`` says otherwise."""
    kw = dict({"use_dropout": True, "dropout_ratio": 0.2, "use_batchnorm": True, "weight_decay_lambda": 0.01,
                   "dtype": "float32", "seed": 0}, **kw)
    return xpnet.MultiLayerNetExtend([20, 16, 12, 3], device=dev, **kw)
