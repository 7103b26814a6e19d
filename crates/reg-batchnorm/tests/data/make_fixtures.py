"""PyTorch reference values for reg-batchnorm's parity test (tests/parity.rs).

Run from anywhere with a Python that has torch:

    python3 crates/reg-batchnorm/tests/data/make_fixtures.py

Everything is computed by torch.nn.BatchNorm1d in float64. Inputs and upstream gradients come
from a seeded torch.Generator and are written into the JSON, so the Rust test never regenerates
them. For each case: several Train steps (output, grad_input, grad_weight, grad_bias for the given
grad_output, then running_mean / running_var / num_batches_tracked after the step), then one Eval
step (output and gradients through the running statistics).

The second file, batchnorm_shapes_torch.json, holds the per-channel shapes: BatchNorm1d on
(N, C, L) and BatchNorm2d on (N, C, H, W) (tests/parity.rs, `*_shapes_*` tests), tensors flat
in row-major order with their shape: two Train steps then one Eval step per case; a case whose
channels hold one value each records the error torch raises instead.
"""

import json
import pathlib

import torch

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "batchnorm_torch.json"
SHAPES_OUT = HERE / "batchnorm_shapes_torch.json"


def matrix(t):
    return [[float(v) for v in row] for row in t]


def vector(t):
    return [float(v) for v in t]


def step(bn, x, g):
    """One forward + backward; returns what happened as a dict."""
    x = x.clone().requires_grad_(True)
    bn.weight.grad = None
    bn.bias.grad = None
    y = bn(x)
    y.backward(g)
    return {
        "input": matrix(x.detach()),
        "grad_output": matrix(g),
        "output": matrix(y.detach()),
        "grad_input": matrix(x.grad),
        "grad_weight": vector(bn.weight.grad),
        "grad_bias": vector(bn.bias.grad),
    }


def case(name, seed, rows, features, momentum=0.1, eps=1e-5, steps=3,
         constant_column=None, affine_random=False, offset=0.0):
    gen = torch.Generator().manual_seed(seed)
    bn = torch.nn.BatchNorm1d(features, eps=eps, momentum=momentum, dtype=torch.float64)
    if affine_random:
        with torch.no_grad():
            bn.weight.copy_(0.5 + torch.rand(features, generator=gen, dtype=torch.float64))
            bn.bias.copy_(torch.randn(features, generator=gen, dtype=torch.float64))

    def batch():
        x = offset + 2.0 * torch.randn(rows, features, generator=gen, dtype=torch.float64) + 0.7
        if constant_column is not None:
            x[:, constant_column] = 3.0
        return x

    def grad():
        return torch.randn(rows, features, generator=gen, dtype=torch.float64)

    bn.train()
    train_steps = []
    for _ in range(steps):
        record = step(bn, batch(), grad())
        record["running_mean"] = vector(bn.running_mean)
        record["running_var"] = vector(bn.running_var)
        record["num_batches_tracked"] = int(bn.num_batches_tracked)
        train_steps.append(record)

    bn.eval()
    eval_step = step(bn, batch(), grad())
    return {
        "name": name,
        "num_features": features,
        "momentum": momentum,
        "eps": eps,
        "weight": vector(bn.weight.detach()),
        "bias": vector(bn.bias.detach()),
        "train_steps": train_steps,
        "eval_step": eval_step,
    }


def flat(t):
    return [float(v) for v in t.detach().reshape(-1)]


def shape_case(name, shape, seed, constant_channel=None, train_steps=2):
    gen = torch.Generator().manual_seed(seed)
    channels = shape[1]
    module = torch.nn.BatchNorm1d if len(shape) == 3 else torch.nn.BatchNorm2d
    bn = module(channels, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.copy_(0.5 + torch.rand(channels, generator=gen, dtype=torch.float64))
        bn.bias.copy_(torch.randn(channels, generator=gen, dtype=torch.float64))
    out = {
        "name": name,
        "shape": list(shape),
        "gamma": flat(bn.weight),
        "beta": flat(bn.bias),
        "steps": [],
    }
    modes = ["train"] * train_steps + ["eval"]
    for mode in modes:
        x = 1.5 * torch.randn(*shape, generator=gen, dtype=torch.float64) + 0.3
        if constant_channel is not None:
            x[:, constant_channel] = 2.5
        g = torch.randn(*shape, generator=gen, dtype=torch.float64)
        bn.train(mode == "train")
        x.requires_grad_(True)
        bn.weight.grad = None
        bn.bias.grad = None
        try:
            y = bn(x)
        except ValueError as error:
            out["error"] = str(error)
            return out
        y.backward(g)
        out["steps"].append({
            "mode": mode,
            "input": flat(x),
            "grad_output": flat(g),
            "output": flat(y),
            "grad_input": flat(x.grad),
            "grad_weight": flat(bn.weight.grad),
            "grad_bias": flat(bn.bias.grad),
            "running_mean": flat(bn.running_mean),
            "running_var": flat(bn.running_var),
            "num_batches_tracked": int(bn.num_batches_tracked),
        })
    return out


def main():
    torch.set_default_dtype(torch.float64)
    cases = [
        case("default", seed=1, rows=8, features=4),
        case("momentum_0.3_eps_1e-3", seed=2, rows=6, features=3, momentum=0.3, eps=1e-3),
        case("constant_column", seed=3, rows=8, features=3, constant_column=1),
        case("non_default_gamma_beta", seed=4, rows=5, features=4, affine_random=True),
        case("large_offset", seed=5, rows=8, features=2, offset=1000.0),
    ]
    doc = {
        "generator": "crates/reg-batchnorm/tests/data/make_fixtures.py",
        "torch_version": torch.__version__,
        "dtype": "float64",
        "cases": cases,
    }
    OUT.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")

    shape_cases = [
        shape_case("batchnorm1d_ncl", (4, 3, 5), seed=1),
        shape_case("batchnorm2d_nchw", (2, 3, 3, 4), seed=2),
        shape_case("batchnorm2d_batch_of_one", (1, 2, 2, 3), seed=3),
        shape_case("batchnorm2d_constant_channel", (3, 3, 2, 2), seed=4, constant_channel=1),
        shape_case("batchnorm2d_one_value_per_channel", (1, 2, 1, 1), seed=5),
    ]
    doc = {
        "generator": "crates/reg-batchnorm/tests/data/make_fixtures.py",
        "torch_version": torch.__version__,
        "dtype": "float64",
        "cases": shape_cases,
    }
    SHAPES_OUT.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {SHAPES_OUT} ({SHAPES_OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
