#!/usr/bin/env python3
"""Generate ckpt's numeric fixtures with real PyTorch and numpy: casts, statistics and .npy files.

Usage: python scripts/make_numeric_fixtures.py Tests/Fixtures/numeric

Writes (every expected value computed by torch or numpy, never by ckpt):
  casts.pt          dict "<source>" -> source tensor, "<source>-><target>" -> source.to(target)
                    (torch.save; the Swift tests load it with ckpt's reader and compare bits)
  stats_input.pt    a nested tree of tensors of every kind (views, NaN, Inf, empty, large)
  stats_expected.json
                    {"tensors": [{"path": "a/b", "dtype": str, "count": int, "min": F|null,
                     "max": F|null, "mean": F|null, "std": F|null, "l2_norm": F, "zeros": int,
                     "nans": int, "infs": int}]}, F a float or "nan"/"inf"/"-inf"; computed in
                    float64 (t.double()); std is torch.std's default (unbiased, correction=1)
  npy_headers.json  [{"descr": str, "shape": [int], "hex": header bytes numpy writes}]

Values come from seeded generators, so re-running writes the same files.
"""

import json
import math
import os
import sys

import numpy as np
import torch
from numpy.lib import _format_impl as npformat

OUT = sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/numeric"
os.makedirs(OUT, exist_ok=True)
gen = torch.Generator().manual_seed(20261126)


def f32_sources():
    specials = [0.0, -0.0, 1.0, -1.0, 0.5, 1.5, 2.5, -2.5, 3.0, 100.25, math.inf, -math.inf,
                3.4028234663852886e38, 1.1754943508222875e-38, 1.401298464324817e-45,
                65504.0, 65519.99, 65520.0, 65536.0, 6.103515625e-05, 5.960464477539063e-08,
                2.9802322387695312e-08, 448.0, 464.0, 465.0, 479.9, 480.0, 500.0, -480.0,
                57344.0, 61439.0, 61440.0, 2.0 ** -9, 2.0 ** -10, 1.5 * 2.0 ** -10, 2.0 ** -11,
                2.0 ** -16, 2.0 ** -17, 3 * 2.0 ** -17, 1e-30, -1e-30, 1.00390625, 1.01171875,
                1.0078125, 1.0234375]
    base = torch.tensor(specials, dtype=torch.float32)
    scales = torch.tensor([1e-40, 1e-20, 1e-8, 1e-3, 1.0, 30.0, 1e3, 1e5, 1e20], dtype=torch.float32)
    noise = torch.randn(len(scales), 400, generator=gen) * scales[:, None]
    # Random bit patterns cover every exponent; NaNs are left out (their payloads are checked apart).
    bits = torch.randint(0, 2 ** 31 - 1, (4000,), generator=gen, dtype=torch.int64).to(torch.int32)
    bits = torch.cat([bits, bits | torch.tensor(-2 ** 31, dtype=torch.int32)]).view(torch.float32)
    bits = bits[~torch.isnan(bits)]
    return torch.cat([base, noise.flatten(), bits])


