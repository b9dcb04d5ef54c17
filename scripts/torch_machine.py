"""The facts about this machine that torch's CPU results depend on, as the goldens record them.

Tests map them to a rounding model (Sources/Optim/TorchRounding.swift, ckpt_torch_rounding_for in
Sources/CKernels/adagrad.c): MKL picks its square-root kernel by CPU vendor and by the instruction
set it may use; ATen's vector width follows its capability; parallel chunks follow the thread count.
"""
import os
import platform

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


def slug(facts):
    """The directory name of one machine's variant of the fixtures."""
    return f"{facts['cpu_vendor']}-mkl{facts['mkl_isa']}-t{facts['torch_threads']}"


def variant_directory(base, environment):
    """Where a machine-variant run of a fixture script writes, under `base`/machines/."""
    return os.path.join(base, "machines", slug(facts()))


if __name__ == "__main__":
    # Records this machine's variants of the machine-dependent fixtures: torch as it is and, on an
    # AVX-512 CPU, restricted to AVX2 (which rounds as an AVX2 CPU of the same vendor does).
    import subprocess
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    for environment in forced_configurations():
        for script in ("make_optim_fixtures.py", "make_rename_fixtures.py"):
            subprocess.run([sys.executable, os.path.join(here, script), "--machine-variant"],
                           env={**os.environ, **environment}, check=True)
    subprocess.run([sys.executable, os.path.join(here, "make_adagrad_goldens.py")], check=True)
    subprocess.run([sys.executable, os.path.join(here, "make_sqrt_goldens.py")], check=True)
