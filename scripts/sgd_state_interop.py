#!/usr/bin/env python3
"""SGD state dicts across frameworks, driven by SGDInteropTests (Tests/OptimTests).

    sgd_state_interop.py make DIR    for each configuration, torch runs SGD K steps and saves
                                     DIR/<name>_in.pt (params, group sizes, its state_dict, the
                                     gradients of N + M more steps), then continues N steps and
                                     saves DIR/<name>_expected.pt (params and state_dict), then M
                                     more and saves DIR/<name>_final.pt (params); prints
                                     `case <name>` for each
    sgd_state_interop.py check DIR   for each configuration, torch.load(weights_only=True) reads
                                     DIR/<name>_ours.pt (what ckpt wrote after loading _in.pt and
                                     taking N steps), loads its state_dict into a fresh
                                     torch.optim.SGD over its params and takes the M steps; prints
                                     `result <json>` per configuration: the largest ulp difference
                                     from torch's own run (_final.pt)

The configurations cover each path (single-tensor, foreach, fused), float32/float64/float16/
bfloat16, Nesterov, dampening, weight decay, maximize, named parameters in two groups with their
own options, and no momentum (no state). The gradients are random normals, saved, so ckpt and
torch step on the same bits.
"""
import json
import os
import sys

import torch

K, N, M = 3, 20, 10

CONFIGS = {
    "f32_nesterov_named_groups": dict(dtype=torch.float32, shapes=[(4, 3), (5,), (2,)], names=True, groups=[2, 1],
                                      options=dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
                                      group_options=[{}, dict(lr=0.01, momentum=0.5, nesterov=False, dampening=0.25)]),
    "f16_foreach_damp_max": dict(dtype=torch.float16, shapes=[(40,), (3, 7)],
                                 options=dict(lr=0.02, momentum=0.8, dampening=0.2, maximize=True, foreach=True)),
    "bf16_foreach_nesterov": dict(dtype=torch.bfloat16, shapes=[(33,)],
                                  options=dict(lr=0.02, momentum=0.9, nesterov=True, foreach=True)),
    "f64_fused_wd": dict(dtype=torch.float64, shapes=[(17,), (2, 9)],
                         options=dict(lr=0.1, momentum=0.9, weight_decay=0.001, fused=True)),
    "f16_fused_nesterov": dict(dtype=torch.float16, shapes=[(37,)],
                               options=dict(lr=0.01, momentum=0.95, nesterov=True, fused=True)),
    "f32_no_momentum": dict(dtype=torch.float32, shapes=[(6,)], options=dict(lr=0.1)),
}


def build(config, values):
    params = [torch.nn.Parameter(v.clone()) for v in values]
    names = [f"layer{i}.weight" for i in range(len(params))]
    items = list(zip(names, params)) if config.get("names") else params
    sizes = config.get("groups", [len(params)])
    extra = config.get("group_options", [{}] * len(sizes))
    groups, start = [], 0
    for size, options in zip(sizes, extra):
        groups.append({"params": items[start:start + size], **options})
        start += size
    return params, torch.optim.SGD(groups, **config["options"])


def run(params, opt, grads):
    for step in grads:
        for p, g in zip(params, step):
            p.grad = g.clone()
        opt.step()


def make(directory):
    for name, config in CONFIGS.items():
        gen = torch.Generator().manual_seed(11)
        values = [torch.randn(s, generator=gen, dtype=torch.float64).to(config["dtype"]) for s in config["shapes"]]
        grads = [[torch.randn(s, generator=gen, dtype=torch.float64).to(config["dtype"]) for s in config["shapes"]]
                 for _ in range(K + N + M)]
        params, opt = build(config, values)
        run(params, opt, grads[:K])
        torch.save({"params": [p.detach().clone() for p in params], "group_sizes": config.get("groups", [len(params)]),
                    "named": bool(config.get("names")), "optimizer": opt.state_dict(),
                    "grads_n": grads[K:K + N], "grads_m": grads[K + N:]}, os.path.join(directory, f"{name}_in.pt"))
        run(params, opt, grads[K:K + N])
        torch.save({"params": [p.detach().clone() for p in params], "optimizer": opt.state_dict()},
                   os.path.join(directory, f"{name}_expected.pt"))
        run(params, opt, grads[K + N:])
        torch.save({"params": [p.detach().clone() for p in params]}, os.path.join(directory, f"{name}_final.pt"))
        print(f"case {name}")


def ulps(a, b):
    """Largest distance in units in the last place between two float tensors (inf on a dtype or shape mismatch)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return float("inf")
    if a.numel() == 0:
        return 0
    view, mask = {torch.float16: (torch.int16, 0x7FFF), torch.bfloat16: (torch.int16, 0x7FFF),
                  torch.float32: (torch.int32, 0x7FFFFFFF), torch.float64: (torch.int64, 0x7FFFFFFFFFFFFFFF)}[a.dtype]

    def ordered(x):
        bits = x.contiguous().view(view).to(torch.int64)
        return torch.where(bits < 0, -(bits & mask), bits)
    return int((ordered(a) - ordered(b)).abs().max())


def check(directory):
    for name, config in CONFIGS.items():
        inputs = torch.load(os.path.join(directory, f"{name}_in.pt"), weights_only=True)
        ours = torch.load(os.path.join(directory, f"{name}_ours.pt"), weights_only=True)
        final = torch.load(os.path.join(directory, f"{name}_final.pt"), weights_only=True)
        # Options deliberately torch's defaults: the loaded groups' options must take over.
        bare = dict(config, options={}, group_options=[{} for _ in config.get("groups", [0])])
        params, opt = build(bare, ours["params"])
        opt.load_state_dict(ours["optimizer"])
        run(params, opt, inputs["grads_m"])
        worst = max(ulps(p.detach(), f) for p, f in zip(params, final["params"]))
        print("result " + json.dumps({"name": name, "ulp": worst}))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("make", "check"):
        sys.exit(f"usage: {sys.argv[0]} make|check DIR")
    make(sys.argv[2]) if sys.argv[1] == "make" else check(sys.argv[2])
