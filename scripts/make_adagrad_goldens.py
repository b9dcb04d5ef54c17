#!/usr/bin/env python3
"""Records golden Adagrad trajectories from real torch for AdagradFidelityTests.

Every case runs torch.optim.Adagrad on one parameter for STEPS steps with saved gradients and
records param and sum every SNAPSHOT_EVERY steps. Cases cover the three CPU paths (single-tensor,
foreach, fused) x float32/float64/float16/bfloat16 x option sets, plus complex64/128 on the two
paths that accept them, plus one step on tensors large enough for torch to split over threads.

torch's bits depend on the machine (scripts/torch_machine.py says which facts matter). So the
index keeps one result set per kind of machine, and each run adds or replaces the sets of the
machine it runs on: torch as it is, and, on an AVX-512 CPU, torch restricted to AVX2 (which rounds
as on an AVX2 CPU of the same vendor). Each case records what its result depends on; a case that
declares no dependency must come out the same on every machine, or the script fails.

The inputs (init_*.bin, grads_*.bin) are data, not results: they are made once and then read
back, so every machine's results start from the same bits.

Output directory (Tests/Fixtures/adagrad/ by default):
  index.json               inputs, cases, and per machine its facts and one file per case
  init_<dtype>.bin         the initial parameter (little-endian, numel elements; complex = real pairs)
  grads_<dtype>.bin        STEPS gradients, one after another
  <case>-<hash>.bin        for each snapshot: param then sum (content-addressed, shared by machines)

Usage: python scripts/make_adagrad_goldens.py [--out DIR] [--native-only]
  --out DIR       write there, copying the committed inputs (make interop records this machine's
                  goldens in a scratch directory and tests against them)
  --native-only   record torch as it is only, not also restricted to AVX2
"""
import json
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_machine  # noqa: E402

NUMEL = 75  # not a multiple of any vector length: every path runs its vector loop and its scalar tail
STEPS = 200
SNAPSHOT_EVERY = 10
LR_CHANGE_STEP = 100

DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "complex64": torch.complex64,
    "complex128": torch.complex128,
}

# name -> constructor options (+ a learning rate set on the group after LR_CHANGE_STEP, as a scheduler would)
OPTION_SETS = {
    "plain": dict(lr=0.01),
    "decay_wd": dict(lr=0.05, lr_decay=0.01, weight_decay=0.1),
    "max_iav_eps": dict(lr=0.02, maximize=True, initial_accumulator_value=0.1, eps=1e-3),
    "lr_change": dict(lr=0.03, weight_decay=0.01, maximize=True, eps=0.3, new_lr=0.007),
}

PATHS = {
    "singleTensor": dict(foreach=False),
    "forEach": dict(foreach=True),
    "fused": dict(fused=True),
}


def real_view(t):
    return torch.view_as_real(t) if t.is_complex() else t


def to_bytes(t):
    flat = real_view(t.detach()).contiguous().reshape(-1)
    if flat.dtype in (torch.float16, torch.bfloat16):
        return flat.view(torch.int16).numpy().tobytes()
    return flat.numpy().tobytes()


def make_inputs(dtype_name, dtype):
    """Deterministic parameter and gradients with mixed magnitudes, zeros and exact small values.

    Built from integers with ldexp (exact), not torch.randn/exp, whose bits differ between CPUs."""
    import math
    import random

    rng = random.Random(1234 + list(DTYPES).index(dtype_name))
    real = torch.float64 if dtype in (torch.float64, torch.complex128) else torch.float32
    shape = (NUMEL, 2) if dtype.is_complex else (NUMEL,)
    count = NUMEL * (2 if dtype.is_complex else 1)

    def draw(spread):
        values = [math.ldexp(rng.randrange(-(1 << 24), 1 << 24), rng.randint(-spread, spread) - 24) for _ in range(count)]
        return torch.tensor(values, dtype=real).reshape(shape)

    # float16 must keep 200 squared gradients below its maximum (65504).
    limit = 8.0 if dtype == torch.float16 else 1e4
    param = draw(3).clamp(-limit, limit)
    grads = []
    for step in range(STEPS):
        g = draw(5).clamp(-limit, limit)
        g[(torch.arange(NUMEL) + step) % 17 == 0] = 0.0  # some zero gradients
        if step % 7 == 3:
            g[:5] = torch.tensor([0.5, -0.25, 1.0, 2.0, -3.0], dtype=real).reshape(-1, *([1] * (g.dim() - 1)))
        grads.append(g)
    if dtype.is_complex:
        return torch.view_as_complex(param.contiguous()).to(dtype), [torch.view_as_complex(g.contiguous()).to(dtype) for g in grads]
    return param.to(dtype), [g.to(dtype) for g in grads]


