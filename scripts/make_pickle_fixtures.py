#!/usr/bin/env python3
"""Writes the pickle fixtures in Tests/Fixtures/pickle/ with real Python and torch.

Each fixture is NAME.pkl (the data.pkl that torch.save wrote, or pickle.dumps output) plus
NAME.json, the expected tree described from the Python objects themselves, so the Swift tests
never compare our reader against our own output.

Run with the torch venv:  ~/.cache/ckpt/venv-torch/bin/python scripts/make_pickle_fixtures.py

A rejected_* fixture is a pickle ckpt must refuse: a forbidden global (torch's weights-only load
refuses it too) or a value a state tree cannot represent (torch loads those); its sidecar holds
{"rejected": {"code": CheckpointError code, "mentions": text the error must contain}} instead of a tree.

Sidecar format (every value is an object with "type", its Python type name):
  dict / OrderedDict: "items": [[key, value], ...]; OrderedDict adds "attributes": [[name, value], ...]
      keys: {"type": "str", "value": s} or {"type": "int", "value": "decimal"}
  list / tuple / set: "items": [value, ...]  (a set in iteration order, the order pickle writes)
  str: "value"; int: "value" (decimal string, exact); bool: "value"; NoneType
  float: "bits" (the IEEE-754 bit pattern as a decimal string, exact for NaN and -0.0)
  bytes / bytearray: "hex"; complex: "real_bits", "imag_bits"
  Size: "value": [decimal strings]; device: "value" (str(device)); dtype: "value" ("float32")
  Tensor / Parameter: "dtype", "shape", "stride", "offset", "requires_grad",
      "storage": {"key", "dtype" (legacy typed storage dtype, or null for UntypedStorage), "numel", "location"}
      Storage keys are assigned as torch.save assigns them: "0", "1", ... in the order distinct
      storages are first met while pickling (depth first, dict items, then OrderedDict attributes).
"""
import collections
import io
import json
import os
import pickle
import struct
import sys
import zipfile

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "pickle")


def float_bits(x):
    return str(struct.unpack(">Q", struct.pack(">d", x))[0])


def dtype_name(dtype):
    return str(dtype).removeprefix("torch.")


class Describer:
    """Describes a Python object as the sidecar JSON, assigning storage keys as torch.save does."""

    def __init__(self):
        self.keys = {}  # storage._cdata -> key

    def storage_of(self, t):
        untyped = t.untyped_storage()
        key = self.keys.setdefault(untyped._cdata, str(len(self.keys)))
        if t.dtype in torch.storage._new_dtypes():
            return {"key": key, "dtype": None, "numel": untyped.nbytes(), "location": "cpu"}
        return {"key": key, "dtype": dtype_name(t.dtype), "numel": untyped.nbytes() // t.element_size(), "location": "cpu"}

    def key(self, k):
        if type(k) is str:
            return {"type": "str", "value": k}
        if type(k) is int:
            return {"type": "int", "value": str(k)}
        raise TypeError(f"unsupported key {k!r}")

    def __call__(self, v):
        if isinstance(v, torch.Tensor):
            is_param = isinstance(v, torch.nn.Parameter)
            return {
                "type": "Parameter" if is_param else "Tensor",
                "dtype": dtype_name(v.dtype),
                "shape": list(v.shape),
                "stride": list(v.stride()),
                "offset": v.storage_offset(),
                "requires_grad": v.requires_grad,
                "storage": self.storage_of(v),
            }
        if type(v) is collections.OrderedDict:
            items = [[self.key(k), self(x)] for k, x in v.items()]
            attrs = [[k, self(x)] for k, x in vars(v).items()]
            return {"type": "OrderedDict", "items": items, "attributes": attrs}
        if type(v) is dict:
            return {"type": "dict", "items": [[self.key(k), self(x)] for k, x in v.items()]}
        if type(v) in (list, tuple, set):
            return {"type": type(v).__name__, "items": [self(x) for x in v]}
        if type(v) is torch.Size:
            return {"type": "Size", "value": [str(x) for x in v]}
        if type(v) is bool:
            return {"type": "bool", "value": v}
        if type(v) is int:
            return {"type": "int", "value": str(v)}
        if type(v) is float:
            return {"type": "float", "bits": float_bits(v)}
        if type(v) is str:
            return {"type": "str", "value": v}
        if v is None:
            return {"type": "NoneType"}
        if type(v) in (bytes, bytearray):
            return {"type": type(v).__name__, "hex": v.hex()}
        if type(v) is complex:
            return {"type": "complex", "real_bits": float_bits(v.real), "imag_bits": float_bits(v.imag)}
        if type(v) is torch.device:
            return {"type": "device", "value": str(v)}
        if type(v) is torch.dtype:
            return {"type": "dtype", "value": dtype_name(v)}
        raise TypeError(f"cannot describe {type(v)}")


def torch_save_pickle(obj, protocol=2):
    """The data.pkl torch.save writes for obj, after checking its records match the sidecar."""
    buffer = io.BytesIO()
    torch.save(obj, buffer, pickle_protocol=protocol)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        names = archive.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl")]
        assert len(pkl) == 1, names
        records = {n.rsplit("/", 1)[1]: archive.getinfo(n).file_size for n in names if "/data/" in n}
        return archive.read(pkl[0]), records


def write(name, data, obj, records=None):
    describe = Describer()
    tree = describe(obj)
    if records is not None:
        # The key assignment above must be torch's: same keys, same record sizes.
        assert set(records) == set(describe.keys.values()), (name, records, describe.keys)
    with open(os.path.join(OUT, name + ".pkl"), "wb") as f:
        f.write(data)
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump({"source": "made by scripts/make_pickle_fixtures.py with torch " + torch.__version__, "tree": tree},
                  f, separators=(",", ":"), ensure_ascii=False)
        f.write("\n")


def model_state_dict():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2), torch.nn.BatchNorm1d(2))
    return model.state_dict()


