#!/usr/bin/env python3
"""Checks pickles written by ckpt's Pickler against real torch.

Usage: PYTHON scripts/check_pickle_interop.py DIR

DIR holds one folder per case (written by PickleTests.swift): CASE/data.pkl and CASE/data/<key>.
For each case this script
  1. wraps the records in a zip laid out as torch.save lays it out (folder `archive/`, records
     data.pkl, byteorder, data/<k>, version) and loads it with torch.load(weights_only=True), and
     again with mmap=True from a file;
  2. compares what torch loaded with the same object built here, independently, in Python:
     types, key order, values (floats and tensors bit for bit), tensor dtype/shape/stride/offset,
     requires_grad, Parameter-ness, and which tensors share a storage;
  3. pickles that Python object with torch.save and compares the two data.pkl structurally (the
     same opcodes, globals, persistent ids and nesting, memo indices aside), and reports whether
     they are byte-identical.
Exit status 0 only if every case loads equal and every structure matches (or differs where the
case says it must).
"""
import collections
import io
import math
import os
import pickle
import struct
import sys
import tempfile
import zipfile

import torch


# ---- the cases, built independently of the Swift side ------------------------------------

def float_tensor_values(dtype):
    return torch.tensor([0.0, 1.0, 2.0]).to(dtype)


ALL_DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.complex64, torch.complex128,
              torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool,
              torch.uint16, torch.uint32, torch.uint64, torch.float8_e4m3fn, torch.float8_e5m2]


def case_values():
    od = collections.OrderedDict([("b", 1), ("a", 2)])
    return {
        "ints": [0, 1, 255, 256, 65535, 65536, -1, -129, 2**31 - 1, -2**31, 2**31, 2**63 - 1, -2**63, 2**40, -2**40],
        "floats": [0.0, -0.0, 1.5, float("inf"), float("-inf"), float("nan"), 1e-310],
        "flags": (True, False, None),
        "text": "héllo ✓ 𝄞",
        "long_text": "x" * 300,
        "bytes": b"\x00\x01\xfe\xff abc",
        "bytearray": bytearray(b"\x00\xff\x10"),
        "empty_bytearray": bytearray(),
        "set": {1, 2, 3},
        "complex": complex(1.5, -2.0),
        "size": torch.Size([2, 3, 4]),
        "empty_size": torch.Size([]),
        "cpu": torch.device("cpu"),
        "cuda": torch.device("cuda", 1),
        "dtypes": [torch.float32, torch.bfloat16, torch.uint16],
        7: "int key",
        -3: {"nested": [[], (), {}, [1, [2, (3, 4, 5, 6)]]]},
        "tuples": ((), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)),
        "od": od,
    }


def case_empty_bytes():
    return {"empty": b""}


def case_tensors():
    return {torch_name(d): float_tensor_values(d) for d in ALL_DTYPES}


def case_views():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    flat = torch.arange(10, dtype=torch.int64)
    return {"w": base, "tied": base, "row": base[1], "transposed": base.t(), "strided": base[:, ::2],
            "window": flat[3:7], "flat": flat, "in_list": [base, flat[::3]]}


def case_mixed_dtype_storage():
    f = torch.arange(4, dtype=torch.float32)
    return {"f": f, "i": f.view(torch.int32), "b": f.view(torch.uint8), "h": f.view(torch.uint16)}


def case_odd_storage():
    storage = torch.UntypedStorage.from_buffer(bytes(range(6)), dtype=torch.uint8)
    return {"t": torch.empty(0, dtype=torch.float32).set_(storage, 0, (1,), (1,))}


def case_parameters():
    weight = torch.nn.Parameter(torch.arange(6, dtype=torch.float32).reshape(2, 3))
    frozen = torch.nn.Parameter(torch.arange(3, dtype=torch.float64), requires_grad=False)
    leaf = torch.arange(2, dtype=torch.float32).requires_grad_()
    return {"weight": weight, "frozen": frozen, "leaf": leaf, "step": torch.tensor(5.0),
            "empty": torch.empty(0), "empty3d": torch.empty(2, 0, 3, dtype=torch.float16)}


def case_model_like():
    sd = collections.OrderedDict()
    sd["0.weight"] = torch.arange(6, dtype=torch.float32).reshape(3, 2)
    sd["0.bias"] = torch.arange(3, dtype=torch.float32)
    sd["1.num_batches_tracked"] = torch.tensor(0)
    sd._metadata = collections.OrderedDict([("", {"version": 1}), ("0", {"version": 1})])
    return sd


