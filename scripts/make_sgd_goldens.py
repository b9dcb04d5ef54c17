#!/usr/bin/env python3
"""Records golden SGD trajectories from real torch for SGDFidelityTests.

Every dense case runs torch.optim.SGD on one parameter (two in the `late_*` cases, the second
getting gradients only from LATE_START on) for STEPS steps with saved gradients, and records the
parameters, their momentum buffers and (where torch's foreach path writes into them) the
gradients every SNAPSHOT_EVERY steps. Cases cover the three CPU paths (single-tensor, foreach,
fused) x float32/float64/float16/bfloat16 x option sets, complex64/128 on the two paths that accept
them, sparse gradients (coalesced or not, with and without dense dimensions) on the two paths that
accept them, and a few steps on tensors large enough for torch to split over threads.

The dense inputs are the Adagrad goldens' (Tests/Fixtures/adagrad/init_*.bin, grads_*.bin: 75
elements, 200 steps), read, never rewritten; the index records their SHA-256, and results recorded
from other inputs are dropped. Sparse and chunked inputs follow formulas the test recomputes.

torch's bits depend on the machine in one way here: where its threads split float16/bfloat16
tensors (`torch_threads`). Every case also assumes ATen's kernels fuse multiply-adds (`aten_fma`:
AVX2 or AVX-512 capability; fused SGD runs its AVX2 kernel on AVX-512 CPUs too). As the Adagrad
script does (and through its machine-recording code, scripts/torch_machine.py), the index keeps one
result set per kind of machine, torch as it is and, on an AVX-512 CPU, restricted to AVX2, and a
case that declares no dependency beyond `aten_fma` must come out the same on every machine.

Output directory (Tests/Fixtures/sgd/ by default):
  index.json             inputs, cases, and per machine its facts and one file per case
  <case>-<hash>.bin      for each snapshot, each parameter: param, then momentum_buffer (when the
                         case has momentum), then grad (when `records_grad`); little-endian

Usage: python scripts/make_sgd_goldens.py [--out DIR] [--native-only]
"""
import hashlib
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_adagrad_goldens as adagrad  # noqa: E402  (its inputs and byte layout)
import torch_machine  # noqa: E402

INPUTS_DIR = os.path.join(HERE, "..", "Tests", "Fixtures", "adagrad")
STEPS = adagrad.STEPS
NUMEL = adagrad.NUMEL
SNAPSHOT_EVERY = 20
LR_CHANGE_STEP = 100
LATE_START = 5

DTYPES = adagrad.DTYPES

# name -> constructor options; `new_lr` is set on the group after LR_CHANGE_STEP (as a scheduler
# would), `tensor_lr` passes lr as a float32 0-dim tensor.
OPTION_SETS = {
    "plain": dict(lr=0.01),
    "wd_max": dict(lr=0.05, weight_decay=0.1, maximize=True),
    "momentum": dict(lr=0.01, momentum=0.9),
    "damp_wd": dict(lr=0.03, momentum=0.8, dampening=0.3, weight_decay=0.02),
    "nesterov": dict(lr=0.007, momentum=0.95, nesterov=True),
    "nesterov_wd_max": dict(lr=0.007, momentum=0.9, nesterov=True, weight_decay=0.05, maximize=True),
    "lr_change": dict(lr=0.02, momentum=0.5, dampening=0.1, maximize=True, new_lr=0.004),
    "tensor_lr": dict(lr=0.013, momentum=0.7, tensor_lr=True),
}
COMPLEX_SETS = ("plain", "damp_wd", "nesterov", "lr_change")

PATHS = {
    "singleTensor": dict(foreach=False),
    "forEach": dict(foreach=True),
    "fused": dict(fused=True),
}


def writes_grad(path_name, options):
    """torch's foreach path adds momentum * buf into the gradients themselves (`_foreach_add_`)."""
    return (path_name == "forEach" and options.get("nesterov", False) and not options.get("maximize", False)
            and options.get("weight_decay", 0) == 0)


def snapshot(params, opt, record_grad):
    data = b""
    for p in params:
        data += adagrad.to_bytes(p)
        buf = opt.state[p].get("momentum_buffer") if p in opt.state else None
        if buf is not None:
            data += adagrad.to_bytes(buf)
        if record_grad:
            data += adagrad.to_bytes(p.grad)
    return data


def make_optimizer(params, path_options, options):
    options = dict(options)
    options.pop("new_lr", None)
    if options.pop("tensor_lr", False):
        options["lr"] = torch.tensor(options["lr"], dtype=torch.float32)
    return torch.optim.SGD(params, **options, **path_options)


