"""xpnet's contenders, written with its public API only.

- ``XpnetContender``: the library's own hot loop, ``Trainer.run_steps(k)`` (and ``fit()`` for
  the whole protocol, ``evaluate()`` for the accuracies);
- ``BookLoopContender``: the loop a reader of the book writes with xpnet's nets:
  ``grads = net.gradient(x, t)``, the SGD update on ``net.params``, the loss read every step,
  from ``net.lastLayer.loss`` or (the book's ``train_neuralnet.py``) a second ``net.loss(x, t)``.

Every contender starts from the same host weights, written into ``net.params`` in place.
"""

from __future__ import annotations

import numpy as np

import xpnet

from .contenders import book_style_steps


def sizes_of(params) -> list:
    n = len(params) // 2
    return [params["W1"].shape[0]] + [params[f"W{i}"].shape[1] for i in range(1, n + 1)]


def new_net(params, device="cpu"):
    """A float32 xpnet net holding ``params`` (host arrays): TwoLayerNet for two layers. Built
    in the device's scope: CuPy writes the weights on the *current* GPU, which must be its own."""
    sizes = sizes_of(params)
    dev = xpnet.device(device)
    with dev.scope():
        if len(sizes) == 3:
            net = xpnet.TwoLayerNet(*sizes, dtype="float32", device=dev)
        else:
            net = xpnet.MultiLayerNet(sizes, dtype="float32", device=dev)
        for key, value in params.items():  # in place: the layers hold these very arrays
            net.params[key][...] = dev.asarray(np.asarray(value, dtype=np.float32))
    return net


class XpnetContender:
    """xpnet's Trainer: ``run_steps(k)`` per step, ``fit()`` for the protocol; each inside its
    device's scope, where every computation for that device runs."""

    def __init__(self, params, data, lr, batch_size, seed, device="cpu", iters=10000, eval_interval=None):
        (x, t), (xt, tt) = data
        self.device = dev = xpnet.device(device)
        self.name = f"xpnet {dev.name}"
        with dev.scope():
            self.net = new_net(params, dev)
            self.trainer = xpnet.Trainer(self.net, x, t, xt, tt, lr=lr, batch_size=batch_size, seed=seed, log=None,
                                         progress=False, final_eval=False, iters=iters, eval_interval=eval_interval)
        self.losses = []

    def steps(self, k):
        with self.device.scope():
            self.losses = self.trainer.run_steps(k)  # this call's losses only: memory stays flat
            self.device.synchronize()

    def evaluate(self):
        with self.device.scope():
            return self.trainer.evaluate()

    def protocol(self):
        """The whole run this contender was built for (``iters``, ``eval_interval``)."""
        with self.device.scope():
            return self.trainer.fit()


class BookLoopContender:
    """The book's ``train_neuralnet.py`` loop, written by a reader against xpnet (float32, CPU).

    Batch indices are drawn per step exactly as the hand-tuned contender draws them (the same
    seed gives the same batches); the batch is gathered with fancy indexing, as a reader does.
    ``second_loss``: record the loss with the book's second forward pass, ``net.loss(x, t)``,
    instead of reading ``net.lastLayer.loss`` (which the gradient's forward pass set).
    """

    def __init__(self, params, data, lr, batch_size, seed, second_loss=False):
        (x, t), (xt, tt) = data
        self.net = new_net(params, "cpu")
        self.x, self.t = np.ascontiguousarray(x, dtype=np.float32), np.asarray(t)
        self.xt, self.tt = np.ascontiguousarray(xt, dtype=np.float32), np.asarray(tt)
        self.lr, self.bs, self.second_loss = lr, batch_size, second_loss
        self.rng = np.random.default_rng(seed)
        self.name = "xpnet, book-style loop" + (" + net.loss" if second_loss else "")
        self.train_loss_list = []

    def steps(self, k):
        self.train_loss_list = book_style_steps(self.net, self.x, self.t, self.lr, self.rng, self.bs, k,
                                                self.second_loss)  # a fresh list per call: memory stays flat

    def evaluate(self):
        return self.net.accuracy(self.x, self.t), self.net.accuracy(self.xt, self.tt)
