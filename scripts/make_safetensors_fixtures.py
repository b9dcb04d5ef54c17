#!/usr/bin/env python3
"""Generate ckpt's safetensors fixtures with the real `safetensors.torch.save_file`, plus a sidecar.

Usage: python scripts/make_safetensors_fixtures.py Tests/Fixtures/safetensors
Writes <dir>/<name>.safetensors and <dir>/<name>.expected.json.

Values come from fixed formulas, so re-running writes the same bytes. The sidecar is derived from
the torch tensors that were saved (never from ckpt's reader) and is what the Swift tests compare
against:

  {
    "schema_version": 1,
    "fixture": "<name>",
    "torch_version": str, "safetensors_version": str,
    "metadata": {str: str} | null,       # what safe_open(...).metadata() returns
    "header_order": [name, ...],         # tensor names in the order the JSON header lists them
    "tensors": [
      {"name": str,
       "dtype": "float32",               # torch name after "torch."
       "safetensors_dtype": "F32",
       "shape": [int, ...],
       "hex": "...",                     # bytes of t.contiguous(), row-major, little-endian
       "values": [...]}                  # flattened t.tolist(): floats as float.hex strings
    ]                                    # (nan/inf included), ints as decimal strings,
  }                                      # bools as bools, complex as [real.hex, imag.hex]
"""

import json
import os
import struct
import sys

import safetensors
import torch
from safetensors.torch import load_file, save_file

SAFETENSORS_DTYPE = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.complex64: "C64", torch.int64: "I64", torch.int32: "I32", torch.int16: "I16",
    torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL", torch.uint16: "U16",
    torch.uint32: "U32", torch.uint64: "U64", torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2",
}


def raw_bytes(t):
    t = t.contiguous()
    if t.numel() == 0:
        return b""
    return t.reshape(-1).view(torch.uint8).numpy().tobytes()


def flat_values(t):
    flat = t.reshape(-1)
    if t.dtype.is_complex:
        return [[float(z.real).hex(), float(z.imag).hex()] for z in flat.tolist()]
    if t.dtype == torch.bool:
        return [bool(v) for v in flat.tolist()]
    if t.dtype.is_floating_point:
        return [float(v).hex() for v in flat.to(torch.float64).tolist()]
    return [str(int(v)) for v in flat.tolist()]


def header_order(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    return [k for k in header if k != "__metadata__"]


def floats(dtype, shape):
    base = torch.tensor([0.0, -0.0, 1.0, -2.5, 0.1, 3.0e-3, 448.0, float("inf"), float("-inf"), float("nan"), 1e-7, 65504.0])
    n = 1
    for d in shape:
        n *= d
    values = torch.cat([base, torch.arange(max(0, n - base.numel()), dtype=torch.float64) * 0.37 - 5])[:n]
    return values.to(dtype).reshape(shape)


def all_dtypes():
    tensors = {}
    for dtype in SAFETENSORS_DTYPE:
        name = str(dtype).removeprefix("torch.")
        if dtype.is_complex:
            t = torch.complex(floats(torch.float32, [2, 3]), floats(torch.float32, [2, 3]).flip(0))
        elif dtype.is_floating_point:
            t = floats(dtype, [3, 4])
        elif dtype == torch.bool:
            t = torch.tensor([[True, False, True], [False, False, True]])
        else:
            info = torch.iinfo(dtype)
            t = torch.tensor([info.min, info.max, 0, 1, 7], dtype=dtype)
        tensors[name] = t
    return tensors, {"format": "pt", "producer": "make_safetensors_fixtures.py"}


def edge_shapes():
    tensors = {
        "scalar": torch.tensor(5.0),
        "empty": torch.zeros(0),
        "empty_2d": torch.zeros(3, 0, dtype=torch.int32),
        "row": torch.arange(6, dtype=torch.float32).reshape(1, 6),
        "cube": torch.arange(24, dtype=torch.int16).reshape(2, 3, 4),
        "layer.0.weight": torch.linspace(-1, 1, 16, dtype=torch.float64).reshape(4, 4),
        "unicode-ключ": torch.tensor([1, 2], dtype=torch.uint8),
    }
    return tensors, None


FIXTURES = {"all_dtypes": all_dtypes, "edge_shapes": edge_shapes}


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for name, build in FIXTURES.items():
        tensors, metadata = build()
        path = os.path.join(out_dir, f"{name}.safetensors")
        save_file(tensors, path, metadata=metadata)
        loaded = load_file(path)
        for key, t in tensors.items():
            assert raw_bytes(loaded[key]) == raw_bytes(t) and loaded[key].dtype == t.dtype, key
        with safetensors.safe_open(path, framework="pt") as f:
            stored_metadata = f.metadata()
        sidecar = {
            "schema_version": 1,
            "fixture": name,
            "torch_version": torch.__version__,
            "safetensors_version": safetensors.__version__,
            "metadata": dict(sorted(stored_metadata.items())) if stored_metadata is not None else None,
            "header_order": header_order(path),
            "tensors": [
                {
                    "name": key,
                    "dtype": str(t.dtype).removeprefix("torch."),
                    "safetensors_dtype": SAFETENSORS_DTYPE[t.dtype],
                    "shape": list(t.shape),
                    "hex": raw_bytes(t).hex(),
                    "values": flat_values(t),
                }
                for key, t in tensors.items()
            ],
        }
        with open(os.path.join(out_dir, f"{name}.expected.json"), "w") as f:
            json.dump(sidecar, f, indent=1, ensure_ascii=False)
            f.write("\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/safetensors")
