#!/usr/bin/env python3
"""torch's side of SchedulerStateTests.torchLoadsCkptStatesAndContinues.

For every `<name>.pt` ckpt wrote into DIR (`{"at_<k>": {"scheduler": ..., "optimizer": ...}}`, the
states of ckpt's run of scenario <name> of Tests/Fixtures/schedulers/sequences.json after k steps):
torch.load(weights_only=True); build torch's optimizer and scheduler as the scenario says, load the
scheduler state then the optimizer's; check that the loaded scheduler's state_dict() has torch's own
keys in torch's order and equal values (Python ==) at step k; continue and check every learning
rate against the fixture's (torch's recording), bit for bit.

Run: python scripts/check_scheduler_interop.py DIR   (prints "N files, M failures")
"""
import base64
import json
import os
import struct
import sys
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_scheduler_fixtures import OUT, apply, make_optimizer, resume, run  # noqa: E402


def sequence(node):
    raw = base64.b64decode(node["values"])
    values = list(struct.unpack(f"<{len(raw) // 8}d", raw))
    if "runs" not in node:
        return values
    return [v for v, n in zip(values, node["runs"]) for _ in range(n)]


def f64(hex_text):
    return struct.unpack("<d", bytes.fromhex(hex_text))[0]


def decode_ops(node):
    if "plain" in node:
        return [None] * node["plain"]
    if "metrics" in node:
        return [{"metric": m} for m in sequence(node["metrics"])]
    if "float_epochs" in node:
        return [{"epoch": e} for e in sequence(node["float_epochs"])]
    return [None if op is None else {"epoch": f64(op["f"]) if isinstance(op, dict) else op} for op in node["epochs"]]


def difference(a, b, path=""):
    """The first place two state trees differ (keys in order, Python ==), or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return f"{path}: keys {list(a)} vs {list(b)}"
        return next((d for k in a if (d := difference(a[k], b[k], f"{path}/{k}"))), None)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return next((d for i, (x, y) in enumerate(zip(a, b)) if (d := difference(x, y, f"{path}/{i}"))), None)
    return None if a == b else f"{path}: {a!r} vs {b!r}"


def check(scn, k, saved, failures):
    ops = decode_ops(scn["ops"])
    lrs = [sequence(g) for g in scn["lrs"]]
    opt, sch = resume(scn, saved)
    _, own, _, _, _ = run(scn, ops[:k])
    found = difference(sch.state_dict(), own.state_dict())
    if found:
        failures.append(f"{scn['name']}@{k}: loaded state differs from torch's own at {found}")
        return
    for step, op in enumerate(ops[k:], start=k + 1):
        opt.step()
        try:
            apply(sch, op)
        except ValueError as e:
            if str(e) != scn.get("error"):
                failures.append(f"{scn['name']}@{k}: step {step} raised {e}")
            return
        for i, g in enumerate(opt.param_groups):
            if struct.pack("<d", g["lr"]) != struct.pack("<d", lrs[i][step]):
                failures.append(f"{scn['name']}@{k}: step {step} group {i}: {g['lr']!r} vs {lrs[i][step]!r}")
                return


def main():
    warnings.simplefilter("ignore")
    directory = sys.argv[1]
    with open(os.path.join(OUT, "sequences.json")) as f:
        scenarios = {s["name"]: s for s in json.load(f)["scenarios"]}
    failures, files = [], 0
    for entry in sorted(os.listdir(directory)):
        if not entry.endswith(".pt"):
            continue
        files += 1
        scn = scenarios[entry[:-3]]
        states = torch.load(os.path.join(directory, entry), weights_only=True)
        for key, saved in states.items():
            check(scn, int(key.removeprefix("at_")), saved, failures)
    for failure in failures:
        print("FAIL", failure)
    print(f"{files} files, {len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
