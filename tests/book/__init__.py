"""The book's own code, once: the oracle of the tests and of the benchmark (``benchmarks/`` imports
it from here). Deep Learning from Scratch's chapter-5 functions, layers and ``TwoLayerNet``, and
its chapter-6 update rules ``Nesterov``, ``RMSprop`` and ``Adam``, ``Dropout`` and ``smooth_curve``,
its chapter-7 ``im2col``, ``col2im``, ``Convolution`` and ``Pooling``, as its repository writes them, under the
book's MIT licence (beside the code, below).

``book_code(np)`` builds them with ``np`` the array module handed in -- NumPy, or CuPy for the
benchmark's "book code on a GPU"; the NumPy ones are this module's ``softmax``,
``cross_entropy_error``, ``Relu``, ``Affine``, ``SoftmaxWithLoss``, ``TwoLayerNet``, ``Nesterov``,
``RMSprop`` and ``smooth_curve``.

After them, and marked as such, what is *not* the book's code: the readers' versions the tests
build on (``NpRelu``, ``ReaderNet``) and ``book_net_with``, which hands the book's net given weights.
"""

import types
from collections import OrderedDict

import numpy


# ---------------------------------------------------------------------------------------------
# The book's code: common/functions.py (softmax, cross_entropy_error), common/layers.py (Relu,
# Affine, SoftmaxWithLoss, Dropout, Convolution, Pooling), ch05/two_layer_net.py (TwoLayerNet),
# common/optimizer.py (Nesterov, RMSprop, Adam; Adam's commented-out lines left out) and common/util.py
# (smooth_curve, im2col, col2im) of
# https://github.com/oreilly-japan/deep-learning-from-scratch, copied line for line but for three
# changes: the code sits in a function of the array module ``np`` (so that it runs on CuPy too),
# its Japanese comments (smooth_curve's docstring among them) are left out, and so is
# TwoLayerNet.numerical_gradient (it needs the book's common/gradient.py; xpnet.gradient is that
# file). Its licence:
#
#     The MIT License (MIT)
#
#     Copyright (c) 2016 Koki Saitoh
#
#     Permission is hereby granted, free of charge, to any person obtaining a copy
#     of this software and associated documentation files (the "Software"), to deal
#     in the Software without restriction, including without limitation the rights
#     to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
#     copies of the Software, and to permit persons to whom the Software is
#     furnished to do so, subject to the following conditions:
#
#     The above copyright notice and this permission notice shall be included in all
#     copies or substantial portions of the Software.
#
#     THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
#     IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
#     FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
#     AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
#     LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
#     OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
#     SOFTWARE.
# ---------------------------------------------------------------------------------------------
def book_code(np):  # noqa: C901 - the book's code, kept as the book writes it
    """The book's functions, layers and TwoLayerNet, with ``np`` the array module (numpy or cupy)."""

    def softmax(x):
        x = x - np.max(x, axis=-1, keepdims=True)
        return np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)

    def cross_entropy_error(y, t):
        if y.ndim == 1:
            t = t.reshape(1, t.size)
            y = y.reshape(1, y.size)

        if t.size == y.size:
            t = t.argmax(axis=1)

        batch_size = y.shape[0]
        return -np.sum(np.log(y[np.arange(batch_size), t] + 1e-7)) / batch_size

    class Relu:
        def __init__(self):
            self.mask = None

        def forward(self, x):
            self.mask = (x <= 0)
            out = x.copy()
            out[self.mask] = 0

            return out

        def backward(self, dout):
            dout[self.mask] = 0
            dx = dout

            return dx

    class Affine:
        def __init__(self, W, b):
            self.W =W
            self.b = b

            self.x = None
            self.original_x_shape = None
            self.dW = None
            self.db = None

        def forward(self, x):
            self.original_x_shape = x.shape
            x = x.reshape(x.shape[0], -1)
            self.x = x

            out = np.dot(self.x, self.W) + self.b

            return out

        def backward(self, dout):
            dx = np.dot(dout, self.W.T)
            self.dW = np.dot(self.x.T, dout)
            self.db = np.sum(dout, axis=0)

            dx = dx.reshape(*self.original_x_shape)
            return dx

    class SoftmaxWithLoss:
        def __init__(self):
            self.loss = None
            self.y = None
            self.t = None

        def forward(self, x, t):
            self.t = t
            self.y = softmax(x)
            self.loss = cross_entropy_error(self.y, self.t)

            return self.loss

        def backward(self, dout=1):
            batch_size = self.t.shape[0]
            if self.t.size == self.y.size:
                dx = (self.y - self.t) / batch_size
            else:
                dx = self.y.copy()
                dx[np.arange(batch_size), self.t] -= 1
                dx = dx / batch_size

            return dx

    class TwoLayerNet:

        def __init__(self, input_size, hidden_size, output_size, weight_init_std = 0.01):
            self.params = {}
            self.params['W1'] = weight_init_std * np.random.randn(input_size, hidden_size)
            self.params['b1'] = np.zeros(hidden_size)
            self.params['W2'] = weight_init_std * np.random.randn(hidden_size, output_size)
            self.params['b2'] = np.zeros(output_size)

            self.layers = OrderedDict()
            self.layers['Affine1'] = Affine(self.params['W1'], self.params['b1'])
            self.layers['Relu1'] = Relu()
            self.layers['Affine2'] = Affine(self.params['W2'], self.params['b2'])

            self.lastLayer = SoftmaxWithLoss()

        def predict(self, x):
            for layer in self.layers.values():
                x = layer.forward(x)

            return x

        def loss(self, x, t):
            y = self.predict(x)
            return self.lastLayer.forward(y, t)

        def accuracy(self, x, t):
            y = self.predict(x)
            y = np.argmax(y, axis=1)
            if t.ndim != 1 : t = np.argmax(t, axis=1)  # noqa: E701 - the book's line

            accuracy = np.sum(y == t) / float(x.shape[0])
            return accuracy

        def gradient(self, x, t):
            self.loss(x, t)

            dout = 1
            dout = self.lastLayer.backward(dout)

            layers = list(self.layers.values())
            layers.reverse()
            for layer in layers:
                dout = layer.backward(dout)

            grads = {}
            grads['W1'], grads['b1'] = self.layers['Affine1'].dW, self.layers['Affine1'].db
            grads['W2'], grads['b2'] = self.layers['Affine2'].dW, self.layers['Affine2'].db

            return grads

    class Nesterov:

        """Nesterov's Accelerated Gradient (http://arxiv.org/abs/1212.0901)"""

        def __init__(self, lr=0.01, momentum=0.9):
            self.lr = lr
            self.momentum = momentum
            self.v = None

        def update(self, params, grads):
            if self.v is None:
                self.v = {}
                for key, val in params.items():
                    self.v[key] = np.zeros_like(val)

            for key in params.keys():
                params[key] += self.momentum * self.momentum * self.v[key]
                params[key] -= (1 + self.momentum) * self.lr * grads[key]
                self.v[key] *= self.momentum
                self.v[key] -= self.lr * grads[key]

    class RMSprop:

        """RMSprop"""

        def __init__(self, lr=0.01, decay_rate = 0.99):
            self.lr = lr
            self.decay_rate = decay_rate
            self.h = None

        def update(self, params, grads):
            if self.h is None:
                self.h = {}
                for key, val in params.items():
                    self.h[key] = np.zeros_like(val)

            for key in params.keys():
                self.h[key] *= self.decay_rate
                self.h[key] += (1 - self.decay_rate) * grads[key] * grads[key]
                params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)

    class Adam:

        """Adam (http://arxiv.org/abs/1412.6980v8)"""

        def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
            self.lr = lr
            self.beta1 = beta1
            self.beta2 = beta2
            self.iter = 0
            self.m = None
            self.v = None

        def update(self, params, grads):
            if self.m is None:
                self.m, self.v = {}, {}
                for key, val in params.items():
                    self.m[key] = np.zeros_like(val)
                    self.v[key] = np.zeros_like(val)

            self.iter += 1
            lr_t  = self.lr * np.sqrt(1.0 - self.beta2**self.iter) / (1.0 - self.beta1**self.iter)

            for key in params.keys():
                self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
                self.v[key] += (1 - self.beta2) * (grads[key]**2 - self.v[key])

                params[key] -= lr_t * self.m[key] / (np.sqrt(self.v[key]) + 1e-7)

    class Dropout:
        """
        http://arxiv.org/abs/1207.0580
        """
        def __init__(self, dropout_ratio=0.5):
            self.dropout_ratio = dropout_ratio
            self.mask = None

        def forward(self, x, train_flg=True):
            if train_flg:
                self.mask = np.random.rand(*x.shape) > self.dropout_ratio
                return x * self.mask
            else:
                return x * (1.0 - self.dropout_ratio)

        def backward(self, dout):
            return dout * self.mask

    def smooth_curve(x):
        window_len = 11
        s = np.r_[x[window_len-1:0:-1], x, x[-1:-window_len:-1]]
        w = np.kaiser(window_len, 2)
        y = np.convolve(w/w.sum(), s, mode='valid')
        return y[5:len(y)-5]

    def im2col(input_data, filter_h, filter_w, stride=1, pad=0):
        N, C, H, W = input_data.shape
        out_h = (H + 2*pad - filter_h)//stride + 1
        out_w = (W + 2*pad - filter_w)//stride + 1

        img = np.pad(input_data, [(0,0), (0,0), (pad, pad), (pad, pad)], 'constant')
        col = np.zeros((N, C, filter_h, filter_w, out_h, out_w))

        for y in range(filter_h):
            y_max = y + stride*out_h
            for x in range(filter_w):
                x_max = x + stride*out_w
                col[:, :, y, x, :, :] = img[:, :, y:y_max:stride, x:x_max:stride]

        col = col.transpose(0, 4, 5, 1, 2, 3).reshape(N*out_h*out_w, -1)
        return col

    def col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0):
        N, C, H, W = input_shape
        out_h = (H + 2*pad - filter_h)//stride + 1
        out_w = (W + 2*pad - filter_w)//stride + 1
        col = col.reshape(N, out_h, out_w, C, filter_h, filter_w).transpose(0, 3, 4, 5, 1, 2)

        img = np.zeros((N, C, H + 2*pad + stride - 1, W + 2*pad + stride - 1))
        for y in range(filter_h):
            y_max = y + stride*out_h
            for x in range(filter_w):
                x_max = x + stride*out_w
                img[:, :, y:y_max:stride, x:x_max:stride] += col[:, :, y, x, :, :]

        return img[:, :, pad:H + pad, pad:W + pad]

    class Convolution:
        def __init__(self, W, b, stride=1, pad=0):
            self.W = W
            self.b = b
            self.stride = stride
            self.pad = pad

            self.x = None
            self.col = None
            self.col_W = None

            self.dW = None
            self.db = None

        def forward(self, x):
            FN, C, FH, FW = self.W.shape
            N, C, H, W = x.shape
            out_h = 1 + int((H + 2*self.pad - FH) / self.stride)
            out_w = 1 + int((W + 2*self.pad - FW) / self.stride)

            col = im2col(x, FH, FW, self.stride, self.pad)
            col_W = self.W.reshape(FN, -1).T

            out = np.dot(col, col_W) + self.b
            out = out.reshape(N, out_h, out_w, -1).transpose(0, 3, 1, 2)

            self.x = x
            self.col = col
            self.col_W = col_W

            return out

        def backward(self, dout):
            FN, C, FH, FW = self.W.shape
            dout = dout.transpose(0,2,3,1).reshape(-1, FN)

            self.db = np.sum(dout, axis=0)
            self.dW = np.dot(self.col.T, dout)
            self.dW = self.dW.transpose(1, 0).reshape(FN, C, FH, FW)

            dcol = np.dot(dout, self.col_W.T)
            dx = col2im(dcol, self.x.shape, FH, FW, self.stride, self.pad)

            return dx

    class Pooling:
        def __init__(self, pool_h, pool_w, stride=2, pad=0):
            self.pool_h = pool_h
            self.pool_w = pool_w
            self.stride = stride
            self.pad = pad

            self.x = None
            self.arg_max = None

        def forward(self, x):
            N, C, H, W = x.shape
            out_h = int(1 + (H - self.pool_h) / self.stride)
            out_w = int(1 + (W - self.pool_w) / self.stride)

            col = im2col(x, self.pool_h, self.pool_w, self.stride, self.pad)
            col = col.reshape(-1, self.pool_h*self.pool_w)

            arg_max = np.argmax(col, axis=1)
            out = np.max(col, axis=1)
            out = out.reshape(N, out_h, out_w, C).transpose(0, 3, 1, 2)

            self.x = x
            self.arg_max = arg_max

            return out

        def backward(self, dout):
            dout = dout.transpose(0, 2, 3, 1)

            pool_size = self.pool_h * self.pool_w
            dmax = np.zeros((dout.size, pool_size))
            dmax[np.arange(self.arg_max.size), self.arg_max.flatten()] = dout.flatten()
            dmax = dmax.reshape(dout.shape + (pool_size,))

            dcol = dmax.reshape(dmax.shape[0] * dmax.shape[1] * dmax.shape[2], -1)
            dx = col2im(dcol, self.x.shape, self.pool_h, self.pool_w, self.stride, self.pad)

            return dx

    return types.SimpleNamespace(softmax=softmax, cross_entropy_error=cross_entropy_error, Relu=Relu,
                                 Affine=Affine, SoftmaxWithLoss=SoftmaxWithLoss, TwoLayerNet=TwoLayerNet,
                                 Nesterov=Nesterov, RMSprop=RMSprop, Adam=Adam, Dropout=Dropout,
                                 smooth_curve=smooth_curve, im2col=im2col,
                                 col2im=col2im, Convolution=Convolution, Pooling=Pooling)


