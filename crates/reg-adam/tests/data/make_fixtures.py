"""Golden trajectories for reg-adam, computed by PyTorch's Adam/AdamW in float64.

Run from anywhere with a Python that has torch:

    python3 crates/reg-adam/tests/data/make_fixtures.py

Writes `adam_trajectories.json` next to this script. Every input (initial values, per-step
gradients, per-step learning rates) is written into the JSON, so the Rust test needs no
generator. Gradients come from a seeded torch generator; the learning rates follow a linear
warmup then cosine decay, like the pipeline's schedule.

Parameters, in reg's (in, out) layout (the Rust side uses them as given, no transpose needed
since Adam is element-wise):
  - "w": 3x4 weight, weight decay applies      (PyTorch: param group with weight_decay=λ)
  - "b": 1x4 bias, weight decay does not apply (PyTorch: param group with weight_decay=0)

The single-tensor path (foreach=False) is used: it is the loop reg-adam follows operation for
operation (lerp for the first moment, mul/addcmul for the second, denom = sqrt(v)/sqrt(bc2)+eps,
param += -(lr/bc1) * m/denom).

A second file, `adam_mixed_ranks.json`, holds trajectories over parameters of several ranks, as a
small CNN has them: a (4, 3, 2, 2) convolution kernel and a (5, 12) linear weight (both
decaying) and their 1-D biases (4,) and (5,) (not decaying), for Adam with coupled decay, AdamW
and AMSGrad (coupled decay), same betas, eps and learning rates.
"""

import json
import math
import pathlib

import torch

torch.set_default_dtype(torch.float64)

STEPS = 6
BETAS = (0.9, 0.999)
EPS = 1e-8
DECAY = 0.05


def lr_at(step):
    """Linear warmup over 2 steps to 1e-2, then cosine to 1e-3 over the rest."""
    base, final, warmup = 1e-2, 1e-3, 2
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / (STEPS - 1 - warmup)
    return final + 0.5 * (base - final) * (1 + math.cos(math.pi * t))


def make_inputs():
    gen = torch.Generator().manual_seed(20240607)
    w0 = torch.randn(3, 4, generator=gen)
    b0 = torch.randn(1, 4, generator=gen) * 0.1
    grads = []
    for step in range(STEPS):
        gw = torch.randn(3, 4, generator=gen) * 0.5
        gb = torch.randn(1, 4, generator=gen) * 0.5
        if step == 3:
            # A zero gradient element and a tiny one exercise eps and the AMSGrad max.
            gw[0, 0] = 0.0
            gb[0, 1] = 1e-9
        grads.append((gw, gb))
    return w0, b0, grads


def trajectory(w0, b0, grads, kind, decay, amsgrad):
    w = torch.nn.Parameter(w0.clone())
    b = torch.nn.Parameter(b0.clone())
    cls = torch.optim.AdamW if kind == "decoupled" else torch.optim.Adam
    groups = [
        {"params": [w], "weight_decay": decay},
        {"params": [b], "weight_decay": 0.0},
    ]
    opt = cls(groups, lr=lr_at(0), betas=BETAS, eps=EPS, amsgrad=amsgrad, foreach=False)
    out = []
    for step, (gw, gb) in enumerate(grads):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        w.grad = gw.clone()
        b.grad = gb.clone()
        opt.step()
        out.append({"w": w.detach().tolist(), "b": b.detach().tolist()})
    return out


MIXED_SHAPES = {"conv.weight": (4, 3, 2, 2), "conv.bias": (4,), "fc.weight": (5, 12), "fc.bias": (5,)}
MIXED_DECAYS = {"conv.weight": True, "conv.bias": False, "fc.weight": True, "fc.bias": False}


def mixed_ranks():
    gen = torch.Generator().manual_seed(20261130)
    initial = {name: torch.randn(*shape, generator=gen) for name, shape in MIXED_SHAPES.items()}
    grads = [
        {name: torch.randn(*shape, generator=gen) * 0.5 for name, shape in MIXED_SHAPES.items()}
        for _ in range(STEPS)
    ]

    def run(kind, amsgrad):
        params = {name: torch.nn.Parameter(value.clone()) for name, value in initial.items()}
        cls = torch.optim.AdamW if kind == "decoupled" else torch.optim.Adam
        groups = [
            {"params": [p for n, p in params.items() if MIXED_DECAYS[n]], "weight_decay": DECAY},
            {"params": [p for n, p in params.items() if not MIXED_DECAYS[n]], "weight_decay": 0.0},
        ]
        opt = cls(groups, lr=lr_at(0), betas=BETAS, eps=EPS, amsgrad=amsgrad, foreach=False)
        out = []
        for step, grad in enumerate(grads):
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            for name, p in params.items():
                p.grad = grad[name].clone()
            opt.step()
            out.append({name: p.detach().reshape(-1).tolist() for name, p in params.items()})
        return out

    flat = lambda t: t.reshape(-1).tolist()
    return {
        "generator": f"torch {torch.__version__}, float64, torch.optim.Adam/AdamW(foreach=False)",
        "beta1": BETAS[0],
        "beta2": BETAS[1],
        "eps": EPS,
        "decay": DECAY,
        # What reg_adam::DEFAULT_LR must equal: the lr torch.optim.Adam uses when given none.
        "torch_default_lr": torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))]).defaults["lr"],
        "lrs": [lr_at(s) for s in range(STEPS)],
        "params": [
            {"name": n, "shape": list(MIXED_SHAPES[n]), "decays": MIXED_DECAYS[n], "initial": flat(initial[n])}
            for n in MIXED_SHAPES
        ],
        "grads": [{n: flat(g[n]) for n in MIXED_SHAPES} for g in grads],
        "cases": [
            {"name": name, "weight_decay": kind, "amsgrad": amsgrad, "trajectory": run(kind, amsgrad)}
            for name, kind, amsgrad in [
                ("adam_coupled", "coupled", False),
                ("adamw", "decoupled", False),
                ("amsgrad_coupled", "coupled", True),
            ]
        ],
    }


def main():
    w0, b0, grads = make_inputs()
    cases = [
        ("adam", "none", 0.0, False),
        ("adam_coupled", "coupled", DECAY, False),
        ("adamw", "decoupled", DECAY, False),
        ("amsgrad", "none", 0.0, True),
        ("adamw_amsgrad", "decoupled", DECAY, True),
    ]
    fixture = {
        "generator": f"torch {torch.__version__}, float64, torch.optim.Adam/AdamW(foreach=False)",
        "beta1": BETAS[0],
        "beta2": BETAS[1],
        "eps": EPS,
        "lrs": [lr_at(s) for s in range(STEPS)],
        "w0": w0.tolist(),
        "b0": b0.tolist(),
        "grads": [{"w": gw.tolist(), "b": gb.tolist()} for gw, gb in grads],
        "cases": [
            {
                "name": name,
                "weight_decay": kind,
                "decay": decay,
                "amsgrad": amsgrad,
                "trajectory": trajectory(w0, b0, grads, kind, decay, amsgrad),
            }
            for name, kind, decay, amsgrad in cases
        ],
    }
    path = pathlib.Path(__file__).with_name("adam_trajectories.json")
    path.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes)")

    path = pathlib.Path(__file__).with_name("adam_mixed_ranks.json")
    path.write_text(json.dumps(mixed_ranks(), indent=1) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
