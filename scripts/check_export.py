"""Loads a model exported by `pipeline --export` into the equivalent PyTorch nn.Sequential
(load_state_dict, strict=True), predicts the MNIST test set and compares with reg's logits.

Run from the repository root, with a Python that has torch and numpy (MNIST from reg's cache,
~/.cache/reg/mnist on Linux, where the pipeline downloaded it; or any folder with the files):
    mkdir -p runs
    cargo run --release --example pipeline -- --epochs 3 --warmup 1 --export runs/m.safetensors
    cargo run --release --example evaluate -- --model runs/m.safetensors \
        --logits-out runs/reg_logits.npy
    python3 scripts/check_export.py --model runs/m.safetensors \
        --logits runs/reg_logits.npy --data-dir ~/.cache/reg/mnist

The same for the CNN: `--model cnn` on the pipeline (the file says which model it holds).

Exits non-zero when prediction agreement is below 99.9 %.
"""

import argparse
import gzip
import json
import pathlib
import sys

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file


def read_idx(path: pathlib.Path) -> np.ndarray:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def find(data_dir: pathlib.Path, name: str) -> pathlib.Path:
    for candidate in (data_dir / f"{name}.gz", data_dir / name):
        if candidate.is_file():
            return candidate
    sys.exit(f"{name}(.gz) not found in {data_dir}")


def build_cnn(config: dict) -> torch.nn.Sequential:
    """The nn.Sequential reg's CnnConfig corresponds to (layers left out take no index)."""
    k, bn = config["kernel_size"], config["batch_norm"]
    channels, height, width = config["input"]
    layers = []
    for out in config["channels"]:
        layers.append(torch.nn.Conv2d(channels, out, k, padding=k // 2, bias=not bn))
        if bn:
            layers.append(torch.nn.BatchNorm2d(out))
        layers += [torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
        channels, height, width = out, height // 2, width // 2
    if config["channel_dropout"] > 0:
        layers.append(torch.nn.Dropout2d(config["channel_dropout"]))
    layers += [torch.nn.Flatten(), torch.nn.Linear(channels * height * width, config["hidden"])]
    if bn:
        layers.append(torch.nn.BatchNorm1d(config["hidden"]))
    layers.append(torch.nn.ReLU())
    if config["dropout"] > 0:
        layers.append(torch.nn.Dropout(config["dropout"]))
    layers.append(torch.nn.Linear(config["hidden"], config["classes"]))
    return torch.nn.Sequential(*layers)


def build(config: dict) -> torch.nn.Sequential:
    """The nn.Sequential reg's Mlp corresponds to (dropout layers only where p > 0)."""
    sizes, layers = config["sizes"], []
    for (n_in, n_out), p in zip(zip(sizes, sizes[1:]), config["dropout"]):
        layers.append(torch.nn.Linear(n_in, n_out))
        if config["batch_norm"]:
            layers.append(torch.nn.BatchNorm1d(n_out))
        layers.append(torch.nn.ReLU())
        if p > 0:
            layers.append(torch.nn.Dropout(p))
    layers.append(torch.nn.Linear(sizes[-2], sizes[-1]))
    return torch.nn.Sequential(*layers)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, type=pathlib.Path)
    parser.add_argument("--logits", required=True, type=pathlib.Path)
    parser.add_argument("--data-dir", required=True, type=pathlib.Path)
    args = parser.parse_args()

    with safe_open(str(args.model), framework="pt") as f:
        metadata = f.metadata()
    if "reg.model_config" in metadata:
        (kind, config), = json.loads(metadata["reg.model_config"]).items()
        if kind != "cnn":
            sys.exit(f"no PyTorch twin for a `{kind}` model")
        model, shape = build_cnn(config), (-1, *config["input"])
    else:
        model = build(json.loads(metadata["reg.mlp_config"]))
        shape = (-1, 784)
    model.load_state_dict(load_file(str(args.model)), strict=True)
    model.eval()

    images = read_idx(find(args.data_dir, "t10k-images-idx3-ubyte"))
    labels = read_idx(find(args.data_dir, "t10k-labels-idx1-ubyte"))
    x = torch.from_numpy(images.reshape(shape).astype(np.float32) / 255.0)
    with torch.no_grad():
        torch_logits = model(x).numpy()
    reg_logits = np.load(args.logits)
    assert reg_logits.shape == torch_logits.shape, (reg_logits.shape, torch_logits.shape)

    torch_pred = torch_logits.argmax(axis=1)
    reg_pred = reg_logits.argmax(axis=1)
    agreement = float((torch_pred == reg_pred).mean())
    max_diff = float(np.abs(torch_logits - reg_logits).max())
    print(f"torch test accuracy {100 * (torch_pred == labels).mean():.2f}%")
    print(f"reg   test accuracy {100 * (reg_pred == labels).mean():.2f}%")
    print(f"prediction agreement {100 * agreement:.3f}% ({int((torch_pred == reg_pred).sum())} of {len(labels)})")
    print(f"max |logit difference| {max_diff:.3e} (largest |logit| {np.abs(torch_logits).max():.1f})")
    if agreement < 0.999:
        sys.exit("agreement below 99.9 %")


if __name__ == "__main__":
    main()
