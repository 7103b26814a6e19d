#!/usr/bin/env python3
"""The `pipeline` example's MNIST models and training, in PyTorch (float32, CPU).

`--model mlp` (default): 784-256-128-10 MLP: Linear -> BatchNorm1d -> ReLU -> Dropout(0.3),
Linear -> BatchNorm1d -> ReLU -> Dropout(0.2), Linear.

`--model cnn`: input (N, 1, 28, 28); Conv2d(1, 32, 3, padding 1, no bias) -> BatchNorm2d -> ReLU
-> MaxPool2d(2), Conv2d(32, 64, 3, padding 1, no bias) -> BatchNorm2d -> ReLU -> MaxPool2d(2) ->
Dropout2d(0.1), Flatten, Linear(3136, 128) -> BatchNorm1d -> ReLU -> Dropout(0.3),
Linear(128, 10). One nn.Sequential with reg's layer indices, so state_dict names match reg's
(`0.weight`, `1.running_mean`, ..., `14.bias`). Defaults epochs 15, warmup 2, patience 5.

Both: images scaled to [0, 1], nothing else; softmax cross-entropy. He init (kaiming normal,
fan_in, relu gain: std sqrt(2 / fan_in)) of the Linear and Conv2d weights, zero biases,
BatchNorm gamma 1, beta 0. Adam (betas 0.9/0.999, eps 1e-8) with coupled L2 weight decay
`l2 / batch_size` on the Linear and Conv2d weights only (not biases, not BatchNorm parameters).
Per-epoch lr: linear warmup then cosine over `--epochs`. Validation = last 5,000 training
images; early stopping on validation loss, best weights restored, test set evaluated at the end.

Reads the four MNIST `*-ubyte.gz` IDX files itself (gzip + numpy; no torchvision) and writes
the same metrics JSON as `target/release/examples/pipeline --metrics-out`.

Examples (with a Python that has torch and numpy):
    python3 scripts/torch_mnist.py --threads 2 --seed 0 --metrics-out runs/torch.json
    python3 scripts/torch_mnist.py --model cnn --threads 2 --seed 0 --metrics-out runs/torch_cnn.json
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import math
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mnist_dir import MNIST_FILES, default_data_dir, reg_cache_dir

VALIDATION_SIZE = 5_000
EVAL_BATCH_SIZE = 1_000

# Per-model defaults of the flags whose default depends on --model.
MODEL_DEFAULTS = {
    "mlp": {"epochs": 30, "warmup": 3, "patience": 10, "dropout": [0.3, 0.2]},
    "cnn": {"epochs": 15, "warmup": 2, "patience": 5, "dropout": [0.1, 0.3]},
}
# Shape each model's input batch takes: flat rows for the MLP, one channel of 28x28 for the CNN.
INPUT_SHAPE = {"mlp": (-1, 784), "cnn": (-1, 1, 28, 28)}

# The four files by role, in MNIST_FILES's order.
FILES = dict(zip(("train_images", "train_labels", "test_images", "test_labels"), MNIST_FILES))


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzip-compressed or raw) IDX file of unsigned bytes into a uint8 array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file")
    if data[2] != 0x08:
        raise ValueError(f"{path}: IDX type 0x{data[2]:02x} is not unsigned byte (0x08)")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(dims)
    if len(data) - header != expected:
        raise ValueError(f"{path}: {len(data) - header} data bytes, dims {dims} need {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def load_mnist(data_dir: Path):
    arrays = {}
    for key, name in FILES.items():
        path = data_dir / name
        if not path.exists() and (data_dir / name[:-3]).exists():
            path = data_dir / name[:-3]  # accept uncompressed IDX too
        arrays[key] = read_idx(path)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
            raise ValueError(f"{split}: images {images.shape} vs labels {labels.shape}")
    return arrays


def lr_at(epoch: int, base_lr: float, warmup: int, total: int) -> float:
    """Warmup + cosine, epoch is 0-based: base*(e+1)/warmup for e < warmup, else
    base*0.5*(1+cos(pi*(e-warmup)/(total-warmup)))."""
    if epoch < warmup:
        return base_lr * (epoch + 1) / warmup
    span = max(total - warmup, 1)
    progress = min((epoch - warmup) / span, 1.0)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_model(model_name: str, dropout1: float, dropout2: float) -> nn.Sequential:
    if model_name == "mlp":
        model = nn.Sequential(
            nn.Linear(784, 256),
            nn.BatchNorm1d(256),
            nn.ReLU(),
            nn.Dropout(dropout1),
            nn.Linear(256, 128),
            nn.BatchNorm1d(128),
            nn.ReLU(),
            nn.Dropout(dropout2),
            nn.Linear(128, 10),
        )
    else:
        # The same layers at the same indices as reg's CNN (state_dict names `0.weight`, ...).
        model = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1, bias=False),  # 0
            nn.BatchNorm2d(32),  # 1
            nn.ReLU(),  # 2
            nn.MaxPool2d(2),  # 3: 28x28 -> 14x14
            nn.Conv2d(32, 64, 3, padding=1, bias=False),  # 4
            nn.BatchNorm2d(64),  # 5
            nn.ReLU(),  # 6
            nn.MaxPool2d(2),  # 7: 14x14 -> 7x7
            nn.Dropout2d(dropout1),  # 8
            nn.Flatten(),  # 9
            nn.Linear(64 * 7 * 7, 128),  # 10
            nn.BatchNorm1d(128),  # 11
            nn.ReLU(),  # 12
            nn.Dropout(dropout2),  # 13
            nn.Linear(128, 10),  # 14
        )
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            # std = sqrt(2 / fan_in), fan_in = in_features, or in_channels * kh * kw for a conv
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def to_float(images_u8: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """(n, 28, 28) uint8 -> float32 in [0, 1] of `shape` ((n, 784) or (n, 1, 28, 28))."""
    return images_u8.reshape(shape).to(torch.float32).div_(255.0)


@torch.inference_mode()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, loss_fn, shape):
    """Mean cross-entropy and accuracy in eval mode, in chunks of EVAL_BATCH_SIZE."""
    model.eval()
    total_loss, correct, n = 0.0, 0, images.shape[0]
    for start in range(0, n, EVAL_BATCH_SIZE):
        x = to_float(images[start : start + EVAL_BATCH_SIZE], shape)
        y = labels[start : start + EVAL_BATCH_SIZE]
        logits = model(x)
        total_loss += loss_fn(logits, y).item() * y.shape[0]
        correct += (logits.argmax(dim=1) == y).sum().item()
    return total_loss / n, correct / n


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=("mlp", "cnn"), default="mlp",
                   help="mlp (default) or cnn; see the module docstring")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="folder with the four MNIST *-ubyte.gz files "
                        "(default: $MNIST_DIR, else reg's per-user cache, ~/.cache/reg/mnist on "
                        "Linux, once a pipeline run has filled it, else ../shared/data/mnist "
                        "beside the checkout)")
    p.add_argument("--epochs", type=int, default=None, help="default 30 (mlp), 15 (cnn)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    p.add_argument("--l2", type=float, default=0.005,
                   help="L2 lambda; Adam weight_decay = l2 / batch-size on Linear and Conv2d "
                        "weights")
    p.add_argument("--dropout", nargs="+", default=None, metavar="P",
                   help="dropout of the first hidden layer, optionally of the second, space- or "
                        "comma-separated like the Rust example (default 0.3 0.2); cnn: the "
                        "Dropout2d after the convolutions, then the Dropout before the last "
                        "Linear (default 0.1 0.3)")
    p.add_argument("--warmup", type=int, default=None, help="warmup epochs (default 3 mlp, 2 cnn)")
    p.add_argument("--patience", type=int, default=None,
                   help="early stopping patience in epochs (default 10 mlp, 5 cnn)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op and inter-op threads (default: torch's choice)")
    p.add_argument("--adam-impl", choices=("fused", "foreach", "loop"), default="fused",
                   help="torch Adam implementation (default fused: the fastest on CPU)")
    p.add_argument("--metrics-out", type=Path, default=None, help="write metrics JSON here")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    args = p.parse_args(argv)
    defaults = MODEL_DEFAULTS[args.model]
    for name in ("epochs", "warmup", "patience"):
        if getattr(args, name) is None:
            setattr(args, name, defaults[name])
    if args.dropout is None:
        args.dropout = list(defaults["dropout"])
    else:
        try:
            args.dropout = [float(v) for arg in args.dropout for v in arg.split(",") if v.strip()]
        except ValueError:
            p.error(f"--dropout: not a number in {args.dropout}")
        if not 1 <= len(args.dropout) <= 2:
            p.error("--dropout takes one or two values")
        if len(args.dropout) == 1:
            args.dropout.append(defaults["dropout"][1])
    if args.data_dir is None:
        args.data_dir = default_data_dir() or reg_cache_dir()
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        # Must come before any parallel work (set_num_interop_threads can only be set once).
        torch.set_num_threads(args.threads)
        torch.set_num_interop_threads(args.threads)
    torch.manual_seed(args.seed)  # He init and dropout masks
    shuffle_gen = torch.Generator().manual_seed(args.seed)  # epoch permutations

    data = load_mnist(args.data_dir)
    # Images stay in memory as uint8 (like the Rust side) and each mini-batch is gathered and
    # converted to float32 on the fly: the gather + convert of 64x784 bytes is negligible next
    # to the matmuls, and it saves the ~170 MB a pre-converted float train set would add to peak
    # RSS, which compare_speed.py measures.
    train_x_all = torch.from_numpy(data["train_images"].copy())
    train_y_all = torch.from_numpy(data["train_labels"].astype(np.int64))
    n_train = train_x_all.shape[0] - VALIDATION_SIZE
    train_x, val_x = train_x_all[:n_train], train_x_all[n_train:]
    train_y, val_y = train_y_all[:n_train], train_y_all[n_train:]
    test_x = torch.from_numpy(data["test_images"].copy())
    test_y = torch.from_numpy(data["test_labels"].astype(np.int64))

    model = build_model(args.model, args.dropout[0], args.dropout[1])
    shape = INPUT_SHAPE[args.model]
    weights = [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    weight_ids = {id(w) for w in weights}
    others = [p for p in model.parameters() if id(p) not in weight_ids]
    optimizer = torch.optim.Adam(
        [
            {"params": weights, "weight_decay": args.l2 / args.batch_size},
            {"params": others, "weight_decay": 0.0},
        ],
        lr=args.lr, betas=(0.9, 0.999), eps=1e-8,
        # On CPU torch defaults to the per-tensor loop; the fused kernel (supported on CPU since
        # torch 2.4) measured ~20 % faster per training step here.
        **{"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}[args.adam_impl],
    )
    loss_fn = nn.CrossEntropyLoss()

    epochs = []
    best_loss, best_epoch, best_state, since_best = math.inf, 0, None, 0
    stopped_early = False
    bs = args.batch_size
    for epoch in range(args.epochs):
        lr = lr_at(epoch, args.lr, args.warmup, args.epochs)
        for group in optimizer.param_groups:
            group["lr"] = lr

        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n_train, generator=shuffle_gen)
        loss_sum = torch.zeros((), dtype=torch.float64)
        correct = torch.zeros((), dtype=torch.int64)
        seen = 0
        for start in range(0, n_train, bs):
            idx = perm[start : start + bs]
            if idx.shape[0] < 2:  # BatchNorm needs >= 2 rows in train mode
                break
            x = to_float(train_x[idx], shape)
            y = train_y[idx]
            logits = model(x)
            loss = loss_fn(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            # Sample-weighted running averages (as Keras's train metrics), accumulated without
            # a per-batch .item() sync.
            with torch.no_grad():
                loss_sum += loss.detach() * y.shape[0]
                correct += (logits.argmax(dim=1) == y).sum()
            seen += y.shape[0]
        train_loss = loss_sum.item() / seen
        train_acc = correct.item() / seen
        seconds = time.perf_counter() - t0

        t1 = time.perf_counter()
        val_loss, val_acc = evaluate(model, val_x, val_y, loss_fn, shape)
        eval_seconds = time.perf_counter() - t1

        epochs.append({
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "seconds": seconds,
            "eval_seconds": eval_seconds,
        })
        if not args.quiet:
            print(f"Epoch {epoch + 1:>2}/{args.epochs}  lr={lr:.6f}  "
                  f"train loss {train_loss:.4f} acc {train_acc:.4f}  "
                  f"val loss {val_loss:.4f} acc {val_acc:.4f}  {seconds:.2f}s", flush=True)

        if val_loss < best_loss:  # min_delta = 0
            best_loss, best_epoch, since_best = val_loss, epoch + 1, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            since_best += 1
            if since_best >= args.patience:
                stopped_early = epoch + 1 < args.epochs
                break

    if best_state is not None:
        model.load_state_dict(best_state)
    t2 = time.perf_counter()
    test_loss, test_acc = evaluate(model, test_x, test_y, loss_fn, shape)
    test_eval_seconds = time.perf_counter() - t2
    median_epoch_seconds = statistics.median(e["seconds"] for e in epochs) if epochs else 0.0

    metrics = {
        "config": {
            "implementation": "pytorch",
            "model": args.model,
            "torch_version": torch.__version__,
            "data_dir": str(args.data_dir),
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "l2": args.l2,
            "weight_decay": args.l2 / args.batch_size,
            "dropout": args.dropout,
            "warmup": args.warmup,
            "patience": args.patience,
            "seed": args.seed,
            "adam_impl": args.adam_impl,
            "threads": args.threads if args.threads is not None else torch.get_num_threads(),
            "train_size": n_train,
            "validation_size": VALIDATION_SIZE,
        },
        "epochs": epochs,
        "best_epoch": best_epoch,
        "stopped_early": stopped_early,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "median_epoch_seconds": median_epoch_seconds,
        "test_eval_seconds": test_eval_seconds,
    }
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"best epoch {best_epoch}{' (stopped early)' if stopped_early else ''}  "
          f"test loss {test_loss:.4f} acc {test_acc:.4f}  "
          f"median epoch {median_epoch_seconds:.2f}s  test eval {test_eval_seconds:.3f}s  "
          f"peak RSS {peak_mib:.0f} MiB", flush=True)
    if args.metrics_out is not None:
        args.metrics_out.parent.mkdir(parents=True, exist_ok=True)
        args.metrics_out.write_text(json.dumps(metrics, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
