"""The book's first computational graph (section 5.4.1): two apples with tax, forward and backward."""

import argparse

import xpnet
from xpnet.layers import MulLayer

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--device", default="cpu", help="cpu, cuda, array_api_strict, torch, auto ...")
dev = xpnet.device(p.parse_args().device)


def num(v):
    return dev.asarray(v, dtype="float64")


apple, apple_num, tax = num(100.0), num(2.0), num(1.1)
mul_apple_layer, mul_tax_layer = MulLayer(), MulLayer()

apple_price = mul_apple_layer.forward(apple, apple_num)
price = mul_tax_layer.forward(apple_price, tax)

dapple_price, dtax = mul_tax_layer.backward(num(1.0))
dapple, dapple_num = mul_apple_layer.backward(dapple_price)

print(f"device: {dev.name}")
print("price:", round(float(price), 10))
print("dApple:", round(float(dapple), 10))
print("dApple_num:", round(float(dapple_num), 10))
print("dTax:", round(float(dtax), 10))
