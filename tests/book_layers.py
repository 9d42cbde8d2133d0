"""The book's NumPy Affine and ReLU as a careful reader writes them: the tests' reader nets and
reader-mistake layers build on these (ReLU copies ``dout`` instead of the book's in-place mask).

Adapted from Deep Learning from Scratch's ``common/layers.py`` (MIT, Copyright (c) 2016 Koki
Saitoh; the notice is in THIRD_PARTY_NOTICES.md)."""

import numpy as np


class NpAffine:
    def __init__(self, W, b):
        self.W, self.b = W, b
        self.x = None
        self.dW = None
        self.db = None

    def forward(self, x):
        self.x = x
        return np.dot(x, self.W) + self.b

    def backward(self, dout):
        dx = np.dot(dout, self.W.T)
        self.dW = np.dot(self.x.T, dout)
        self.db = np.sum(dout, axis=0)
        return dx


class NpRelu:
    def forward(self, x):
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        dx = dout.copy()
        dx[self.mask] = 0
        return dx


class BookTwoLayerNetMethods:
    """The book's TwoLayerNet methods (``two_layer_net.py``, 5.7.2), for the tests' reader nets:
    a subclass sets ``params``, ``layers`` (Affine1, Relu1, Affine2) and ``lastLayer``.
    ``backward_order`` is the loop the reader wrote over the layers (reversed, as it must be)."""

    def predict(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        return self.lastLayer.forward(self.predict(x), t)

    def accuracy(self, x, t):
        y = np.argmax(self.predict(x), axis=1)
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        return np.sum(y == t) / float(x.shape[0])

    def backward_order(self, layers):
        return reversed(layers)

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.lastLayer.backward(1)
        for layer in self.backward_order(list(self.layers.values())):
            dout = layer.backward(dout)
        a1, a2 = self.layers["Affine1"], self.layers["Affine2"]
        return {"W1": a1.dW, "b1": a1.db, "W2": a2.dW, "b2": a2.db}
