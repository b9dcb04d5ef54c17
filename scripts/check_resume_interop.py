#!/usr/bin/env python3
"""torch's side of ResumeTests.torchResumesCkptCheckpoints.

Each argument is NAME:K:PATH: a checkpoint a ckpt CheckpointManager wrote after step K of run NAME
of Tests/Fixtures/schedulers/resume (ckpt trained it from the run's initial weights on its
gradients, and saved it with TrainingState). For each: torch.load(weights_only=True); check that
`epoch` is K and the weights are torch's own after step K, bit for bit; build torch's model,
optimizer and schedulers as the run's trainer does, load the model, the scheduler state(s), then the
optimizer's (resume_from, the docs' order); check the learning rate, then continue to the end of the
run with the recorded gradients and check every learning rate and parameter against torch's
uninterrupted run, bit for bit.

Run: python scripts/check_resume_interop.py NAME:K:PATH ...   (prints "N checkpoints, M failures")
"""
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_scheduler_fixtures import OUT, RESUME_RUNS, RESUME_STEPS, resume_from, resume_train, same_bits  # noqa: E402


def check(name, k, path, failures):
    run = torch.load(os.path.join(OUT, "resume", f"{name}.pt"), weights_only=True)
    grads = [list(step) for step in zip(*run["grads"])]
    params = [list(step) for step in zip(*run["params"])]
    saved = torch.load(path, weights_only=True)
    if saved.get("epoch") != k:
        failures.append(f"{name}@{k}: epoch is {saved.get('epoch')!r}")
        return
    if not all(torch.equal(a, b) for a, b in zip(saved["model"].values(), params[k - 1], strict=True)):
        failures.append(f"{name}@{k}: the saved weights are not torch's after step {k}")
        return
    model, opt, schedulers = resume_from(name, RESUME_RUNS[name][0], saved)
    if struct.pack("<d", opt.param_groups[0]["lr"]) != struct.pack("<d", run["lrs"][k]):
        failures.append(f"{name}@{k}: lr after loading is {opt.param_groups[0]['lr']!r}, torch had {run['lrs'][k]!r}")
        return
    lrs, more = resume_train(model, opt, schedulers, grads, range(k, RESUME_STEPS))
    if not same_bits(lrs, more, run["lrs"][k + 1:], params[k:]):
        failures.append(f"{name}@{k}: the continuation differs from torch's run")


def main():
    failures = []
    for argument in sys.argv[1:]:
        name, k, path = argument.split(":", 2)
        check(name, int(k), path, failures)
    for failure in failures:
        print("FAIL", failure)
    print(f"{len(sys.argv) - 1} checkpoints, {len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