def read_inputs(directory, dtype_name, dtype):
    """The committed inputs of `dtype_name`, or None when there are none yet."""
    paths = [os.path.join(directory, f"{kind}_{dtype_name}.bin") for kind in ("init", "grads")]
    if not all(os.path.exists(p) for p in paths):
        return None
    storage = {torch.float16: torch.int16, torch.bfloat16: torch.int16}.get(dtype)
    real = {torch.complex64: torch.float32, torch.complex128: torch.float64}.get(dtype, dtype)

    def decode(raw):
        flat = torch.frombuffer(bytearray(raw), dtype=storage or real).clone()
        t = flat.view(dtype) if storage else flat
        return torch.view_as_complex(t.reshape(-1, 2)) if dtype.is_complex else t

    with open(paths[0], "rb") as f:
        param = decode(f.read())
    with open(paths[1], "rb") as f:
        raw = f.read()
    size = len(raw) // STEPS
    return param, [decode(raw[i * size:(i + 1) * size]) for i in range(STEPS)]


def run_case(param0, grads, path_options, options):
    options = dict(options)
    new_lr = options.pop("new_lr", None)
    param = torch.nn.Parameter(param0.clone())
    opt = torch.optim.Adagrad([param], **options, **path_options)
    snapshots = []
    for step in range(1, STEPS + 1):
        if new_lr is not None and step == LR_CHANGE_STEP + 1:
            opt.param_groups[0]["lr"] = new_lr
        param.grad = grads[step - 1].clone()
        opt.step()
        if step % SNAPSHOT_EVERY == 0:
            snapshots.append(to_bytes(param) + to_bytes(opt.state[param]["sum"]))
    return b"".join(snapshots)


# One step on a tensor large enough for torch to split each elementwise op over two threads
# (at::parallel_for, grain 32768): float16/bfloat16 weight decay rounds differently in the scalar tail
# of each thread's chunk. Inputs follow a formula AdagradKernelTests recomputes, so only torch's
# results are stored.
# Two sizes: each thread's chunk is 16401 elements (the same tail, 17, for AVX-512's and AVX2's
# two-vector loop steps) and 32824 (tails of 56 and 24: only the right step for each width matches).
CHUNKED_NUMELS = (32801, 65648)


def chunked_inputs(dtype, numel):
    index = torch.arange(numel, dtype=torch.float64)
    param = ((index * 7919) % 2001 - 1000) / 64
    grad = ((index * 104729) % 1999 - 999) / 128
    return param.to(torch.float32).to(dtype), grad.to(torch.float32).to(dtype)


def chunked_results():
    """One step on each of CHUNKED_NUMELS elements per half dtype: {name: (entry, bytes)}."""
    results = {}
    for dtype_name, numel in ((d, n) for d in ("float16", "bfloat16") for n in CHUNKED_NUMELS):
        dtype = DTYPES[dtype_name]
        param0, grad = chunked_inputs(dtype, numel)
        param = torch.nn.Parameter(param0.clone())
        opt = torch.optim.Adagrad([param], lr=0.01, weight_decay=0.1, foreach=False)
        param.grad = grad.clone()
        opt.step()
        name = f"chunked_singleTensor_{dtype_name}_{numel}"
        entry = {"name": name, "dtype": dtype_name, "numel": numel, "lr": 0.01, "weight_decay": 0.1,
                 "implementation": "singleTensor", "depends_on": ["torch_threads"]}
        results[name] = (entry, to_bytes(param) + to_bytes(opt.state[param]["sum"]))
    return results


