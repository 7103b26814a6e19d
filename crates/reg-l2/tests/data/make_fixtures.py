"""PyTorch parity fixture for reg-l2 (float64).

Shows that one SGD step with coupled weight_decay = λ/m on a loss L equals one SGD step on
L + λ/(2m)·Σ w² (weights only; the bias does not decay). Run from anywhere:

    python3 crates/reg-l2/tests/data/make_fixtures.py

A second file, `l2_kernel.json`, does the same for a (4, 3, 3, 3) convolution kernel (decaying)
and its (4,) bias (not decaying): the penalty λ/(2m)·Σ w², the gradient of the data loss plus
penalty, and the SGD step with coupled weight_decay = λ/m.
"""
import json
import os

import torch

torch.set_default_dtype(torch.float64)
gen = torch.Generator().manual_seed(20240501)

lam, lr, m = 0.3, 0.1, 8
x = torch.randn(m, 4, generator=gen)
target = torch.randn(m, 3, generator=gen)
w0 = torch.randn(4, 3, generator=gen)  # (in, out), as in reg
b0 = torch.randn(1, 3, generator=gen)


def data_loss(w, b):
    return ((x @ w + b - target) ** 2).mean()


def fresh():
    return w0.clone().requires_grad_(True), b0.clone().requires_grad_(True)


# Gradient of the data loss alone (what backward writes before L2 adds its part).
w, b = fresh()
data_loss(w, b).backward()
grad_w, grad_b = w.grad.clone(), b.grad.clone()

# (a) coupled weight decay on the weight only.
w, b = fresh()
opt = torch.optim.SGD(
    [{"params": [w], "weight_decay": lam / m}, {"params": [b], "weight_decay": 0.0}], lr=lr
)
data_loss(w, b).backward()
opt.step()
w_after_wd, b_after_wd = w.detach().clone(), b.detach().clone()

# (b) explicit penalty, no weight decay.
w, b = fresh()
opt = torch.optim.SGD([w, b], lr=lr)
penalty = lam / (2 * m) * (w**2).sum()
(data_loss(w, b) + penalty).backward()
opt.step()

out = {
    "lambda": lam,
    "lr": lr,
    "batch_size": m,
    "weight_decay": lam / m,
    "w": w0.tolist(),
    "b": b0.tolist(),
    "grad_w": grad_w.tolist(),
    "grad_b": grad_b.tolist(),
    "penalty": penalty.item(),
    "w_after_wd": w_after_wd.tolist(),
    "b_after_wd": b_after_wd.tolist(),
    "w_after_penalty": w.detach().tolist(),
    "b_after_penalty": b.detach().tolist(),
    "torch_version": torch.__version__,
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sgd_weight_decay.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
print("wrote", path)


# ---- A 4-D convolution kernel ----
kernel0 = torch.randn(4, 3, 3, 3, generator=gen)
kbias0 = torch.randn(4, generator=gen)
images = torch.randn(m, 3, 5, 5, generator=gen)
ktarget = torch.randn(m, 4, 3, 3, generator=gen)


def conv_loss(k, kb):
    return ((torch.nn.functional.conv2d(images, k, kb) - ktarget) ** 2).mean()


k, kb = kernel0.clone().requires_grad_(True), kbias0.clone().requires_grad_(True)
conv_loss(k, kb).backward()
kgrad, kbgrad = k.grad.clone(), kb.grad.clone()

k, kb = kernel0.clone().requires_grad_(True), kbias0.clone().requires_grad_(True)
kpenalty = lam / (2 * m) * (k**2).sum()
(conv_loss(k, kb) + kpenalty).backward()
kgrad_with_penalty, kbgrad_with_penalty = k.grad.clone(), kb.grad.clone()

k, kb = kernel0.clone().requires_grad_(True), kbias0.clone().requires_grad_(True)
opt = torch.optim.SGD(
    [{"params": [k], "weight_decay": lam / m}, {"params": [kb], "weight_decay": 0.0}], lr=lr
)
conv_loss(k, kb).backward()
opt.step()

flat = lambda t: t.detach().reshape(-1).tolist()
kernel_out = {
    "lambda": lam,
    "lr": lr,
    "batch_size": m,
    "kernel_shape": list(kernel0.shape),
    "kernel": flat(kernel0),
    "bias": flat(kbias0),
    "grad_kernel": flat(kgrad),
    "grad_bias": flat(kbgrad),
    "penalty": kpenalty.item(),
    "grad_kernel_with_penalty": flat(kgrad_with_penalty),
    "grad_bias_with_penalty": flat(kbgrad_with_penalty),
    "kernel_after_wd": flat(k),
    "bias_after_wd": flat(kb),
    "torch_version": torch.__version__,
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "l2_kernel.json")
with open(path, "w") as f:
    json.dump(kernel_out, f, indent=1)