def main():
    casts = {}
    floats = f32_sources()
    casts["float32"] = floats
    for target in [torch.float64, torch.float16, torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2,
                   torch.complex64, torch.complex128, torch.bool]:
        casts[f"float32->{str(target)[6:]}"] = floats.to(target)
    nan = torch.tensor([math.nan, -math.nan], dtype=torch.float32)
    casts["nan32"] = nan
    for target in [torch.float64, torch.float16, torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2]:
        casts[f"nan32->{str(target)[6:]}"] = nan.to(target)

    small = (torch.randn(3000, generator=gen) * 60).to(torch.float32)
    small = torch.cat([small, torch.tensor([-0.0, 127.9, -128.9, 255.5, -1.5, 0.99, -0.99])])
    casts["small32"] = small
    for target in [torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool]:
        casts[f"small32->{str(target)[6:]}"] = small.to(target)

    doubles = torch.randn(3000, generator=gen, dtype=torch.float64) * torch.logspace(-45, 45, 3000, dtype=torch.float64)
    # Just above and below float32 ties, where rounding through float32 first (c10) differs from rounding once.
    halfway = torch.tensor([1.0 + 2.0 ** -24 + 2.0 ** -40, 1.0 + 2.0 ** -8 + 2.0 ** -30, 1.0 + 2.0 ** -11 + 2.0 ** -40,
                            1.0 + 2.0 ** -4 + 2.0 ** -30, 65519.999999, 1e300, -1e300, 1e-300, math.inf, -0.0],
                           dtype=torch.float64)
    doubles = torch.cat([halfway, doubles])
    casts["float64"] = doubles
    for target in [torch.float32, torch.float16, torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2, torch.complex64]:
        casts[f"float64->{str(target)[6:]}"] = doubles.to(target)

    ints = torch.cat([torch.randint(-2 ** 62, 2 ** 62, (1000,), generator=gen),
                      torch.tensor([0, 1, -1, 2 ** 53 + 1, 2 ** 24 + 1, 2 ** 63 - 1, -2 ** 63, 255, 256, -129, 65505])])
    casts["int64"] = ints
    for target in [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int32, torch.int16, torch.int8,
                   torch.uint8, torch.bool]:
        casts[f"int64->{str(target)[6:]}"] = ints.to(target)

    for name, dtype in [("float16", torch.float16), ("bfloat16", torch.bfloat16)]:
        every = torch.arange(0, 65536, dtype=torch.int32).to(torch.uint16).view(dtype)
        casts[name] = every
        casts[f"{name}->float32"] = every.to(torch.float32)
    for name, dtype in [("float8_e4m3fn", torch.float8_e4m3fn), ("float8_e5m2", torch.float8_e5m2)]:
        every = torch.arange(0, 256, dtype=torch.int32).to(torch.uint8).view(dtype)
        casts[name] = every
        casts[f"{name}->float32"] = every.to(torch.float32)
        casts[f"{name}->bfloat16"] = every.to(torch.bfloat16)

    complexes = torch.randn(500, generator=gen, dtype=torch.complex128) * 1e3
    casts["complex128"] = complexes
    casts["complex128->complex64"] = complexes.to(torch.complex64)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        casts["complex128->float32"] = complexes.to(torch.float32)
    bools = torch.randint(0, 2, (100,), generator=gen).to(torch.bool)
    casts["bool"] = bools
    casts["bool->float32"] = bools.to(torch.float32)
    casts["bool->bfloat16"] = bools.to(torch.bfloat16)
    torch.save(casts, os.path.join(OUT, "casts.pt"))

    write_stats()
    write_npy()


