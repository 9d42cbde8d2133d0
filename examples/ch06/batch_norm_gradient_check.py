# coding: utf-8
"""The book's ch06/batch_norm_gradient_check.py, unchanged but for its imports, which point at xpnet
(Deep Learning from Scratch, MIT, Copyright (c) 2016 Koki Saitoh: see THIRD_PARTY_NOTICES.md)."""
import sys, os
sys.path.append(os.pardir)  # 親ディレクトリのファイルをインポートするための設定
import numpy as np
from xpnet.datasets import load_mnist  # the book: from dataset.mnist import load_mnist
from xpnet import MultiLayerNetExtend  # the book: from common.multi_layer_net_extend import ...

# データの読み込み
(x_train, t_train), (x_test, t_test) = load_mnist(normalize=True, one_hot_label=True)

network = MultiLayerNetExtend(input_size=784, hidden_size_list=[100, 100], output_size=10,
                              use_batchnorm=True)

x_batch = x_train[:1]
t_batch = t_train[:1]

grad_backprop = network.gradient(x_batch, t_batch)
grad_numerical = network.numerical_gradient(x_batch, t_batch)


for key in grad_numerical.keys():
    diff = np.average( np.abs(grad_backprop[key] - grad_numerical[key]) )
    print(key + ":" + str(diff))
