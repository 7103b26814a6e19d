"""PyTorch reference values for reg-pipeline's CNN layers (tests/cnn_parity.rs).

Run from the repository root with a Python that has torch:

    python3 scripts/make_conv_fixtures.py

Writes crates/reg-pipeline/tests/data/cnn_layers_torch.json. Everything is computed by
torch.nn.Conv2d, torch.nn.MaxPool2d and torch.nn.Flatten in float64 on the CPU. The inputs,
weights, biases and upstream gradients come from a small hash of the element's index (below),
not from torch's generator, and are written into the JSON as well: the Rust test reads every
number from the file and regenerates nothing. For each case: the output of a forward pass and,
for the given grad_output, the input gradient and the parameter gradients. Tensors are stored
flat in row-major (NCHW) order with their shape.
"""

import json
import pathlib

import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "crates" / "reg-pipeline" / "tests" / "data" / "cnn_layers_torch.json"


def values(shape, salt, scale=1.0):
    """Values in [-scale, scale) from a hash of (index, salt): the same on every platform."""
    count = 1
    for n in shape:
        count *= n
    out = []
    for i in range(count):
        h = (i * 2654435761 + salt * 40503 + 12345) % (1 << 32)
        h = (h ^ (h >> 15)) * 2246822519 % (1 << 32)
        h ^= h >> 13
        out.append(scale * (2.0 * (h % 1_000_003) / 1_000_003 - 1.0))
    return torch.tensor(out, dtype=torch.float64).reshape(shape)


def small_integers(shape, salt, levels=3):
    """Integers in 0..levels: many exact ties, for max pooling."""
    return torch.floor((values(shape, salt) + 1.0) * levels / 2.0).clamp(0, levels - 1)


def flat(t):
    return {"shape": list(t.shape), "data": [float(v) for v in t.detach().reshape(-1)]}


def conv_case(name, batch, cin, cout, size, kernel, stride, padding, bias, salt):
    conv = torch.nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=bias,
                           dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(values(conv.weight.shape, salt + 1, 0.5))
        if bias:
            conv.bias.copy_(values(conv.bias.shape, salt + 2, 0.5))
    x = values((batch, cin) + size, salt).requires_grad_(True)
    y = conv(x)
    g = values(tuple(y.shape), salt + 3)
    y.backward(g)
    return {
        "name": name,
        "in_channels": cin,
        "out_channels": cout,
        "kernel_size": kernel,
        "stride": stride,
        "padding": padding,
        "bias": bias,
        "input": flat(x),
        "weight": flat(conv.weight),
        "bias_value": flat(conv.bias) if bias else None,
        "grad_output": flat(g),
        "output": flat(y),
        "grad_input": flat(x.grad),
        "grad_weight": flat(conv.weight.grad),
        "grad_bias": flat(conv.bias.grad) if bias else None,
    }


def pool_case(name, batch, channels, size, kernel, stride, padding, salt, ties=False):
    pool = torch.nn.MaxPool2d(kernel, stride=stride, padding=padding)
    shape = (batch, channels) + size
    x = small_integers(shape, salt) if ties else values(shape, salt)
    x = x.requires_grad_(True)
    y = pool(x)
    g = values(tuple(y.shape), salt + 3)
    y.backward(g)
    return {
        "name": name,
        "kernel_size": kernel,
        "stride": stride if stride is not None else kernel,
        "padding": padding,
        "input": flat(x),
        "grad_output": flat(g),
        "output": flat(y),
        "grad_input": flat(x.grad),
    }


def flatten_case(name, shape, salt):
    x = values(shape, salt).requires_grad_(True)
    y = torch.nn.Flatten()(x)
    g = values(tuple(y.shape), salt + 3)
    y.backward(g)
    return {
        "name": name,
        "input": flat(x),
        "grad_output": flat(g),
        "output": flat(y),
        "grad_input": flat(x.grad),
    }


def main():
    conv = [
        # name, batch, in, out, (H, W), kernel, stride, padding, bias, salt
        conv_case("odd_7x5_pad0_stride1", 2, 3, 4, (7, 5), 3, 1, 0, True, 10),
        conv_case("odd_7x5_pad1_stride2", 2, 3, 4, (7, 5), 3, 2, 1, True, 20),
        conv_case("odd_7x5_pad0_stride2_no_bias", 3, 2, 5, (7, 5), 3, 2, 0, False, 30),
        conv_case("batch_of_one_pad1", 1, 1, 3, (5, 5), 3, 1, 1, True, 40),
        conv_case("batch_of_one_pad1_stride2_no_bias", 1, 3, 2, (6, 7), 3, 2, 1, False, 50),
        conv_case("kernel_fills_padded_input", 2, 2, 3, (3, 3), 5, 1, 1, True, 60),
        conv_case("even_kernel4_stride2_pad1", 2, 2, 3, (8, 9), 4, 2, 1, True, 70),
        conv_case("pointwise_kernel1_stride3", 2, 4, 3, (7, 8), 1, 3, 0, True, 80),
        conv_case("mnist_like_1to8_pad1", 2, 1, 8, (12, 12), 3, 1, 1, True, 90),
    ]
    pool = [
        # name, batch, channels, (H, W), kernel, stride (None: = kernel), padding, salt
        pool_case("k2_default_stride_odd_7x5", 2, 3, (7, 5), 2, None, 0, 110),
        pool_case("k3_stride2_pad1_odd_7x5", 2, 2, (7, 5), 3, 2, 1, 120),
        pool_case("k3_stride1_overlapping", 1, 2, (6, 5), 3, 1, 0, 130),
        pool_case("ties_k2_default_stride", 2, 2, (6, 7), 2, None, 0, 140, ties=True),
        pool_case("ties_k3_stride1_pad1_overlapping", 2, 2, (5, 6), 3, 1, 1, 150, ties=True),
        pool_case("ties_k3_stride2_pad1", 1, 3, (7, 5), 3, 2, 1, 160, ties=True),
        pool_case("batch_of_one_k2_stride1_pad1", 1, 1, (4, 5), 2, 1, 1, 170),
    ]
    flatten = [
        flatten_case("nchw_2x3x4x5", (2, 3, 4, 5), 210),
        flatten_case("batch_of_one_1x2x3x1", (1, 2, 3, 1), 220),
    ]
    fixtures = {
        "torch_version": torch.__version__,
        "conv2d": conv,
        "max_pool2d": pool,
        "flatten": flatten,
    }
    OUT.write_text(json.dumps(fixtures) + "\n")
    print(f"wrote {OUT} ({len(conv)} conv, {len(pool)} pool, {len(flatten)} flatten cases)")


if __name__ == "__main__":
    main()
