"""The facts about this machine that torch's CPU results depend on, as the goldens record them.

Tests map them to a rounding model (Sources/Optim/TorchRounding.swift, ckpt_torch_rounding_for in
Sources/CKernels/adagrad.c): MKL picks its square-root kernel by CPU vendor and by the instruction
set it may use; ATen's vector width follows its capability; parallel chunks follow the thread count.
"""
import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile

import torch


def cpu_flags_and_vendor():
    flags, vendor = set(), None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id") and vendor is None:
                    vendor = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return flags, vendor or platform.machine()


def facts():
    """What the goldens record about the torch that made them."""
    flags, vendor = cpu_flags_and_vendor()
    if {"avx512f", "avx512vl", "avx512bw", "avx512dq"} <= flags:
        cpu_isa = "AVX512"
    elif {"avx2", "fma"} <= flags:
        cpu_isa = "AVX2"
    else:
        cpu_isa = "DEFAULT"
    # MKL_ENABLE_INSTRUCTIONS caps MKL's kernels (AVX2, AVX512, ...); MKL uses all the CPU has otherwise.
    mkl_isa = os.environ.get("MKL_ENABLE_INSTRUCTIONS", cpu_isa).upper() if torch.backends.mkl.is_available() else "NONE"
    if mkl_isa.startswith("AVX512"):
        mkl_isa = "AVX512"
    return {
        "cpu_vendor": vendor,
        "mkl_isa": mkl_isa,
        "aten_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
    }


def forced_configurations():
    """Environments that make torch on this machine round as on a narrower one of the same vendor."""
    flags, _ = cpu_flags_and_vendor()
    configurations = [{}]
    if "avx512f" in flags:
        configurations.append({"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"})
    return configurations


def same_machine(a, b):
    keys = ("cpu_vendor", "mkl_isa", "aten_capability", "torch_threads")
    return all(a.get(k) == b.get(k) for k in keys)


def golden_arguments(default_out, worker):
    """The options of a golden script: --out DIR, --native-only, and the internal --worker DIR.

    In a worker process, runs `worker(out, scratch)` and exits; else makes the output folder."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=default_out)
    parser.add_argument("--native-only", action="store_true", help="record torch as it is only")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.out, args.worker)
        sys.exit(0)
    os.makedirs(args.out, exist_ok=True)
    return args


def write_worker_results(scratch, results, **extra):
    """In a worker: each result as scratch/<name>.bin, and results.json with this torch's facts."""
    for name, data in results.items():
        with open(os.path.join(scratch, name + ".bin"), "wb") as f:
            f.write(data)
    with open(os.path.join(scratch, "results.json"), "w") as f:
        json.dump({"facts": facts(), "names": list(results), **extra}, f)


def record(script, out, native_only, machines, prefix=""):
    """Runs `script --worker` under each configuration (torch as it is; restricted to AVX2 too unless
    `native_only`), stores each result in `out` named by its content, and puts the machine's entry
    (its facts and {name: file}) in place of any earlier one of the same machine.

    Returns the machines and the last worker's results.json."""
    configurations = [{}] if native_only else forced_configurations()
    recorded = None
    for environment in configurations:
        with tempfile.TemporaryDirectory() as scratch:
            subprocess.run([sys.executable, script, "--out", out, "--worker", scratch],
                           env={**os.environ, **environment}, check=True)
            with open(os.path.join(scratch, "results.json")) as f:
                recorded = json.load(f)
            files = {}
            for name in recorded["names"]:
                with open(os.path.join(scratch, name + ".bin"), "rb") as f:
                    data = f.read()
                files[name] = f"{prefix}{name}-{hashlib.sha256(data).hexdigest()[:12]}.bin"
                with open(os.path.join(out, files[name]), "wb") as f:
                    f.write(data)
        machine = {**recorded["facts"], "made_with": " ".join(f"{k}={v}" for k, v in environment.items())}
        machines = [m for m in machines if not same_machine(m, machine)] + [{**machine, "results": files}]
        print(f"recorded {len(files)} results for {machine}")
    return machines, recorded


def require_machine_independent(cases, machines, shared=()):
    """Exits if a case that declares no dependency besides `shared` (facts every recorded machine
    has alike) came out differently on two recorded machines."""
    for case in cases:
        if set(case["depends_on"]) - set(shared):
            continue
        seen = {m["results"].get(case["name"]) for m in machines} - {None}
        if len(seen) > 1:
            sys.exit(f"{case['name']} declares no machine dependency but differs between machines: {sorted(seen)}")


def remove_unreferenced(out, machines, is_result):
    """Deletes result files in `out` (those `is_result` accepts) that no machine refers to."""
    referenced = {file for m in machines for file in m["results"].values()}
    for file in os.listdir(out):
        if is_result(file) and file not in referenced:
            os.remove(os.path.join(out, file))


def slug(facts):
    """The directory name of one machine's variant of the fixtures."""
    return f"{facts['cpu_vendor']}-mkl{facts['mkl_isa']}-t{facts['torch_threads']}"


def variant_directory(base, environment):
    """Where a machine-variant run of a fixture script writes, under `base`/machines/."""
    return os.path.join(base, "machines", slug(facts()))


if __name__ == "__main__":
    # Records this machine's variants of the machine-dependent fixtures: torch as it is and, on an
    # AVX-512 CPU, restricted to AVX2 (which rounds as an AVX2 CPU of the same vendor does).
    here = os.path.dirname(os.path.abspath(__file__))
    for environment in forced_configurations():
        for script in ("make_optim_fixtures.py", "make_rename_fixtures.py"):
            subprocess.run([sys.executable, os.path.join(here, script), "--machine-variant"],
                           env={**os.environ, **environment}, check=True)
    subprocess.run([sys.executable, os.path.join(here, "make_adagrad_goldens.py")], check=True)
    subprocess.run([sys.executable, os.path.join(here, "make_sgd_goldens.py")], check=True)
    subprocess.run([sys.executable, os.path.join(here, "make_sqrt_goldens.py")], check=True)
