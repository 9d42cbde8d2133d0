"""The book's gradient check (section 5.7.3): backprop vs numerical gradient of TwoLayerNet.

Runs in float64 on 3 MNIST images, prints each parameter's differences, and checks every layer
on its own (so a wrong backward would be named).
"""

import argparse

import xpnet

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--device", default="cpu", help="cpu, cuda, array_api_strict, torch, auto ...")
dev = xpnet.device(p.parse_args().device)

(x_train, t_train), _ = xpnet.load_mnist(normalize=True, one_hot_label=True, dtype="float64")
network = xpnet.TwoLayerNet(input_size=784, hidden_size=50, output_size=10, device=dev, dtype="float64", seed=0)
x_batch = dev.asarray(x_train[:3], dtype="float64")
t_batch = dev.asarray(t_train[:3], dtype="float64")

report = xpnet.gradcheck(network, x_batch, t_batch)
print(f"device: {dev.name}")
for key, r in report.items():
    print(f"{key}: max abs diff {r.max_abs:.3e}   (max rel {r.max_rel:.3e})")
print(report if not report.passed or report.warnings else "every parameter and every layer agrees: PASSED")
