#!/usr/bin/env python3
"""Writes golden Adagrad trajectories from real torch for AdagradFidelityTests.

Every case runs torch.optim.Adagrad on one parameter for STEPS steps with pre-generated, saved
gradients, and records param and sum every SNAPSHOT_EVERY steps. Cases cover the three CPU paths
(single-tensor, foreach, fused) x float32/float64/float16/bfloat16 x option sets, plus complex64/128
on the two paths that accept them.

Output (Tests/Fixtures/adagrad/ by default):
  index.json               what torch/machine produced the files, and one entry per case
  init_<dtype>.bin         the initial parameter (little-endian, numel elements; complex = real pairs)
  grads_<dtype>.bin        STEPS gradients, one after another
  <case>.bin               for each snapshot: param then sum

Usage: python scripts/make_adagrad_goldens.py [output_dir]
"""
import json
import os
import sys

import torch

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
    """Deterministic parameter and gradients with mixed magnitudes, zeros and exact small values."""
    gen = torch.Generator().manual_seed(1234 + list(DTYPES).index(dtype_name))
    real = torch.float64 if dtype in (torch.float64, torch.complex128) else torch.float32
    shape = (NUMEL, 2) if dtype.is_complex else (NUMEL,)

    def draw(scale):
        x = torch.randn(shape, generator=gen, dtype=real) * torch.exp(torch.randn(shape, generator=gen, dtype=real) * scale)
        return x

    # float16 must keep 200 squared gradients below its maximum (65504).
    limit = 8.0 if dtype == torch.float16 else 1e4
    param = draw(1.0).clamp(-limit, limit)
    grads = []
    for step in range(STEPS):
        g = draw(1.5).clamp(-limit, limit)
        g[(torch.arange(NUMEL) + step) % 17 == 0] = 0.0  # some zero gradients
        if step % 7 == 3:
            g[:5] = torch.tensor([0.5, -0.25, 1.0, 2.0, -3.0], dtype=real).reshape(-1, *([1] * (g.dim() - 1)))
        grads.append(g)
    if dtype.is_complex:
        return torch.view_as_complex(param.contiguous()).to(dtype), [torch.view_as_complex(g.contiguous()).to(dtype) for g in grads]
    return param.to(dtype), [g.to(dtype) for g in grads]


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
CHUNKED_NUMEL = 32801


def chunked_inputs(dtype):
    index = torch.arange(CHUNKED_NUMEL, dtype=torch.float64)
    param = ((index * 7919) % 2001 - 1000) / 64
    grad = ((index * 104729) % 1999 - 999) / 128
    return param.to(torch.float32).to(dtype), grad.to(torch.float32).to(dtype)


def write_chunked(out_dir, index):
    if torch.get_num_threads() != 2:
        print("warning: chunked cases assume torch uses 2 threads; skipped")
        return
    for dtype_name in ("float16", "bfloat16"):
        dtype = DTYPES[dtype_name]
        param0, grad = chunked_inputs(dtype)
        param = torch.nn.Parameter(param0.clone())
        opt = torch.optim.Adagrad([param], lr=0.01, weight_decay=0.1, foreach=False)
        param.grad = grad.clone()
        opt.step()
        name = f"chunked_singleTensor_{dtype_name}"
        with open(os.path.join(out_dir, name + ".bin"), "wb") as f:
            f.write(to_bytes(param) + to_bytes(opt.state[param]["sum"]))
        index["chunked"].append({"name": name, "file": name + ".bin", "dtype": dtype_name, "numel": CHUNKED_NUMEL,
                                 "lr": 0.01, "weight_decay": 0.1, "implementation": "singleTensor"})


def cpu_vendor():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "adagrad")
    os.makedirs(out_dir, exist_ok=True)
    index = {
        "torch_version": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        # MKL's square root and ATen's vector length depend on the CPU; see AdagradFidelityTests.
        "cpu_vendor": cpu_vendor(),
        "numel": NUMEL,
        "steps": STEPS,
        "snapshot_every": SNAPSHOT_EVERY,
        "lr_change_step": LR_CHANGE_STEP,
        "inputs": {},
        "cases": [],
        "chunked": [],
    }
    write_chunked(out_dir, index)
    for dtype_name, dtype in DTYPES.items():
        param0, grads = make_inputs(dtype_name, dtype)
        init_file, grads_file = f"init_{dtype_name}.bin", f"grads_{dtype_name}.bin"
        with open(os.path.join(out_dir, init_file), "wb") as f:
            f.write(to_bytes(param0))
        with open(os.path.join(out_dir, grads_file), "wb") as f:
            f.write(b"".join(to_bytes(g) for g in grads))
        index["inputs"][dtype_name] = {"init": init_file, "grads": grads_file}
        for path_name, path_options in PATHS.items():
            if dtype.is_complex and path_name == "fused":
                continue  # torch: "`fused` does not support sparse grad or complex param"
            option_sets = OPTION_SETS if not dtype.is_complex else {k: OPTION_SETS[k] for k in ("plain", "lr_change")}
            for options_name, options in option_sets.items():
                name = f"{path_name}_{dtype_name}_{options_name}"
                with open(os.path.join(out_dir, name + ".bin"), "wb") as f:
                    f.write(run_case(param0, grads, path_options, options))
                entry = {
                    "name": name,
                    "file": name + ".bin",
                    "dtype": dtype_name,
                    "implementation": path_name,
                    "lr": options["lr"],
                    "lr_decay": options.get("lr_decay", 0.0),
                    "weight_decay": options.get("weight_decay", 0.0),
                    "eps": options.get("eps", 1e-10),
                    "maximize": options.get("maximize", False),
                    "initial_accumulator_value": options.get("initial_accumulator_value", 0.0),
                    "new_lr": options.get("new_lr"),
                }
                index["cases"].append(entry)
    with open(os.path.join(out_dir, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
    print(f"wrote {len(index['cases'])} cases to {out_dir}")


if __name__ == "__main__":
    main()
