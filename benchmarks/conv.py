"""The convnets' tables: the book's SimpleConvNet (ch07) and DeepConvNet (ch08), one training step
(gradient, Adam at lr 0.001, the loss) of a batch of 100 MNIST images, float32, per contender:

- xpnet on each device timed (its ``Trainer``: batches drawn on the device, the loss recorded);
- ``torch.nn``: the same layers as modules (``Conv2d``, ``MaxPool2d``, ``Linear``, ``Dropout``),
  the same initial weights, ``torch.optim.Adam``, eager, on the CPU and on CUDA where present;
- the book's code: its layers and Adam (``tests.book``) in float64, as the book runs them.

Each library keeps its own thread policy (xpnet's: every BLAS thread for products this large).
"""

from __future__ import annotations

import numpy as np

import xpnet

__all__ = ["CONV_TARGETS", "conv_contenders", "XpnetConvContender", "TorchConvContender", "BookConvContender"]

# (xpnet cpu / torch.nn cpu, xpnet cpu / the book's, xpnet torch / torch.nn cpu), at most
CONV_TARGETS = {"simple": (1.0, 0.25, 1.1), "deep": (1.5, 0.25, 1.1)}
SMALL_DEEP = {"conv_param_1": {"filter_num": 4}, "conv_param_2": {"filter_num": 4}, "conv_param_3": {"filter_num": 4},
              "conv_param_4": {"filter_num": 4}, "conv_param_5": {"filter_num": 4}, "conv_param_6": {"filter_num": 4},
              "hidden_size": 8}


def make_net(kind: str, device="cpu", dtype="float32", quick=False, seed=0):
    """The book's net (``quick``: a narrow one, for a check that everything runs)."""
    if kind == "simple":
        conv = {"filter_num": 4} if quick else None
        return xpnet.SimpleConvNet(conv_param=conv, hidden_size=16 if quick else 100, device=device, dtype=dtype,
                                   seed=seed)
    return xpnet.DeepConvNet(**(SMALL_DEEP if quick else {}), device=device, dtype=dtype, seed=seed)


class XpnetConvContender:
    def __init__(self, kind, data, batch, seed, device="cpu", quick=False):
        (x, t), _ = data
        self.device = dev = xpnet.device(device)
        self.name = f"xpnet {dev.name}"
        with dev.scope():
            self.net = make_net(kind, dev, quick=quick)
            self.trainer = xpnet.Trainer(self.net, x, t, optimizer="adam", lr=0.001, batch_size=batch, seed=seed,
                                         log=None, progress=False, final_eval=False, iters=10 ** 9)

    def steps(self, k):
        with self.device.scope():
            self.trainer.run_steps(k)
            self.device.synchronize()


class TorchConvContender:
    """The same net as ``torch.nn`` modules, holding xpnet's initial weights."""

    def __init__(self, kind, data, batch, seed, device="cpu", quick=False):
        import torch

        nn, self.torch = torch.nn, torch
        ref = make_net(kind, "cpu", quick=quick)
        layers = []
        for layer in ref.layers.values():
            k = type(layer).__name__
            if k == "Convolution":
                m = nn.Conv2d(layer.W.shape[1], layer.W.shape[0], layer.W.shape[2:], layer.stride, layer.pad)
                m.weight.data, m.bias.data = torch.tensor(layer.W), torch.tensor(layer.b)
            elif k == "Affine":
                if not any(isinstance(v, nn.Flatten) for v in layers):  # images to rows, before the first
                    layers.append(nn.Flatten())
                m = nn.Linear(*layer.W.shape)
                m.weight.data, m.bias.data = torch.tensor(layer.W.T.copy()), torch.tensor(layer.b)
            else:
                m = {"Relu": nn.ReLU, "Pooling": lambda: nn.MaxPool2d(2, 2), "Dropout": lambda: nn.Dropout(0.5)}[k]()
            layers.append(m)
        self.dev = torch.device(device)
        self.model = nn.Sequential(*layers).to(self.dev)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=0.001)
        (x, t), _ = data
        self.x, self.t = torch.tensor(x, device=self.dev), torch.tensor(t, device=self.dev)
        self.gen = torch.Generator(device=self.dev).manual_seed(seed)
        self.batch, self.name = batch, f"torch.nn {device}"

    def steps(self, k):
        torch, F = self.torch, self.torch.nn.functional
        for _ in range(k):
            idx = torch.randint(0, self.x.shape[0], (self.batch,), generator=self.gen, device=self.dev)
            self.opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(self.model(self.x[idx]), self.t[idx])
            loss.backward()
            self.opt.step()
        if self.dev.type == "cuda":
            torch.cuda.synchronize()