def run_dense(param0, grads, path_name, options, late):
    """The trajectory of one case: snapshots of every parameter (two when `late`)."""
    params = [torch.nn.Parameter(param0.clone())]
    if late:
        params.append(torch.nn.Parameter(param0.flip(0).clone()))
    opt = make_optimizer(params, PATHS[path_name], options)
    record_grad = writes_grad(path_name, options)
    snapshots = []
    for step in range(1, STEPS + 1):
        if "new_lr" in options and step == LR_CHANGE_STEP + 1:
            opt.param_groups[0]["lr"] = options["new_lr"]
        params[0].grad = grads[step - 1].clone()
        if late:
            params[1].grad = grads[step - 1].flip(0).clone() if step >= LATE_START else None
        opt.step()
        if step % SNAPSHOT_EVERY == 0:
            snapshots.append(snapshot(params, opt, record_grad))
    return b"".join(snapshots)


# Sparse gradients, NNZ entries a step at positions from a formula with repeats (uncoalesced
# unless the layout coalesces them); the test recomputes them. Layouts: "rows" (sparse rows of a
# [12, 5] parameter, dense columns), "rows_coalesced" (the same, coalesced), "elements" (one sparse
# dimension of 60), "wide_strided" (rows of a [6, 40] parameter with strided values: ATen's slow
# path, which coalesces and adds each row with `add_`, whose vector loop takes 32 two-byte
# elements). Values are small binary fractions every dtype holds exactly.
NNZ, SPARSE_STEPS, SPARSE_SNAPSHOT_EVERY = 9, 20, 5
SPARSE_SHAPES = {"rows": (12, 5), "rows_coalesced": (12, 5), "elements": (60,), "wide_strided": (6, 40)}
SPARSE_SETS = {"plain": dict(lr=0.01), "max_tensor_lr": dict(lr=0.02, maximize=True, tensor_lr=True)}


def sparse_param(dtype, shape):
    count = 1
    for size in shape:
        count *= size
    index = torch.arange(count, dtype=torch.float64)
    return (((index * 37) % 29 - 14) / 16).to(torch.float32).to(dtype).reshape(shape)


def sparse_grad(dtype, layout, step):
    shape = SPARSE_SHAPES[layout]
    block = shape[1] if len(shape) > 1 else 1
    k = torch.arange(NNZ, dtype=torch.int64)
    positions = (k * 5 + step * 3) % 7 * 3 % shape[0]  # repeats within a step
    values = (((torch.arange(NNZ * block, dtype=torch.float64) * 13 + step * 7) % 31 - 15) / 32).to(torch.float32).to(dtype)
    if layout == "wide_strided":
        values = values.reshape(block, NNZ).t()  # element [k, j] at k + j * NNZ
    else:
        values = values.reshape((NNZ, block) if len(shape) > 1 else (NNZ,))
    grad = torch.sparse_coo_tensor(positions.unsqueeze(0), values, shape)
    return grad.coalesce() if layout == "rows_coalesced" else grad


def run_sparse(dtype, layout, path_name, options):
    param = torch.nn.Parameter(sparse_param(dtype, SPARSE_SHAPES[layout]))
    opt = make_optimizer([param], PATHS[path_name], options)
    snapshots = []
    for step in range(1, SPARSE_STEPS + 1):
        param.grad = sparse_grad(dtype, layout, step)
        opt.step()
        if step % SPARSE_SNAPSHOT_EVERY == 0:
            snapshots.append(adagrad.to_bytes(param))
    return b"".join(snapshots)


# A few steps on tensors large enough for torch to split each elementwise op over its threads
# (grain 32768): float16/bfloat16 `add(alpha:)` rounds differently in each thread's scalar tail.
# Inputs follow Adagrad's chunked formula; the gradient of step s is the first gradient rolled by s.
CHUNKED = [("float16", 32801), ("bfloat16", 32801), ("float16", 65648)]
CHUNKED_STEPS = 3
CHUNKED_OPTIONS = dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.1)


def run_chunked(dtype, numel, path_name):
    param0, grad0 = adagrad.chunked_inputs(dtype, numel)
    param = torch.nn.Parameter(param0.clone())
    opt = torch.optim.SGD([param], **CHUNKED_OPTIONS, **PATHS[path_name])
    for step in range(CHUNKED_STEPS):
        param.grad = grad0.roll(step).clone()
        opt.step()
    return adagrad.to_bytes(param) + adagrad.to_bytes(opt.state[param]["momentum_buffer"])


def entry(name, dtype_name, path_name, options, **extra):
    return {
        "name": name, "dtype": dtype_name, "implementation": path_name,
        "lr": options["lr"], "momentum": options.get("momentum", 0.0), "dampening": options.get("dampening", 0.0),
        "weight_decay": options.get("weight_decay", 0.0), "nesterov": options.get("nesterov", False),
        "maximize": options.get("maximize", False), "new_lr": options.get("new_lr"),
        "tensor_lr": options.get("tensor_lr", False), "records_grad": writes_grad(path_name, options),
        **extra,
    }


