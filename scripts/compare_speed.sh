#!/usr/bin/env bash
# Build reg's pipeline example and compare it with PyTorch: scripts/compare_speed.py "$@".
#
# Uses $PYTHON if set (a python that already has torch + numpy), else the virtualenv
# .venv-torch at the repo root, created on first use with `pip install torch numpy`.
# Note: on Linux x86_64 the default PyPI torch wheel is the CUDA build and pulls several GB of
# nvidia-* wheels even for CPU use; set TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# to install the much smaller CPU-only wheel instead.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [[ -n "${PYTHON:-}" ]]; then
    py="$PYTHON"
else
    py="$root/.venv-torch/bin/python"
    if [[ ! -x "$py" ]]; then
        echo "creating $root/.venv-torch (torch is a large download)" >&2
        python3 -m venv "$root/.venv-torch"
        if [[ -n "${TORCH_INDEX_URL:-}" ]]; then
            "$py" -m pip install --index-url "$TORCH_INDEX_URL" torch
            "$py" -m pip install numpy
        else
            "$py" -m pip install torch numpy
        fi
    fi
fi

cargo build --release --example pipeline
exec "$py" "$root/scripts/compare_speed.py" --python "$py" "$@"
