#!/usr/bin/env python3
"""Reads the TensorBoard event files that `pipeline --tensorboard DIR` wrote into its run's
folder (`DIR/seed<S>_<date>_<time>`, holding `train/` and `validation/` as Keras's TensorBoard
callback lays them out), with the `tensorboard` package's own readers, and checks them against
the run's metrics JSON.

    python scripts/read_tensorboard.py DIR/RUN METRICS.json

Two readers, as TensorBoard itself uses them: `EventFileLoader` (the record framing with its
CRC-32C checks, each record parsed as an `Event` protobuf) and `EventAccumulator` (what the
scalar dashboard shows). Checks: the first event of each file is `file_version = brain.Event:2`;
every epoch of the JSON has one value per tag at step = epoch, equal to the JSON's value in
float32 (accuracies are percent in TensorBoard, as the console prints them, and fractions in
the JSON). Prints a table of what was read; exits non-zero on any mismatch.
"""

import glob
import json
import os
import sys

import numpy as np
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

# (subfolder, tag) -> (key of an epoch in the metrics JSON, factor from the JSON's unit).
TAGS = {
    ("train", "epoch_loss"): ("train_loss", 1.0),
    ("train", "epoch_accuracy"): ("train_acc", 100.0),
    ("train", "epoch_learning_rate"): ("lr", 1.0),
    ("train", "epoch_seconds"): ("seconds", 1.0),
    ("validation", "epoch_loss"): ("val_loss", 1.0),
    ("validation", "epoch_accuracy"): ("val_acc", 100.0),
}


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    run_dir, metrics_path = sys.argv[1], sys.argv[2]
    epochs = json.load(open(metrics_path))["epochs"]
    problems = []
    accumulators = {}
    for part in ("train", "validation"):
        log_dir = os.path.join(run_dir, part)
        files = sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*")))
        if not files:
            sys.exit(f"no events.out.tfevents.* file in {log_dir}")
        for path in files:
            events = list(EventFileLoader(path).Load())
            first = events[0]
            print(f"{part}/{os.path.basename(path)}: {len(events)} events, first: file_version={first.file_version!r}")
            if first.file_version != "brain.Event:2":
                problems.append(f"{path}: first event is not file_version brain.Event:2")
        acc = event_accumulator.EventAccumulator(log_dir, size_guidance={event_accumulator.SCALARS: 0})
        acc.Reload()
        accumulators[part] = acc
        print(f"{part}: scalar tags {sorted(acc.Tags()['scalars'])}")

    print(f"{'run/tag':<32}{'steps':>6}  {'first (step, value)':<24}{'last (step, value)':<24}max |Δ| vs JSON")
    for (part, tag), (key, factor) in TAGS.items():
        acc = accumulators[part]
        name = f"{part}/{tag}"
        if tag not in acc.Tags()["scalars"]:
            problems.append(f"tag {name} missing")
            continue
        scalars = acc.Scalars(tag)
        steps = [s.step for s in scalars]
        want_steps = [e["epoch"] for e in epochs]
        if steps != want_steps:
            problems.append(f"{name}: steps {steps} != epochs {want_steps}")
            continue
        got = np.array([s.value for s in scalars], dtype=np.float64)
        want = np.array([np.float32(factor * e[key]) for e in epochs], dtype=np.float64)
        worst = float(np.max(np.abs(got - want)))
        if worst != 0.0:
            problems.append(f"{name}: differs from the JSON by up to {worst}")
        first, last = f"({steps[0]}, {got[0]:.6g})", f"({steps[-1]}, {got[-1]:.6g})"
        print(f"{name:<32}{len(steps):>6}  {first:<24}{last:<24}{worst:.1e}")
    if problems:
        sys.exit("FAILED:\n" + "\n".join(problems))
    print(f"OK: {len(TAGS)} tags x {len(epochs)} epochs equal the metrics JSON (float32)")


if __name__ == "__main__":
    main()