class BookConvContender:
    """The book's layers and Adam in float64 (its ``SimpleConvNet``/``DeepConvNet`` wiring)."""

    def __init__(self, kind, data, batch, seed, quick=False):
        from tests import book

        ref = make_net(kind, "cpu", dtype="float64", quick=quick)
        self.params = {k: np.array(v) for k, v in ref.params.items()}
        by_id = {id(v): k for k, v in ref.params.items()}
        self.layers = []
        for layer in ref.layers.values():
            k = type(layer).__name__
            if k == "Convolution":
                self.layers.append((book.Convolution(self.params[by_id[id(layer.W)]], self.params[by_id[id(layer.b)]],
                                                     layer.stride, layer.pad), by_id[id(layer.W)]))
            elif k == "Affine":
                self.layers.append((book.Affine(self.params[by_id[id(layer.W)]], self.params[by_id[id(layer.b)]]),
                                    by_id[id(layer.W)]))
            else:
                self.layers.append(({"Relu": book.Relu, "Pooling": lambda: book.Pooling(2, 2, 2),
                                     "Dropout": lambda: book.Dropout(0.5)}[k](), None))
        self.last, self.opt = book.SoftmaxWithLoss(), book.Adam(lr=0.001)
        (x, t), _ = data
        self.x, self.t = np.asarray(x, dtype=np.float64), np.asarray(t)
        self.rng, self.batch, self.name = np.random.default_rng(seed), batch, "book NumPy float64"

    def steps(self, k):
        for _ in range(k):
            idx = self.rng.choice(self.x.shape[0], self.batch)  # the book's trainer draws with np.random.choice
            h = self.x[idx]
            for layer, _ in self.layers:
                h = layer.forward(h)
            self.last.forward(h, self.t[idx])
            dout = self.last.backward(1)
            for layer, _ in reversed(self.layers):
                dout = layer.backward(dout)
            grads = {}
            for layer, w in self.layers:
                if w is not None:
                    grads[w], grads["b" + w[1:]] = layer.dW, layer.db
            self.opt.update(self.params, grads)


def conv_contenders(kind, data, batch, devices, torch_devices, quick=False):
    """Factories of the table's contenders, by name."""
    fs = {}
    for d in devices:
        fs[f"xpnet {xpnet.device(d).name}"] = lambda d=d: XpnetConvContender(kind, data, batch, 0, d, quick)
    for td in torch_devices:
        fs[f"torch.nn {td}"] = lambda td=td: TorchConvContender(kind, data, batch, 0, td, quick)
    fs["book NumPy float64"] = lambda: BookConvContender(kind, data, batch, 0, quick)
    return fs


def conv_targets(kind, rows, log) -> dict:
    """The table's ratios against the issue's targets (``CONV_TARGETS``), each said met or not."""
    med = {k: v["median"] for k, v in rows.items()}
    out = {}
    limits = CONV_TARGETS[kind]
    for label, a, b, limit in (("xpnet cpu / torch.nn cpu", "xpnet cpu", "torch.nn cpu", limits[0]),
                               ("xpnet cpu / the book's code", "xpnet cpu", "book NumPy float64", limits[1]),
                               ("xpnet torch / torch.nn cpu", "xpnet torch", "torch.nn cpu", limits[2])):
        if a in med and b in med:
            r = med[a] / med[b]
            out[label] = {"ratio": r, "target": limit, "met": r <= limit}
            log(f"  {label}: {r:.2f}x (target <= {limit:.2f}x: {'met' if r <= limit else 'NOT met'})")
    return out