def adagrad_state_dict():
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    optimizer = torch.optim.Adagrad(
        [
            {"params": list(model[0].named_parameters()), "lr": 0.1},
            {"params": list(model[1].named_parameters()), "lr_decay": 0.01, "weight_decay": 0.5},
        ],
        lr=0.01,
    )
    model(torch.randn(5, 3)).square().sum().backward()
    optimizer.step()
    return optimizer.state_dict()


def shared_and_views():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    flat = torch.arange(10, dtype=torch.int64)
    return {
        "w": base,
        "tied": base,
        "row": base[1],
        "transposed": base.t(),
        "strided": base[:, ::2],
        "window": flat[3:7],
        "flat": flat,
        "in_list": [base, flat[::3]],
    }


def all_dtypes():
    out = {}
    for dtype in [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.complex64, torch.complex128,
                  torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool,
                  torch.uint16, torch.uint32, torch.uint64, torch.float8_e4m3fn, torch.float8_e5m2]:
        out[dtype_name(dtype)] = torch.tensor([0.0, 1.0, 2.0]).to(dtype)
    return out


def zero_dim_and_empty():
    return {
        "step": torch.tensor(5.0),
        "count": torch.tensor(7),
        "flag": torch.tensor(True),
        "empty": torch.empty(0),
        "empty3d": torch.empty(2, 0, 3, dtype=torch.float16),
    }


def parameters():
    torch.manual_seed(2)
    return {
        "weight": torch.nn.Parameter(torch.randn(2, 3)),
        "frozen": torch.nn.Parameter(torch.randn(3), requires_grad=False),
        "leaf": torch.randn(2).requires_grad_(),
        "plain": torch.randn(2),
    }


