"""The book's apple-and-orange graph (section 5.4.2): MulLayer and AddLayer, forward and backward."""

import argparse

import xpnet
from xpnet.layers import AddLayer, MulLayer

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--device", default="cpu", help="cpu, cuda, array_api_strict, torch, auto ...")
dev = xpnet.device(p.parse_args().device)


def num(v):
    return dev.asarray(v, dtype="float64")


apple, apple_num, orange, orange_num, tax = num(100.0), num(2.0), num(150.0), num(3.0), num(1.1)
mul_apple_layer, mul_orange_layer = MulLayer(), MulLayer()
add_apple_orange_layer, mul_tax_layer = AddLayer(), MulLayer()

apple_price = mul_apple_layer.forward(apple, apple_num)
orange_price = mul_orange_layer.forward(orange, orange_num)
all_price = add_apple_orange_layer.forward(apple_price, orange_price)
price = mul_tax_layer.forward(all_price, tax)

dall_price, dtax = mul_tax_layer.backward(num(1.0))
dapple_price, dorange_price = add_apple_orange_layer.backward(dall_price)
dorange, dorange_num = mul_orange_layer.backward(dorange_price)
dapple, dapple_num = mul_apple_layer.backward(dapple_price)

print(f"device: {dev.name}")
print("price:", round(float(price), 10))
print("dApple:", round(float(dapple), 10))
print("dApple_num:", round(float(dapple_num), 10))
print("dOrange:", round(float(dorange), 10))
print("dOrange_num:", round(float(dorange_num), 10))
print("dTax:", round(float(dtax), 10))
