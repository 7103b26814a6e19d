"""Where the PyTorch scripts look for MNIST, the same places as reg's examples (no torch here,
so scripts that run under another Python can import it too)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# The four files, gzipped as the mirrors serve them.
MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def reg_cache_dir() -> Path:
    """reg's per-user MNIST cache, where `pipeline` downloads the files on first use."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "reg" / "mnist"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", Path.home())) / "reg" / "mnist"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "reg" / "mnist"


def default_data_dir() -> Path | None:
    """$MNIST_DIR, else reg's cache when it holds the four files, else ../shared/data/mnist
    beside the checkout when that does; None when none of them is there."""
    env = os.environ.get("MNIST_DIR")
    if env:
        return Path(env)
    shared = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist"
    for candidate in (reg_cache_dir(), shared):
        if all((candidate / name).exists() for name in MNIST_FILES):
            return candidate
    return None
