"""PyTorch reference values for reg-schedule.

Run with:  python3 crates/reg-schedule/tests/data/make_fixtures.py
Writes schedules.json next to this file. Every case steps a real torch scheduler on a dummy
float64 SGD optimizer and records the learning rate in force during each epoch (for
ReduceLROnPlateau: the lr after each `step(metric)`). The settings and the metric sequences are
written into the JSON, so the Rust test builds its schedules from the file alone. The defaults
of the schedulers' optional arguments are written too (`torch_defaults`), read from their
signatures, for the test that the configs' defaults are PyTorch's.
"""
import inspect
import json
import math
import pathlib
import warnings

import torch
from torch.optim import SGD
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    ExponentialLR,
    LinearLR,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)

warnings.filterwarnings("ignore")  # SequentialLR's deprecation chatter
torch.set_default_dtype(torch.float64)


def optimizer(lr):
    return SGD([torch.zeros(1, requires_grad=True)], lr=lr)


def run(opt, sched, epochs):
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def tutorial_warmup_cosine(initial_lr, epoch, warmup, total):
    # The tutorial's function, verbatim apart from math.cos for np.cos.
    if epoch < warmup:
        return initial_lr * (epoch + 1) / warmup
    return initial_lr * 0.5 * (1 + math.cos(math.pi * (epoch - warmup) / (total - warmup)))


cases = []

for lr, step_size, gamma, epochs in [(1e-3, 10, 0.5, 40), (0.1, 3, 0.7, 20)]:
    opt = optimizer(lr)
    cases.append(dict(kind="step_decay", initial_lr=lr, step_size=step_size, gamma=gamma,
                      lrs=run(opt, StepLR(opt, step_size, gamma), epochs)))

for lr, gamma, epochs in [(1e-3, 0.95, 100), (0.5, 0.8, 40)]:
    opt = optimizer(lr)
    cases.append(dict(kind="exponential_decay", initial_lr=lr, gamma=gamma,
                      lrs=run(opt, ExponentialLR(opt, gamma), epochs)))

# Recorded for steps 0..=T only: torch's CosineAnnealingLR climbs back up after T_max,
# ours holds min_lr (the Rust test checks that separately).
for lr, t_max, eta_min in [(1e-3, 100, 0.0), (0.1, 50, 1e-3), (0.05, 7, 0.01)]:
    opt = optimizer(lr)
    cases.append(dict(kind="cosine", max_lr=lr, min_lr=eta_min, period=t_max,
                      lrs=run(opt, CosineAnnealingLR(opt, t_max, eta_min), t_max + 1)))

for lr, start, end, iters, epochs in [(0.01, 0.25, 1.0, 8, 15), (0.2, 1.0, 0.1, 10, 14),
                                      (1e-3, 0.1, 1.0, 4, 8)]:
    opt = optimizer(lr)
    cases.append(dict(kind="linear", start_lr=lr * start, end_lr=lr * end, steps=iters,
                      lrs=run(opt, LinearLR(opt, start, end, iters), epochs)))

# warmup + cosine as the tutorial (peak 1e-3, warmup 5, total 100) and the pipeline
# (peak 1e-3, warmup 3, total 30) use it: LinearLR from peak/warmup reaching peak at step
# warmup-1, then CosineAnnealingLR over total-warmup steps down to 0.
for peak, warmup, total in [(1e-3, 5, 100), (1e-3, 3, 30)]:
    opt = optimizer(peak)
    ramp = LinearLR(opt, 1.0 / warmup, 1.0, warmup - 1)
    cosine = CosineAnnealingLR(opt, total - warmup, 0.0)
    seq = SequentialLR(opt, [ramp, cosine], milestones=[warmup])
    cases.append(dict(kind="warmup_cosine", peak_lr=peak, warmup_steps=warmup, total_steps=total,
                      lrs=run(opt, seq, total),
                      tutorial=[tutorial_warmup_cosine(peak, e, warmup, total)
                                for e in range(total)]))

# ReduceLROnPlateau: metric sequences from formulas: a fast improvement, then a plateau with
# small wiggles (some below the relative threshold), then a second drop.
def metric_min(t):
    if t < 8:
        return 1.0 / (1 + t)
    if t < 30:
        return 0.12 + 0.002 * math.sin(1.7 * t)
    return 0.12 * 0.9 ** (t - 29) + 0.001 * math.cos(t)


metrics_min = [metric_min(t) for t in range(60)]
metrics_max = [1.0 - m for m in metrics_min]
metrics_flat = [1.0 / (1 + t) if t < 5 else 0.2 for t in range(40)]
plateau_settings = [
    dict(mode="min", factor=0.5, patience=2, threshold=1e-2, cooldown=1, min_lr=1e-4,
         initial_lr=0.1, metrics=metrics_min),
    # PyTorch's defaults
    dict(mode="min", factor=0.1, patience=10, threshold=1e-4, cooldown=0, min_lr=0.0,
         initial_lr=1e-3, metrics=metrics_flat),
    dict(mode="max", factor=0.3, patience=1, threshold=1e-3, cooldown=3, min_lr=1e-3,
         initial_lr=0.05, metrics=metrics_max),
]
for s in plateau_settings:
    opt = optimizer(s["initial_lr"])
    sched = ReduceLROnPlateau(opt, mode=s["mode"], factor=s["factor"], patience=s["patience"],
                              threshold=s["threshold"], threshold_mode="rel",
                              cooldown=s["cooldown"], min_lr=s["min_lr"])
    after = []
    for m in s["metrics"]:
        opt.step()
        sched.step(m)
        after.append(opt.param_groups[0]["lr"])
    cases.append(dict(kind="plateau", **s, lrs=after))


def defaults(scheduler, *names):
    parameters = inspect.signature(scheduler).parameters
    return {name: parameters[name].default for name in names}


torch_defaults = dict(
    StepLR=defaults(StepLR, "gamma"),
    CosineAnnealingLR=defaults(CosineAnnealingLR, "eta_min"),
    ReduceLROnPlateau=defaults(ReduceLROnPlateau, "mode", "factor", "patience", "threshold",
                               "threshold_mode", "cooldown", "min_lr", "eps"),
)

out = pathlib.Path(__file__).with_name("schedules.json")
out.write_text(json.dumps(dict(torch_version=torch.__version__, torch_defaults=torch_defaults,
                               cases=cases), indent=1) + "\n")
print(f"wrote {out} ({len(cases)} cases)")