def record_here(inputs_dir):
    """Runs every case with this process's torch: (cases, {name: bytes})."""
    cases, results = [], {}
    for dtype_name, dtype in DTYPES.items():
        param0, grads = adagrad.read_inputs(inputs_dir, dtype_name, dtype)
        for path_name in PATHS:
            if dtype.is_complex and path_name == "fused":
                continue  # torch's fused check: "`fused=True` requires all the params to be floating point"
            sets = OPTION_SETS if not dtype.is_complex else {k: OPTION_SETS[k] for k in COMPLEX_SETS}
            for options_name, options in sets.items():
                name = f"{path_name}_{dtype_name}_{options_name}"
                results[name] = run_dense(param0, grads, path_name, options, late=False)
                cases.append(entry(name, dtype_name, path_name, options, kind="dense", depends_on=["aten_fma"]))
            # Buffers appear at different steps: foreach scales the dtype's buffers with
            # _foreach_mul_ only once every one exists; the fused path refuses the mix.
            if dtype_name in ("float32", "float16") and path_name != "fused":
                options = OPTION_SETS["damp_wd"]
                name = f"{path_name}_{dtype_name}_late"
                results[name] = run_dense(param0, grads, path_name, options, late=True)
                cases.append(entry(name, dtype_name, path_name, options, kind="dense", late_start=LATE_START,
                                   depends_on=["aten_fma"]))
    for dtype_name in ("float32", "float64", "float16", "bfloat16"):
        for layout in SPARSE_SHAPES:
            for path_name in ("singleTensor", "forEach"):
                for options_name, options in SPARSE_SETS.items():
                    name = f"sparse_{layout}_{path_name}_{dtype_name}_{options_name}"
                    results[name] = run_sparse(DTYPES[dtype_name], layout, path_name, options)
                    cases.append(entry(name, dtype_name, path_name, options, kind="sparse", layout=layout,
                                       depends_on=["aten_fma"]))
    for dtype_name, numel in CHUNKED:
        for path_name in ("singleTensor", "forEach"):
            if numel != CHUNKED[0][1] and path_name != "singleTensor":
                continue
            name = f"chunked_{path_name}_{dtype_name}_{numel}"
            results[name] = run_chunked(DTYPES[dtype_name], numel, path_name)
            cases.append(entry(name, dtype_name, path_name, CHUNKED_OPTIONS, kind="chunked", numel=numel,
                               depends_on=["aten_fma", "torch_threads"]))
    return cases, results


def worker(out_dir, scratch):
    """Child process: records this torch's results into `scratch`."""
    cases, results = record_here(INPUTS_DIR)
    torch_machine.write_worker_results(scratch, results, cases=cases)


def input_digests():
    digests = {}
    for dtype_name in DTYPES:
        for kind in ("init", "grads"):
            file = f"{kind}_{dtype_name}.bin"
            with open(os.path.join(INPUTS_DIR, file), "rb") as f:
                digests[file] = hashlib.sha256(f.read()).hexdigest()
    return digests


def main():
    default_dir = os.path.join(HERE, "..", "Tests", "Fixtures", "sgd")
    args = torch_machine.golden_arguments(default_dir, worker)
    index_path = os.path.join(args.out, "index.json")
    index = {}
    if os.path.exists(index_path):
        with open(index_path) as f:
            index = json.load(f)
    inputs = {"directory": "adagrad", "sha256": input_digests()}
    if index.get("inputs") != inputs or index.get("numel") != NUMEL or index.get("steps") != STEPS:
        index = {}  # other inputs: results recorded from them are void
    machines, recorded = torch_machine.record(os.path.abspath(__file__), args.out, args.native_only,
                                              index.get("machines", []))
    cases = recorded["cases"]

    # A case that depends on nothing but ATen's FMAs must come out the same everywhere.
    torch_machine.require_machine_independent(cases, machines, shared=("aten_fma",))

    index = {"numel": NUMEL, "steps": STEPS, "snapshot_every": SNAPSHOT_EVERY, "lr_change_step": LR_CHANGE_STEP,
             "sparse": {"nnz": NNZ, "steps": SPARSE_STEPS, "snapshot_every": SPARSE_SNAPSHOT_EVERY,
                        "shapes": {layout: list(shape) for layout, shape in SPARSE_SHAPES.items()}},
             "chunked_steps": CHUNKED_STEPS, "inputs": inputs, "cases": cases, "machines": machines}
    with open(index_path, "w") as f:
        json.dump(index, f, indent=1)
    torch_machine.remove_unreferenced(args.out, machines, lambda file: file.endswith(".bin") and "-" in file)
    print(f"{len(cases)} cases, {len(machines)} machines in {index_path}")


if __name__ == "__main__":
    main()