def depends_on(dtype_name, path_name, options):
    """What a case's result depends on besides its inputs (see the module doc)."""
    if path_name == "fused":
        return []  # one kernel, correctly rounded sqrt, no tails that round differently
    if dtype_name in ("float32", "complex64"):
        return ["sqrt_f32"]
    if dtype_name in ("float64", "complex128"):
        return ["sqrt_f64"]
    # Weight decay's scalar tails sit at the ends of each thread's chunk; 75 elements are one chunk.
    return []


def record_here(inputs_dir):
    """Runs every case with this process's torch: (cases, {name: bytes})."""
    cases, results = [], {}
    for name, (entry, data) in chunked_results().items():
        cases.append(entry)
        results[name] = data
    for dtype_name, dtype in DTYPES.items():
        param0, grads = read_inputs(inputs_dir, dtype_name, dtype)
        for path_name, path_options in PATHS.items():
            if dtype.is_complex and path_name == "fused":
                continue  # torch: "`fused` does not support sparse grad or complex param"
            option_sets = OPTION_SETS if not dtype.is_complex else {k: OPTION_SETS[k] for k in ("plain", "lr_change")}
            for options_name, options in option_sets.items():
                name = f"{path_name}_{dtype_name}_{options_name}"
                results[name] = run_case(param0, grads, path_options, options)
                cases.append({
                    "name": name,
                    "dtype": dtype_name,
                    "implementation": path_name,
                    "lr": options["lr"],
                    "lr_decay": options.get("lr_decay", 0.0),
                    "weight_decay": options.get("weight_decay", 0.0),
                    "eps": options.get("eps", 1e-10),
                    "maximize": options.get("maximize", False),
                    "initial_accumulator_value": options.get("initial_accumulator_value", 0.0),
                    "new_lr": options.get("new_lr"),
                    "depends_on": depends_on(dtype_name, path_name, options),
                })
    return cases, results


def worker(inputs_dir, scratch):
    """Child process: records this torch's results into `scratch`."""
    cases, results = record_here(inputs_dir)
    torch_machine.write_worker_results(scratch, results, cases=cases)


def ensure_inputs(out_dir, source_dir):
    """Copies or makes the inputs; returns their index entries."""
    inputs = {}
    for dtype_name, dtype in DTYPES.items():
        files = {"init": f"init_{dtype_name}.bin", "grads": f"grads_{dtype_name}.bin"}
        if os.path.abspath(out_dir) != os.path.abspath(source_dir) and read_inputs(source_dir, dtype_name, dtype):
            for file in files.values():
                shutil.copyfile(os.path.join(source_dir, file), os.path.join(out_dir, file))
        if read_inputs(out_dir, dtype_name, dtype) is None:
            param0, grads = make_inputs(dtype_name, dtype)
            with open(os.path.join(out_dir, files["init"]), "wb") as f:
                f.write(to_bytes(param0))
            with open(os.path.join(out_dir, files["grads"]), "wb") as f:
                f.write(b"".join(to_bytes(g) for g in grads))
        inputs[dtype_name] = files
    return inputs


def main():
    default_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "adagrad")
    args = torch_machine.golden_arguments(default_dir, worker)
    index_path = os.path.join(args.out, "index.json")
    index = {}
    if os.path.exists(index_path):
        with open(index_path) as f:
            index = json.load(f)
    inputs = ensure_inputs(args.out, default_dir)
    if index.get("inputs") != inputs or index.get("numel") != NUMEL or index.get("steps") != STEPS:
        index = {}  # new inputs: results recorded from other inputs are void
    machines, recorded = torch_machine.record(os.path.abspath(__file__), args.out, args.native_only,
                                              index.get("machines", []))
    cases = recorded["cases"]

    # A case with no declared dependency must come out the same everywhere.
    torch_machine.require_machine_independent(cases, machines)

    index = {"numel": NUMEL, "steps": STEPS, "snapshot_every": SNAPSHOT_EVERY, "lr_change_step": LR_CHANGE_STEP,
             "inputs": inputs, "cases": cases, "machines": machines}
    with open(index_path, "w") as f:
        json.dump(index, f, indent=1)
    torch_machine.remove_unreferenced(args.out, machines, lambda file: file.endswith(".bin") and "-" in file)
    print(f"{len(cases)} cases, {len(machines)} machines in {index_path}")


if __name__ == "__main__":
    main()
