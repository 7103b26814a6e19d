"""Reference values for reg-pipeline's softmax cross-entropy, computed by PyTorch in float64.

Run: python3 crates/reg-pipeline/tests/data/make_fixtures.py
Writes softmax_cross_entropy.json next to this script. Inputs come from a seeded torch
generator and are written into the JSON, so the Rust test needs no generator of its own.
"""
import json
import pathlib

import torch

torch.set_default_dtype(torch.float64)
gen = torch.Generator().manual_seed(20261126)


def case(name, logits, labels):
    logits = logits.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(logits, labels)  # mean over the batch
    loss.backward()
    return {
        "name": name,
        "logits": logits.detach().tolist(),
        "labels": labels.tolist(),
        "loss": loss.item(),
        "grad": logits.grad.tolist(),
    }


cases = [
    case("random_8x10", torch.randn(8, 10, generator=gen) * 3, torch.randint(0, 10, (8,), generator=gen)),
    case("one_row", torch.randn(1, 10, generator=gen), torch.tensor([3])),
    case("extreme_1000", torch.tensor([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0], [0.0, 0.0, 0.0]]),
         torch.tensor([1, 2, 0])),
    case("large_offset", torch.randn(5, 4, generator=gen) + 500.0, torch.randint(0, 4, (5,), generator=gen)),
]
out = {"torch_version": torch.__version__, "cases": cases}
path = pathlib.Path(__file__).with_name("softmax_cross_entropy.json")
path.write_text(json.dumps(out, indent=1))
print(f"wrote {path}")