def case_batching():
    return {"dict1000": {i: i for i in range(1000)}, "dict1001": {i: -i for i in range(1001)},
            "list1001": list(range(1001)), "list2000": [0.5] * 2000,
            "od1000": collections.OrderedDict((str(i), i) for i in range(1000)),
            "od1001": collections.OrderedDict((str(i), i) for i in range(1001)),
            "set1001": set(range(1001))}


def case_optimizer():
    state = {0: {"step": torch.tensor(3.0), "sum": torch.full((2, 3), 0.25)},
             1: {"step": torch.tensor(3.0), "sum": torch.full((3,), 0.5)}}
    group = {"lr": 0.01, "lr_decay": 0, "weight_decay": 0, "initial_accumulator_value": 0, "eps": 1e-10,
             "foreach": None, "maximize": False, "differentiable": False, "fused": None, "params": [0, 1],
             "param_names": ["0.weight", "0.bias"]}
    return {"state": state, "param_groups": [group]}


# name -> (builder, structure expectation): "same", or why torch.save's pickle must differ.
CASES = {
    "values": (case_values, "same"),
    "empty_bytes": (case_empty_bytes, "torch.save writes __builtin__.bytes() for b'', which its own weights_only load refuses"),
    "tensors": (case_tensors, "same"),
    "views": (case_views, "same"),
    "mixed_dtype_storage": (case_mixed_dtype_storage, "torch.save refuses one storage viewed as several dtypes"),
    "odd_storage": (case_odd_storage, "torch.save gives a 6-byte storage a typed numel that cannot describe it"),
    "parameters": (case_parameters, "same"),
    "model_like": (case_model_like, "same"),
    "batching": (case_batching, "same"),
    "optimizer": (case_optimizer, "same"),
}


def torch_name(dtype):
    return str(dtype).removeprefix("torch.")


# ---- equality --------------------------------------------------------------------------------

class Mismatch(Exception):
    pass


def fbits(x):
    return struct.unpack(">Q", struct.pack(">d", x))[0]


def same(actual, expected, path, storages):
    where = path or "(root)"
    if type(actual) is not type(expected):
        raise Mismatch(f"{where}: type {type(actual).__name__}, expected {type(expected).__name__}")
    if isinstance(expected, torch.Tensor):
        for attribute in ("dtype", "shape", "requires_grad"):
            if getattr(actual, attribute) != getattr(expected, attribute):
                raise Mismatch(f"{where}: {attribute} {getattr(actual, attribute)}, expected {getattr(expected, attribute)}")
        if actual.stride() != expected.stride() or actual.storage_offset() != expected.storage_offset():
            raise Mismatch(f"{where}: stride/offset {actual.stride()}/{actual.storage_offset()}, "
                           f"expected {expected.stride()}/{expected.storage_offset()}")
        a = actual.detach().contiguous().view(-1).view(torch.uint8) if actual.numel() else actual
        e = expected.detach().contiguous().view(-1).view(torch.uint8) if expected.numel() else expected
        if actual.numel() and not torch.equal(a, e):
            raise Mismatch(f"{where}: tensor values differ")
        storages.append((where, actual.untyped_storage().data_ptr(), expected.untyped_storage()._cdata,
                         actual.untyped_storage().nbytes(), expected.untyped_storage().nbytes()))
        return
    if isinstance(expected, dict):
        if list(actual.keys()) != list(expected.keys()):
            raise Mismatch(f"{where}: keys {list(actual.keys())[:8]}, expected {list(expected.keys())[:8]}")
        for k in expected:
            same(actual[k], expected[k], f"{path}/{k}" if path else str(k), storages)
        if type(expected) is collections.OrderedDict:
            same(dict(vars(actual)), dict(vars(expected)), f"{path}.__dict__", storages)
        return
    if isinstance(expected, (list, tuple)):
        if len(actual) != len(expected):
            raise Mismatch(f"{where}: {len(actual)} elements, expected {len(expected)}")
        for i, (x, y) in enumerate(zip(actual, expected)):
            same(x, y, f"{path}/{i}", storages)
        return
    if isinstance(expected, float):
        if fbits(actual) != fbits(expected):
            raise Mismatch(f"{where}: {actual!r} != {expected!r}")
        return
    if isinstance(expected, complex):
        if (fbits(actual.real), fbits(actual.imag)) != (fbits(expected.real), fbits(expected.imag)):
            raise Mismatch(f"{where}: {actual!r} != {expected!r}")
        return
    if actual != expected:
        raise Mismatch(f"{where}: {actual!r} != {expected!r}")


