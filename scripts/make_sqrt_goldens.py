#!/usr/bin/env python3
"""Records torch.sqrt of float32 and float64 values of every magnitude, per kind of machine.

torch.sqrt on CPU is MKL's, which is not correctly rounded and picks its kernel by CPU vendor and
instruction set; ckpt reproduces each kernel (ckpt_torch_sqrt_f32/_f64). SqrtGoldenTests compares
against every recorded machine whose kernel this CPU can reproduce.

The inputs are bit patterns from a seeded integer generator (every exponent, subnormals, zeros,
negatives, infinities, NaN), written once as inputs_f32.bin/inputs_f64.bin and read back after.
Each run adds or replaces this machine's results: torch as it is and, on an AVX-512 CPU, with MKL
restricted to AVX2.

Usage: python scripts/make_sqrt_goldens.py [--out DIR] [--native-only]
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_machine  # noqa: E402

COUNT = 8192
SPECIALS_F32 = np.array([0.0, -0.0, 1.0, 4.0, -1.0, np.inf, -np.inf, np.nan, 1e-45, 1.1754942e-38, 1.1754944e-38, 3.4028235e38],
                        dtype=np.float32)
SPECIALS_F64 = np.array([0.0, -0.0, 1.0, 4.0, -1.0, np.inf, -np.inf, np.nan, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308])


def make_inputs(out):
    rng = np.random.default_rng(20261206)
    f32 = rng.integers(0, 0x7F800000, COUNT, dtype=np.uint32).view(np.float32)
    f64 = rng.integers(0, 0x7FF0000000000000, COUNT, dtype=np.uint64).view(np.float64)
    f32[:len(SPECIALS_F32)] = SPECIALS_F32
    f64[:len(SPECIALS_F64)] = SPECIALS_F64
    f32.tofile(os.path.join(out, "inputs_f32.bin"))
    f64.tofile(os.path.join(out, "inputs_f64.bin"))


def worker(out, scratch):
    results = {}
    for name, dtype in (("f32", np.float32), ("f64", np.float64)):
        values = np.fromfile(os.path.join(out, f"inputs_{name}.bin"), dtype=dtype)
        results[name] = torch.sqrt(torch.from_numpy(values)).numpy().tobytes()
    torch_machine.write_worker_results(scratch, results)


def main():
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "sqrt")
    args = torch_machine.golden_arguments(default, worker)
    if not os.path.exists(os.path.join(args.out, "inputs_f32.bin")):
        make_inputs(args.out)
    index_path = os.path.join(args.out, "index.json")
    machines = []
    if os.path.exists(index_path):
        with open(index_path) as f:
            machines = json.load(f)["machines"]
    machines, _ = torch_machine.record(os.path.abspath(__file__), args.out, args.native_only, machines, prefix="sqrt_")
    with open(index_path, "w") as f:
        json.dump({"count": COUNT, "inputs": {"f32": "inputs_f32.bin", "f64": "inputs_f64.bin"}, "machines": machines}, f, indent=1)
    torch_machine.remove_unreferenced(args.out, machines, lambda file: file.startswith("sqrt_"))


if __name__ == "__main__":
    main()
