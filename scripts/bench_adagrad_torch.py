#!/usr/bin/env python3
"""Times torch.optim.Adagrad (or SGD with momentum 0.9 and Nesterov) steps on CPU for the layouts
adagrad-bench uses; prints one JSON object.

Usage: bench_adagrad_torch.py --tensors 1 --elements 268435456 --steps 5 [--dtype float32] [--optimizer adagrad|sgd]
Output: {"torch": "2.15.0", "threads": 2, "results": {"fused": s_per_step, "default": ..., "foreach": ...}}
(best seconds per step over --steps timed steps, after one warm-up step).
"""
import argparse
import json
import time

import torch


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tensors", type=int, default=1)
    parser.add_argument("--elements", type=int, default=1 << 28, help="elements per tensor")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--paths", default="fused,default,foreach")
    parser.add_argument("--optimizer", default="adagrad", choices=["adagrad", "sgd"])
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    results = {}
    for path in args.paths.split(","):
        options = {"fused": dict(fused=True), "default": dict(foreach=False), "foreach": dict(foreach=True)}[path]
        params = [torch.nn.Parameter(torch.randn(args.elements, dtype=dtype)) for _ in range(args.tensors)]
        for p in params:
            p.grad = torch.randn_like(p)
        if args.optimizer == "sgd":
            opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True, **options)
        else:
            opt = torch.optim.Adagrad(params, lr=0.01, **options)
        opt.step()  # warm-up: first touch of the state
        best = float("inf")
        for _ in range(args.steps):
            start = time.perf_counter()
            opt.step()
            best = min(best, time.perf_counter() - start)
        results[path] = best
        del opt, params
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": results}))


if __name__ == "__main__":
    main()