def python_values(with_empty_bytes):
    value = {
        "ints": [0, 1, 255, 256, 65535, 65536, -1, -129, 2**31 - 1, -2**31, 2**31, 2**63 - 1, -2**63],
        "floats": [0.0, -0.0, 1.5, float("inf"), float("-inf"), float("nan"), 1e-310, 3.141592653589793],
        "flags": (True, False, None),
        "text": "héllo wörld ✓ 𝄞",
        "long_text": "x" * 300,
        "empty": "",
        "bytes": b"\x00\x01\xfe\xff abc",
        "long_bytes": bytes(range(256)) * 2,
        "bytearray": bytearray(b"\x00\xff\x10"),
        "empty_bytearray": bytearray(),
        "set": {1, 2, 3},
        "strings_set": {"a"},
        "complex": complex(1.5, -2.0),
        "size": torch.Size([2, 3, 4]),
        "empty_size": torch.Size([]),
        "cpu": torch.device("cpu"),
        "cuda": torch.device("cuda", 1),
        "dtypes": [torch.float32, torch.bfloat16, torch.int64, torch.bool, torch.uint16],
        3: "int key",
        -5: {"nested": [[], (), {}, [1, [2, [3, (4, 5, 6, 7)]]]]},
        "tuples": ((), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)),
        "od": collections.OrderedDict([("b", 1), ("a", 2)]),
    }
    if with_empty_bytes:
        value["empty_bytes"] = b""
    shared = [1, 2]
    value["shared"] = [shared, shared]
    return value


def batching():
    return {
        "dict1000": {i: i for i in range(1000)},
        "dict1001": {i: -i for i in range(1001)},
        "list1001": list(range(1001)),
        "list2000": [0.5] * 2000,
        "od1001": collections.OrderedDict((str(i), i) for i in range(1001)),
    }


def mixed_tensors():
    sd = model_state_dict()
    return {"model": sd, "extra": shared_and_views(), "dtypes": all_dtypes(), "values": python_values(False)}


def deep(levels):
    value = "leaf"
    for _ in range(levels):
        value = [value]
    return value


class Exploit:
    """What a malicious checkpoint holds: unpickling it would run a shell command."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def rejected_cases():
    """Pickles real Python/torch write that ckpt must refuse: name -> (data, error code, text the error names)."""
    import numpy

    with_attribute = torch.zeros(2)
    with_attribute.note = "a Python attribute"
    return {
        "rejected_os_system": (pickle.dumps({"x": Exploit()}, protocol=2), "forbiddenGlobal", "system"),
        "rejected_os_system_p4": (pickle.dumps([Exploit()], protocol=4), "forbiddenGlobal", "system"),
        "rejected_numpy_array": (torch_save_pickle({"a": numpy.arange(3)})[0], "forbiddenGlobal", "numpy"),
        "rejected_tensor_attributes": (torch_save_pickle({"t": with_attribute})[0], "unsupported", "attributes"),
        "rejected_frozenset": (pickle.dumps(frozenset({1}), protocol=4), "unsupported", "frozenset"),
        "rejected_big_int": (pickle.dumps({"n": 2**64}, protocol=2), "unsupported", "64 bits"),
        "rejected_tuple_key": (pickle.dumps({"d": {(1, 2): 3}}, protocol=2), "unsupported", "str or int"),
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, build in [
        ("model_state_dict", model_state_dict),
        ("adagrad_state_dict", adagrad_state_dict),
        ("shared_and_views", shared_and_views),
        ("all_dtypes", all_dtypes),
        ("zero_dim_and_empty", zero_dim_and_empty),
        ("parameters", parameters),
        ("python_values", lambda: python_values(False)),
        ("batching", batching),
    ]:
        obj = build()
        data, records = torch_save_pickle(obj)
        write("torch_" + name, data, obj, records)
    for protocol in (3, 4, 5):
        obj = mixed_tensors()
        data, records = torch_save_pickle(obj, protocol)
        write(f"torch_protocol{protocol}", data, obj, records)
    for protocol in (2, 3, 4, 5):
        obj = {"values": python_values(True), "deep": deep(200)}
        if protocol == 2:
            obj["batching"] = {"list1001": list(range(1001)), "dict1001": {i: i for i in range(1001)}}
        write(f"plain_protocol{protocol}", pickle.dumps(obj, protocol=protocol), obj)
    for name, (data, code, mentions) in rejected_cases().items():
        with open(os.path.join(OUT, name + ".pkl"), "wb") as f:
            f.write(data)
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump({"source": "made by scripts/make_pickle_fixtures.py with torch " + torch.__version__,
                       "rejected": {"code": code, "mentions": mentions}}, f, separators=(",", ":"))
            f.write("\n")
    print("wrote fixtures to", os.path.normpath(OUT))


if __name__ == "__main__":
    sys.exit(main())
