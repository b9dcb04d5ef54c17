#!/usr/bin/env python3
"""Resume across frameworks (issue 3 §6), checked with real torch.

    ~/.cache/ckpt/venv-torch/bin/python scripts/interop_optim.py <built optim-resume binary>

For each configuration:
  1. torch runs Adagrad for K steps and torch.save's the parameters, options, optimizer
     state_dict and the gradients of N more steps (resume_in.pt);
  2. torch continues its own run N steps (the reference);
  3. ckpt (the optim-resume driver) loads resume_in.pt through Checkpoint, loads the state into
     its Adagrad, takes the N steps and saves to .ckpt and .pt;
  4. torch.load(weights_only=True) reads both outputs: parameters and optimizer state must equal
     torch's continued run bit for bit;
  5. each output's state_dict is loaded into a fresh torch.optim.Adagrad over the output's
     parameters, which continues M steps; it must equal torch's own run continued the same way.
Prints PASS/FAIL per check (with the largest ulp difference on a FAIL); exits 1 if any failed.
"""
import copy
import os
import subprocess
import sys
import tempfile

import torch

K, N, M = 5, 200, 10


def ulps(a, b):
    """Largest distance in units in the last place between two float tensors (0 when equal)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return float("inf")
    views = {torch.float16: (torch.int16, 0x7FFF), torch.bfloat16: (torch.int16, 0x7FFF),
             torch.float32: (torch.int32, 0x7FFFFFFF), torch.float64: (torch.int64, 0x7FFFFFFFFFFFFFFF)}
    if a.dtype not in views:
        return 0 if torch.equal(a, b) else float("inf")
    if a.numel() == 0:
        return 0
    view, mask = views[a.dtype]

    def ordered(x):
        bits = x.contiguous().view(view).to(torch.int64)
        return torch.where(bits < 0, -(bits & mask), bits)
    both_nan = torch.isnan(a) & torch.isnan(b)
    return int(torch.where(both_nan, 0, (ordered(a) - ordered(b)).abs()).max())


def compare_state(ours, theirs):
    """(equal, largest ulp) between two Adagrad state_dicts: structure, types, values."""
    worst = 0
    if list(ours["param_groups"][0].keys()) != list(theirs["param_groups"][0].keys()):
        return False, "param_groups keys differ"
    for g_ours, g_theirs in zip(ours["param_groups"], theirs["param_groups"]):
        for key in g_theirs:
            if type(g_ours[key]) is not type(g_theirs[key]) or (key != "lr" and g_ours[key] != g_theirs[key]):
                return False, f"group option {key}: {g_ours[key]!r} vs {g_theirs[key]!r}"
    if list(ours["state"].keys()) != list(theirs["state"].keys()):
        return False, "state ids differ"
    for pid in theirs["state"]:
        for key in theirs["state"][pid]:
            a, b = ours["state"][pid][key], theirs["state"][pid][key]
            if not torch.equal(a, b) or a.dtype != b.dtype:
                worst = max(worst, ulps(a, b))
    return worst == 0, worst


def make_grads(gen, params, count):
    return [[torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype) for p in params] for _ in range(count)]


def run_config(name, driver, workdir, dtype, options, shapes):
    gen = torch.Generator().manual_seed(7)
    names = [f"layer{i}.weight" for i in range(len(shapes))]
    params = [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64).to(dtype)) for s in shapes]
    opt = torch.optim.Adagrad(list(zip(names, params)), **options)
    for grads in make_grads(gen, params, K):
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
    future = make_grads(gen, params, N)
    resume_in = os.path.join(workdir, f"{name}_in.pt")
    torch.save({"names": names, "params": [p.detach().clone() for p in params], "options": options,
                "optimizer": opt.state_dict(), "grads": future}, resume_in)
    for grads in future:
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
    reference_state = copy.deepcopy(opt.state_dict())  # state_dict() returns live references
    reference_params = [p.detach().clone() for p in params]

    outputs = [os.path.join(workdir, f"{name}_out.ckpt"), os.path.join(workdir, f"{name}_out.pt")]
    done = subprocess.run([driver, resume_in, *outputs], capture_output=True, text=True)
    results = []
    if done.returncode != 0:
        return [(f"{name}: ckpt resumes torch's run", False, done.stderr.strip())]

    after = make_grads(gen, params, M)
    for grads in after:
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
    torch_final = [p.detach().clone() for p in params]

    for path in outputs:
        kind = os.path.splitext(path)[1]
        loaded = torch.load(path, weights_only=True)
        worst = max(ulps(a, b) for a, b in zip(loaded["params"], reference_params))
        results.append((f"{name}: ckpt's {kind} parameters after {N} resumed steps equal torch's", worst == 0,
                        f"largest ulp {worst}"))
        ok_state, detail = compare_state(loaded["optimizer"], reference_state)
        results.append((f"{name}: ckpt's {kind} state after {N} resumed steps equals torch's", ok_state, f"largest ulp {detail}"))

        fresh = [torch.nn.Parameter(t.clone()) for t in loaded["params"]]
        resumed = torch.optim.Adagrad(list(zip(names, fresh)), **options)
        resumed.load_state_dict(loaded["optimizer"])
        for grads in after:
            for p, g in zip(fresh, grads):
                p.grad = g
            resumed.step()
        worst = max(ulps(a.detach(), b) for a, b in zip(fresh, torch_final))
        results.append((f"{name}: torch continues from ckpt's {kind} as from its own ({M} steps)", worst == 0,
                        f"largest ulp {worst}"))
    return results


def main():
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} <optim-resume binary>", file=sys.stderr)
        return 2
    driver = sys.argv[1]
    if not os.access(driver, os.X_OK):
        print(f"interop_optim: no optim-resume at {driver} (build it first); NOT RUN", file=sys.stderr)
        return 1
    configs = [
        ("f32_default", torch.float32, {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.001, "initial_accumulator_value": 0.1}, [(64, 33), (17,)]),
        ("f64_default", torch.float64, {"lr": 0.05, "lr_decay": 0.001, "initial_accumulator_value": 0.5}, [(40, 9), (5,)]),
        ("f32_foreach_maximize", torch.float32, {"lr": 0.1, "foreach": True, "maximize": True}, [(31, 7)]),
        ("f32_fused", torch.float32, {"lr": 0.1, "lr_decay": 0.01, "fused": True}, [(128, 5), (3,)]),
        ("f64_fused", torch.float64, {"lr": 0.1, "weight_decay": 0.01, "fused": True}, [(33,)]),
    ]
    failed = 0
    with tempfile.TemporaryDirectory(prefix="ckpt-interop-optim.") as workdir:
        for name, dtype, options, shapes in configs:
            for check, ok, detail in run_config(name, driver, workdir, dtype, options, shapes):
                print(f"{'PASS' if ok else 'FAIL'} {check}" + ("" if ok else f" ({detail})"))
                failed += not ok
    print(f"interop_optim: {failed} check(s) failed" if failed else "interop_optim: all checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
