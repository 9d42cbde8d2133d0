"""The book's ch05/gradient_check.py, unchanged but for its two imports, which point at xpnet
(Deep Learning from Scratch, MIT, Copyright (c) 2016 Koki Saitoh: see THIRD_PARTY_NOTICES.md).

It prints the mean absolute difference between backprop and the numerical gradient of each
parameter. xpnet's nets compute in float64 unless told otherwise -- as the book's NumPy code
does -- so this prints the book's 1e-10..1e-13, not float32's 1e-5 (see the README).
"""
import numpy as np
from xpnet.datasets import load_mnist  # the book: from dataset.mnist import load_mnist
from xpnet import TwoLayerNet  # the book: from two_layer_net import TwoLayerNet

# データの読み込み
(x_train, t_train), (x_test, t_test) = load_mnist(normalize=True, one_hot_label=True)

network = TwoLayerNet(input_size=784, hidden_size=50, output_size=10)

x_batch = x_train[:3]
t_batch = t_train[:3]

grad_numerical = network.numerical_gradient(x_batch, t_batch)
grad_backprop = network.gradient(x_batch, t_batch)

for key in grad_numerical.keys():
    diff = np.average( np.abs(grad_backprop[key] - grad_numerical[key]) )
    print(key + ":" + str(diff))