def stats_tree():
    big = torch.randn(270_000, generator=gen) * 3 + 1
    base = torch.randn(50, 70, generator=gen)
    return {
        "model": {
            "encoder.layer.0.weight": big,
            "encoder.layer.0.bias": torch.zeros(7),
            "encoder.layer.1.weight": base.t(),
            "decoder.weight": (torch.randn(33, 17, generator=gen) * 0.02).to(torch.bfloat16),
            "decoder.bias": torch.tensor([0.0, 1.5, -2.25, 0.0], dtype=torch.float16),
        },
        "optimizer": {"state": {0: {"sum": torch.rand(1000, generator=gen), "step": torch.tensor(12.0)}},
                      "param_groups": [{"lr": 0.01, "params": [0]}]},
        "special": {
            "with_nan": torch.tensor([1.0, math.nan, 2.0]),
            "with_inf": torch.tensor([1.0, math.inf, -3.0]),
            "both_inf": torch.tensor([math.inf, -math.inf, 0.0]),
            "empty": torch.zeros(0, 3),
            "one": torch.tensor([2.0]),
            "scalar": torch.tensor(3.5, dtype=torch.float64),
            "offset": 1e8 + torch.randn(5000, generator=gen, dtype=torch.float64) * 1e-3,
            "expanded": torch.tensor([1.0, 2.0, 3.0]).expand(4, 3),
            "sliced": torch.arange(40, dtype=torch.float32).reshape(5, 8)[1:4, 2:7],
            # NaN and Inf inside the vectorized part of a block, not only in its tail.
            "nan_in_bulk": torch.randn(5000, generator=gen).index_fill_(0, torch.tensor([100]), math.nan),
            "inf_in_bulk": torch.randn(3000, generator=gen, dtype=torch.float64).index_fill_(
                0, torch.tensor([7]), math.inf).index_fill_(0, torch.tensor([2000]), -math.inf),
            "pos_inf_in_bulk": torch.randn(1000, generator=gen).index_fill_(0, torch.tensor([33]), math.inf),
            "bf16_bulk": (torch.randn(10000, generator=gen) * 100).to(torch.bfloat16).index_fill_(
                0, torch.tensor([4097]), 0.0),
            "f16_bulk": (torch.randn(9000, generator=gen) * 100).to(torch.float16).index_fill_(
                0, torch.tensor([8]), math.inf),
            # Blocks (4096 elements) that start with an outlier, and a constant block.
            "outlier_first": (torch.randn(10000, generator=gen) + 5).index_fill_(0, torch.tensor([0]), 1e6).index_fill_(
                0, torch.tensor([4096]), -3e5),
            "constant": torch.full((5000,), 0.1),
        },
        "ints": {
            "int64": torch.randint(-1000, 1000, (500,), generator=gen),
            "int8": torch.randint(-128, 128, (300,), generator=gen).to(torch.int8),
            "uint8": torch.randint(0, 256, (300,), generator=gen).to(torch.uint8),
            "bool": torch.randint(0, 2, (99,), generator=gen).to(torch.bool),
        },
        "f8": (torch.randn(200, generator=gen) * 10).to(torch.float8_e4m3fn),
        "complex": torch.randn(64, generator=gen, dtype=torch.complex64),
    }


def number(x):
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def walk(value, path, out):
    if isinstance(value, torch.Tensor):
        out.append(("/".join(path), value))
    elif isinstance(value, dict):
        for key, child in value.items():
            walk(child, path + [str(key)], out)
    elif isinstance(value, (list, tuple)):
        for index, child in enumerate(value):
            walk(child, path + [str(index)], out)


def write_stats():
    import warnings
    warnings.simplefilter("ignore")
    tree = stats_tree()
    torch.save(tree, os.path.join(OUT, "stats_input.pt"))
    found = []
    walk(tree, [], found)
    records = []
    for path, t in found:
        record = {"path": path, "dtype": str(t.dtype)[6:], "shape": list(t.shape), "count": t.numel()}
        if t.is_complex():
            c = t.to(torch.complex128)
            record.update(min=None, max=None, mean=None, std=None,
                          l2_norm=number(torch.linalg.vector_norm(c)), zeros=int((c == 0).sum()),
                          nans=int(torch.isnan(c).sum()), infs=int(torch.isinf(c).sum()))
        else:
            d = t.double()
            record.update(
                min=number(d.min()) if d.numel() else None, max=number(d.max()) if d.numel() else None,
                mean=number(d.mean()), std=number(d.std()), l2_norm=number(torch.linalg.vector_norm(d)),
                zeros=int((d == 0).sum()), nans=int(torch.isnan(d).sum()), infs=int(torch.isinf(d).sum()))
        records.append(record)
    with open(os.path.join(OUT, "stats_expected.json"), "w") as f:
        json.dump({"torch_version": torch.__version__, "tensors": records}, f, indent=1)
        f.write("\n")


def write_npy():
    import io
    headers = []
    for descr, shape in [("<f4", ()), ("<f4", (5,)), ("<f8", (2, 3)), ("|b1", (0,)), ("<c16", (1, 2, 3, 4)),
                         ("<i8", (123456789012345, 1)), ("|u1", tuple([2] * 40)), ("<u2", tuple([1] * 22000))]:
        buffer = io.BytesIO()
        npformat._write_array_header(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
        headers.append({"descr": descr, "shape": list(shape), "hex": buffer.getvalue().hex()})
    with open(os.path.join(OUT, "npy_headers.json"), "w") as f:
        json.dump(headers, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