def check_sharing(storages):
    """Tensors share a loaded storage exactly when the expected tensors share one."""
    by_expected = collections.defaultdict(set)
    by_actual = collections.defaultdict(set)
    for where, actual_ptr, expected_id, actual_bytes, expected_bytes in storages:
        if actual_bytes != expected_bytes:
            raise Mismatch(f"{where}: storage holds {actual_bytes} bytes, expected {expected_bytes}")
        if expected_bytes:
            by_expected[expected_id].add(actual_ptr)
            by_actual[actual_ptr].add(expected_id)
    for ptrs in by_expected.values():
        if len(ptrs) != 1:
            raise Mismatch("tensors that share a storage were loaded into separate storages")
    for ids in by_actual.values():
        if len(ids) != 1:
            raise Mismatch("tensors with separate storages were loaded into one")


# ---- structural comparison of two pickles ----------------------------------------------------

class Global:
    def __init__(self, module, name):
        self.key = ("global", module, name)

    def __call__(self, *args):
        return Call(self, args)


class Call:
    def __init__(self, function, args):
        self.function, self.args, self.items, self.state = function, args, [], None

    def __setitem__(self, key, value):
        self.items.append((key, value))

    def __setstate__(self, state):
        self.state = state


class SymbolicUnpickler(pickle._Unpickler):
    """Executes nothing: globals, calls and persistent ids become records to compare."""

    def find_class(self, module, name):
        return Global(module, name)

    def persistent_load(self, pid):
        return ("persistent_id", pid)


def canonical(x):
    if isinstance(x, Global):
        return x.key
    if isinstance(x, Call):
        return ("call", canonical(x.function), canonical(x.args), canonical(x.items), canonical(x.state))
    if isinstance(x, dict):
        return ("dict", [(canonical(k), canonical(v)) for k, v in x.items()])
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, [canonical(v) for v in x])
    if isinstance(x, float):
        return ("float", fbits(x))
    return (type(x).__name__, x)


def structure(data):
    return canonical(SymbolicUnpickler(io.BytesIO(data)).load())


# ---- driver ----------------------------------------------------------------------------------

def torch_layout_zip(case_dir, path):
    with open(os.path.join(case_dir, "data.pkl"), "rb") as f:
        pkl = f.read()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", b"little")
        data_dir = os.path.join(case_dir, "data")
        keys = sorted(os.listdir(data_dir), key=int) if os.path.isdir(data_dir) else []
        for key in keys:
            with open(os.path.join(data_dir, key), "rb") as f:
                z.writestr(f"archive/data/{key}", f.read())
        z.writestr("archive/version", b"3\n")
    return pkl


def torch_save_pickle(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as z:
        return z.read([n for n in z.namelist() if n.endswith("/data.pkl")][0])


def main(directory):
    failures = 0
    identical = 0
    with tempfile.TemporaryDirectory() as scratch:
        for name in sorted(os.listdir(directory)):
            if name not in CASES:
                print(f"{name}: UNKNOWN CASE")
                failures += 1
                continue
            build, expectation = CASES[name]
            expected = build()
            zip_path = os.path.join(scratch, name + ".pt")
            ours = torch_layout_zip(os.path.join(directory, name), zip_path)
            notes = []
            try:
                for mmap in (False, True):
                    loaded = torch.load(zip_path, weights_only=True, mmap=mmap)
                    storages = []
                    same(loaded, expected, "", storages)
                    check_sharing(storages)
                notes.append("torch.load(weights_only=True) and mmap=True equal")
            except Exception as error:  # a failed load is a failed case, whatever its type
                failures += 1
                print(f"{name}: FAIL {type(error).__name__}: {error}")
                continue
            if expectation == "same":
                theirs = torch_save_pickle(expected)
                if structure(ours) != structure(theirs):
                    failures += 1
                    print(f"{name}: FAIL structure differs from torch.save's data.pkl")
                    continue
                if ours == theirs:
                    identical += 1
                    notes.append("byte-identical to torch.save's data.pkl")
                else:
                    notes.append(f"same structure as torch.save's data.pkl ({len(ours)} vs {len(theirs)} bytes)")
            else:
                notes.append(f"structure not compared: {expectation}")
            print(f"{name}: ok; " + "; ".join(notes))
    print(f"{failures} failures; {identical} byte-identical to torch.save")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
