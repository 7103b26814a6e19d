"""PyTorch reference values for reg-dropout's parity test (tests/parity.rs).

Run with a Python that has torch:

    python3 crates/reg-dropout/tests/data/make_fixtures.py

torch.nn.functional.dropout1d on (N, C, L) and dropout2d on (N, C, H, W), in float64, in
training mode. torch draws its own mask; the mask it drew (one keep/drop decision per
(sample, channel), read back from the output, the input having no zeros) is written into the
JSON with the input, the output, the upstream gradient and the input gradient, so the Rust test
replays the same mask through `Dropout::forward_with_mask`.
"""

import json
import pathlib

import torch
import torch.nn.functional as F

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "dropout_torch.json"


def flat(t):
    return [float(v) for v in t.detach().reshape(-1)]


def case(name, fn, shape, p, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    # Inputs bounded away from zero, so a zero in the output means "dropped".
    x = torch.rand(*shape, generator=gen, dtype=torch.float64) + 0.5
    x = x * torch.where(torch.rand(*shape, generator=gen) < 0.5, -1.0, 1.0).double()
    g = torch.randn(*shape, generator=gen, dtype=torch.float64)
    x.requires_grad_(True)
    y = fn(x, p=p, training=True)
    y.backward(g)
    kept = (y.detach() != 0).reshape(shape[0], shape[1], -1)
    # One decision per (sample, channel): every element of a channel agrees.
    assert bool((kept.all(dim=2) | ~kept.any(dim=2)).all())
    keep = kept.all(dim=2)
    assert 0 < int(keep.sum()) < keep.numel(), "mask keeps some and drops some"
    return {
        "name": name,
        "shape": list(shape),
        "p": p,
        "keep": [bool(k) for k in keep.reshape(-1)],
        "input": flat(x),
        "output": flat(y),
        "grad_output": flat(g),
        "grad_input": flat(x.grad),
    }


def main():
    cases = [
        case("dropout1d_ncl", F.dropout1d, (4, 5, 6), p=0.3, seed=1),
        case("dropout2d_nchw", F.dropout2d, (3, 4, 3, 5), p=0.5, seed=2),
        case("dropout2d_p_0.2", F.dropout2d, (3, 6, 2, 2), p=0.2, seed=4),
    ]
    doc = {
        "generator": "crates/reg-dropout/tests/data/make_fixtures.py",
        "torch_version": torch.__version__,
        "dtype": "float64",
        "cases": cases,
    }
    OUT.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
