"""Small inputs several test files share: the batch of the input-check tests (test_nets.py,
test_validation.py) and the first images of MNIST (for the trainer, optimizers and checkpoints)."""

import numpy as np

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