_numpy_book = book_code(numpy)
softmax, cross_entropy_error = _numpy_book.softmax, _numpy_book.cross_entropy_error
Relu, Affine, SoftmaxWithLoss, TwoLayerNet = (_numpy_book.Relu, _numpy_book.Affine, _numpy_book.SoftmaxWithLoss,
                                              _numpy_book.TwoLayerNet)
Nesterov, RMSprop, smooth_curve = _numpy_book.Nesterov, _numpy_book.RMSprop, _numpy_book.smooth_curve
Adam, Dropout = _numpy_book.Adam, _numpy_book.Dropout
im2col, col2im, Convolution, Pooling = (_numpy_book.im2col, _numpy_book.col2im, _numpy_book.Convolution,
                                        _numpy_book.Pooling)


# ---------------------------------------------------------------------------------------------
# Not the book's code: the tests' own, built on the book's above.
# ---------------------------------------------------------------------------------------------
def book_net_with(params, np=numpy):
    """The book's ``TwoLayerNet`` (of the array module ``np``) holding the weights ``params``
    (host arrays W1, b1, W2, b2), copied into the arrays its layers hold, as float64."""
    W1, W2 = params["W1"], params["W2"]
    net = book_code(np).TwoLayerNet(W1.shape[0], W1.shape[1], W2.shape[1])
    for key in ("W1", "b1", "W2", "b2"):
        net.params[key][...] = np.asarray(params[key], dtype=np.float64)
    return net


class NpRelu(Relu):
    """Not the book's: a careful reader's Relu, whose backward copies ``dout`` instead of
    writing into it (the book's ``dout[self.mask] = 0``)."""

    def backward(self, dout):
        dx = dout.copy()
        dx[self.mask] = 0
        return dx


class ReaderNet(TwoLayerNet):
    """Not the book's: two_layer_net.py (5.7.2) as a reader types it, in NumPy float64 -- the
    book's methods, weights drawn from a seeded generator, and ``NpRelu`` for the book's Relu."""

    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01):
        rng = numpy.random.default_rng(0)
        self.params = {"W1": weight_init_std * rng.standard_normal((input_size, hidden_size)),
                       "b1": numpy.zeros(hidden_size),
                       "W2": weight_init_std * rng.standard_normal((hidden_size, output_size)),
                       "b2": numpy.zeros(output_size)}
        self.layers = OrderedDict(Affine1=Affine(self.params["W1"], self.params["b1"]), Relu1=NpRelu(),
                                  Affine2=Affine(self.params["W2"], self.params["b2"]))
        self.lastLayer = SoftmaxWithLoss()
