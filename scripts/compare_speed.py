#!/usr/bin/env python3
"""Compare training speed and peak memory of PyTorch (scripts/torch_mnist.py) and reg
(target/release/examples/pipeline) on the same MNIST model (--model mlp, the default, or cnn).

Runs the two ALTERNATELY for --rounds rounds of --epochs epochs each (the order flips every
round: torch first in odd rounds, reg first in even ones, so neither always runs on a warmer or
quieter machine), both with --threads and --seed, as subprocesses writing --metrics-out JSON to a
temporary folder. Both get warmup min(3, epochs - 1) for the MLP, min(2, epochs - 1) for the CNN
(the models' default warmups, capped because reg requires warmup < epochs). `--model cnn` is
passed to both; for the MLP no --model flag is passed. Peak RSS of each child comes from os.wait4
(ru_maxrss, KiB on Linux). Prints a markdown table and a line of medians over rounds.

Examples (from the repo root, after `cargo build --release --example pipeline`, with a Python
that has torch and numpy):
    python3 scripts/compare_speed.py --python python3
    python3 scripts/compare_speed.py --python python3 --model cnn
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mnist_dir import MNIST_FILES, default_data_dir, reg_cache_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
REQUIRED_KEYS = ("epochs", "median_epoch_seconds", "test_eval_seconds", "test_acc")
# Default warmup epochs of each model in both implementations (capped at epochs - 1 here).
DEFAULT_WARMUP = {"mlp": 3, "cnn": 2}


class RunError(Exception):
    """A child run failed; the message says which, how, and shows its stderr."""


def default_python() -> Path:
    venv = REPO_ROOT / ".venv-torch" / "bin" / "python"
    return venv if venv.exists() else Path(sys.executable)


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "<no stderr captured>"
    kept = text.rstrip("\n").splitlines()[-lines:]
    return "\n".join("    " + line for line in kept) if kept else "    <stderr is empty>"


def run_child(name: str, cmd: list[str], metrics_path: Path, log_dir: Path) -> dict:
    """Run `cmd`, wait with os.wait4 for its rusage, and return its metrics plus peak RSS."""
    stdout_path = log_dir / f"{metrics_path.stem}.stdout"
    stderr_path = log_dir / f"{metrics_path.stem}.stderr"
    start = time.perf_counter()
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        # Output goes to files, not pipes: nothing has to drain them while we block in wait4.
        try:
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    cwd=REPO_ROOT)
        except OSError as e:
            raise RunError(f"{name}: cannot start {cmd[0]}: {e}") from e
        try:
            _, status, rusage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: keep Popen from waiting
    wall = time.perf_counter() - start
    shown = " ".join(cmd)
    if proc.returncode != 0:
        how = (f"was killed by signal {-proc.returncode}" if proc.returncode < 0
               else f"exited with status {proc.returncode}")
        raise RunError(f"{name} {how} after {wall:.1f}s\n  command: {shown}\n"
                       f"  stderr (last lines, full log {stderr_path}):\n{tail(stderr_path)}")
    try:
        metrics = json.loads(metrics_path.read_text())
    except (OSError, ValueError) as e:
        raise RunError(f"{name} exited 0 but its metrics JSON {metrics_path} is unreadable: {e}\n"
                       f"  command: {shown}\n  stderr:\n{tail(stderr_path)}") from e
    missing = [k for k in REQUIRED_KEYS if k not in metrics]
    if missing:
        raise RunError(f"{name}: metrics JSON {metrics_path} lacks {', '.join(missing)}")
    metrics["peak_rss_mb"] = rusage.ru_maxrss / 1024  # ru_maxrss is KiB on Linux
    metrics["wall_seconds"] = wall
    return metrics


def baseline_import_rss(python: Path) -> float | None:
    """Peak RSS (MB) of `python -c 'import torch'`: the part of torch's column that is the library."""
    try:
        proc = subprocess.Popen([str(python), "-c", "import torch"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        _, status, rusage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    except OSError:
        return None
    return rusage.ru_maxrss / 1024 if proc.returncode == 0 else None


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=("mlp", "cnn"), default="mlp",
                   help="model both sides train (default mlp)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3, help="epochs per run")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", type=Path, default=None,
                   help="MNIST folder with the four *-ubyte.gz files (default: $MNIST_DIR, else "
                        "reg's per-user cache, ~/.cache/reg/mnist on Linux, once a pipeline run "
                        "has filled it, else ../shared/data/mnist beside the checkout)")
    p.add_argument("--python", type=Path, default=None,
                   help="python with torch (default: .venv-torch/bin/python at the repo root, "
                        "else this interpreter)")
    p.add_argument("--reg-bin", type=Path,
                   default=REPO_ROOT / "target" / "release" / "examples" / "pipeline",
                   help="reg's pipeline example binary (default: target/release/examples/pipeline)")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.epochs < 1 or args.threads < 1:
        p.error("--rounds, --epochs and --threads must be at least 1")
    if args.data_dir is None:
        args.data_dir = default_data_dir()
        if args.data_dir is None:
            p.error(f"no MNIST folder: MNIST_DIR is unset and {reg_cache_dir()} lacks the four "
                    "*-ubyte.gz files (`cargo run --release --example pipeline` downloads them "
                    "there); pass --data-dir")
    if args.python is None:
        args.python = default_python()
    elif os.sep not in str(args.python):
        # A bare name such as `python3` is looked up on PATH, as a shell would.
        found = shutil.which(str(args.python))
        if found:
            args.python = Path(found)
    return args


def check_inputs(args) -> None:
    missing = [f for f in MNIST_FILES if not (args.data_dir / f).exists()]
    if missing:
        raise RunError(f"MNIST folder {args.data_dir} lacks {', '.join(missing)}")
    if not args.reg_bin.is_file() or not os.access(args.reg_bin, os.X_OK):
        raise RunError(f"reg binary {args.reg_bin} is missing or not executable; build it with\n"
                       f"  cargo build --release --example pipeline\n"
                       f"or point --reg-bin at it")
    if not args.python.exists():
        raise RunError(f"python {args.python} does not exist (see --python)")


def fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}"


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        check_inputs(args)
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    # reg requires warmup < epochs; both get the same, so short runs follow the same schedule.
    warmup = min(DEFAULT_WARMUP[args.model], args.epochs - 1)
    common = ["--data-dir", str(args.data_dir), "--epochs", str(args.epochs),
              "--warmup", str(warmup), "--threads", str(args.threads), "--seed", str(args.seed),
              "--quiet"]
    if args.model != "mlp":
        # mlp is both sides' default; not passing it keeps reg binaries without --model usable.
        common += ["--model", args.model]
    torch_script = Path(__file__).resolve().parent / "torch_mnist.py"
    rows = []
    # Removed on success; kept on failure so the logs named in the error message survive.
    tmp = Path(tempfile.mkdtemp(prefix="compare_speed_"))
    try:
        for r in range(1, args.rounds + 1):
            order = ("torch", "reg") if r % 2 == 1 else ("reg", "torch")
            row = {"round": r}
            for name in order:
                out = tmp / f"{name}_round{r}.json"
                if name == "torch":
                    cmd = [str(args.python), str(torch_script), *common, "--metrics-out", str(out)]
                else:
                    cmd = [str(args.reg_bin), *common, "--metrics-out", str(out)]
                print(f"round {r}/{args.rounds}: {name} ...", end="", file=sys.stderr, flush=True)
                m = run_child(name, cmd, out, tmp)
                print(f" {m['wall_seconds']:.1f}s wall, median epoch "
                      f"{m['median_epoch_seconds']:.2f}s, test acc {m['test_acc']:.4f}",
                      file=sys.stderr, flush=True)
                row[name] = m
            rows.append(row)
    except RunError as e:
        print(f"\nerror: {e}\n(logs and metrics kept in {tmp})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted (logs and metrics kept in {tmp})", file=sys.stderr)
        return 130
    shutil.rmtree(tmp, ignore_errors=True)

    baseline = baseline_import_rss(args.python)

    print(f"MNIST {args.model}, {args.epochs} epoch(s) per run (warmup {warmup}), batch 64, {args.threads} thread(s), "
          f"seed {args.seed}, "
          f"{os.cpu_count()} CPU(s); torch {rows[0]['torch']['config'].get('torch_version', '?')}")
    print()
    print("| round | torch median epoch s | reg median epoch s | reg/torch | torch peak RSS MB "
          "| reg peak RSS MB | torch test eval s | reg test eval s | torch test acc | reg test acc |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        t, g = row["torch"], row["reg"]
        ratio = g["median_epoch_seconds"] / t["median_epoch_seconds"]
        print(f"| {row['round']} | {fmt(t['median_epoch_seconds'])} | {fmt(g['median_epoch_seconds'])} "
              f"| {fmt(ratio, 2)} | {t['peak_rss_mb']:.0f} | {g['peak_rss_mb']:.0f} "
              f"| {fmt(t['test_eval_seconds'], 4)} | {fmt(g['test_eval_seconds'], 4)} "
              f"| {fmt(t['test_acc'], 4)} | {fmt(g['test_acc'], 4)} |")

    def med(name, key):
        return statistics.median(row[name][key] for row in rows)

    t_ep, g_ep = med("torch", "median_epoch_seconds"), med("reg", "median_epoch_seconds")
    print()
    print(f"Median over {len(rows)} round(s): epoch torch {fmt(t_ep)} s, reg {fmt(g_ep)} s, "
          f"reg/torch {fmt(g_ep / t_ep, 2)}; peak RSS torch {med('torch', 'peak_rss_mb'):.0f} MB, "
          f"reg {med('reg', 'peak_rss_mb'):.0f} MB; test eval (10,000 images) torch "
          f"{fmt(med('torch', 'test_eval_seconds'), 4)} s, reg {fmt(med('reg', 'test_eval_seconds'), 4)} s")
    if baseline is not None:
        print(f"(MB = MiB. `import torch` alone peaks at {baseline:.0f} MB with this python; "
              f"that is included in the torch column.)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
