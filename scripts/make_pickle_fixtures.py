#!/usr/bin/env python3
"""Writes the pickle fixtures in Tests/Fixtures/pickle/ with real Python and torch.

Each fixture is NAME.pkl (the data.pkl that torch.save wrote, or pickle.dumps output) plus
NAME.json, the expected tree described from the Python objects themselves, so the Swift tests
never compare our reader against our own output.

Run with the torch venv:  ~/.cache/ckpt/venv-torch/bin/python scripts/make_pickle_fixtures.py

An object_* fixture holds Python objects outside torch's weights-only allow-list (argparse.Namespace,
numpy values, a whole nn.Module, namedtuple, datetime, PosixPath, defaultdict, even os.system): ckpt
reads each as a placeholder, executing nothing, and its sidecar describes it from the object's own
__reduce_ex__, which is what pickle writes (see "object" below).

A rejected_* fixture is a pickle ckpt must refuse: a value a state tree cannot represent (torch
loads those); its sidecar holds
{"rejected": {"code": CheckpointError code, "mentions": text the error must contain}} instead of a tree.

It also writes Tests/Fixtures/objects/NAME.pt: whole torch.save files holding such objects beside
tensors, for ckpt-tool's tests, each with NAME.expected.json: "unsafe_globals" (what torch's own
torch.serialization.get_unsafe_globals_in_checkpoint lists), "weights_only_loadable" (whether
torch.load(weights_only=True) reads it) and "tensors" (each tensor's key path in ckpt's tree, dtype,
shape and its elements as hex), plus "tree", described as above.

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
  object (any other Python object, or a class or function named bare): "module", "name" (the global
      pickle writes, with protocol 2's renames such as builtins -> __builtin__), "construction":
      "reference" (the global itself), "reduce" (callable(*args)) or "newobj" (cls.__new__(cls, *args));
      "args": [value, ...], "kwargs": [[name, value], ...], "listitems": [value, ...],
      "dictitems": [[key, value], ...], "state": value -- each only when present and not empty.
"""
import _compat_pickle
import argparse
import collections
import copyreg
import datetime
import io
import json
import math
import os
import pathlib
import pickle
import struct
import sys
import types
import zipfile

import numpy
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "pickle")
OBJECTS_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "objects")

# A namedtuple of the script that saves it, as in a training script (pickled as __main__.Point).
Point = collections.namedtuple("Point", "x y")


def float_bits(x):
    return str(struct.unpack(">Q", struct.pack(">d", x))[0])


def dtype_name(dtype):
    return str(dtype).removeprefix("torch.")


def global_name(obj, protocol):
    """The (module, name) pickle writes for a class or function, with protocol 2's Python 2 renames."""
    name = getattr(obj, "__qualname__", obj.__name__)
    module = pickle.whichmodule(obj, name)
    if protocol < 3:
        if (module, name) in _compat_pickle.REVERSE_NAME_MAPPING:
            module, name = _compat_pickle.REVERSE_NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.REVERSE_IMPORT_MAPPING:
            module = _compat_pickle.REVERSE_IMPORT_MAPPING[module]
    return module, name


class Describer:
    """Describes a Python object as the sidecar JSON, assigning storage keys as torch.save does."""

    def __init__(self, protocol=2):
        self.keys = {}  # storage._cdata -> key
        self.protocol = protocol

    def object(self, v):
        """Any other object, as pickle's save_reduce writes it from v.__reduce_ex__(protocol)."""
        if isinstance(v, (type, types.FunctionType, types.BuiltinFunctionType)):
            module, name = global_name(v, self.protocol)
            return {"type": "object", "module": module, "name": name, "construction": "reference"}
        reduced = v.__reduce_ex__(self.protocol)
        func, args, state, listitems, dictitems = (tuple(reduced) + (None,) * 5)[:5]
        if func is copyreg.__newobj__:
            cls, args, construction = args[0], args[1:], "newobj"
        else:
            cls, construction = func, "reduce"
        module, name = global_name(cls, self.protocol)
        out = {"type": "object", "module": module, "name": name, "construction": construction}
        if args:
            out["args"] = [self(x) for x in args]
        if listitems is not None:
            items = [self(x) for x in listitems]
            if items:
                out["listitems"] = items
        if dictitems is not None:
            items = [[self.key(k), self(x)] for k, x in dictitems]
            if items:
                out["dictitems"] = items
        if state is not None:
            out["state"] = self(state)
        return out

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
        return self.object(v)


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


def write(name, data, obj, records=None, protocol=2):
    describe = Describer(protocol)
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


def small_model():
    torch.manual_seed(6)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))


def namespace_run():
    """A training script's checkpoint with its argparse arguments (fairseq and many others)."""
    torch.manual_seed(7)
    return {
        "model": torch.nn.Linear(3, 2).state_dict(),
        "args": argparse.Namespace(lr=0.1, epochs=3, name="run", betas=(0.9, 0.999), resume=None),
        "epoch": 3,
    }


def with_numpy():
    """numpy scalars and arrays beside the weights: four globals torch refuses."""
    torch.manual_seed(8)
    return {
        "model": torch.nn.Linear(2, 2).state_dict(),
        "np_scalar": numpy.float64(1.5),
        "np_array": numpy.array([1, 2, 3]),
        "best": numpy.float64(0.25),
    }


def python_objects(protocol=2):
    """Other objects seen in real checkpoints' hyperparameters, and bare globals."""
    torch.manual_seed(9)
    values = {
        "model": torch.nn.Linear(2, 1).state_dict(),
        "point": Point(1, 2.5),
        "when": datetime.datetime(2024, 5, 1, 12, 30, 15),
        "path": pathlib.PosixPath("/data/run1"),
        "counts": collections.defaultdict(list, {"a": [1, 2]}),
        "frozen": frozenset({7}),  # REDUCE of builtins.frozenset below protocol 4 (FROZENSET from 4 on)
        "factory": collections.OrderedDict,
        "function": math.sqrt,
    }
    if protocol >= 4:
        del values["frozen"]
    return values


def object_cases():
    """Pickles holding objects outside the allow-list, with the object they were made from."""
    exploit_p2 = {"x": Exploit()}
    return [
        # (name, data, object described, protocol)
        ("object_namespace", torch_save_pickle(namespace_run()), namespace_run(), 2),
        ("object_numpy", torch_save_pickle(with_numpy()), with_numpy(), 2),
        ("object_whole_model", torch_save_pickle(small_model()), small_model(), 2),
        ("object_python_values", torch_save_pickle(python_objects()), python_objects(), 2),
        ("object_os_system", (pickle.dumps(exploit_p2, protocol=2), None), exploit_p2, 2),
        ("object_os_system_p4", (pickle.dumps([Exploit()], protocol=4), None), [Exploit()], 4),
        ("object_python_values_p4", torch_save_pickle(python_objects(4), 4), python_objects(4), 4),
    ]


def rejected_cases():
    """Pickles real Python/torch write that ckpt must refuse: name -> (data, error code, text the error names)."""
    with_attribute = torch.zeros(2)
    with_attribute.note = "a Python attribute"
    return {
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
    for name, (data, records), obj, protocol in object_cases():
        write(name, data, obj, records, protocol)
    for stale in ("rejected_os_system", "rejected_os_system_p4", "rejected_numpy_array"):
        # These load now, as placeholders: see object_os_system* and object_numpy.
        for ext in (".pkl", ".json"):
            if os.path.exists(os.path.join(OUT, stale + ext)):
                os.remove(os.path.join(OUT, stale + ext))
    for name, (data, code, mentions) in rejected_cases().items():
        with open(os.path.join(OUT, name + ".pkl"), "wb") as f:
            f.write(data)
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump({"source": "made by scripts/make_pickle_fixtures.py with torch " + torch.__version__,
                       "rejected": {"code": code, "mentions": mentions}}, f, separators=(",", ":"))
            f.write("\n")
    print("wrote fixtures to", os.path.normpath(OUT))
    write_object_files()


def tensor_paths(describer_tree, path=()):
    """Each tensor in a sidecar tree with its key path as ckpt joins it (an object's parts by name)."""
    kind = describer_tree["type"]
    if kind in ("Tensor", "Parameter"):
        yield "/".join(path), describer_tree
    elif kind in ("dict", "OrderedDict"):
        for key, value in describer_tree["items"]:
            yield from tensor_paths(value, path + (key["value"],))
        for name, value in describer_tree.get("attributes", []):
            yield from tensor_paths(value, path + (name,))
    elif kind in ("list", "tuple", "set"):
        for index, value in enumerate(describer_tree["items"]):
            yield from tensor_paths(value, path + (str(index),))
    elif kind == "object":
        for part in ("args", "kwargs", "listitems", "dictitems", "state"):
            if part not in describer_tree:
                continue
            value = describer_tree[part]
            if part in ("args", "listitems"):
                for index, item in enumerate(value):
                    yield from tensor_paths(item, path + (part, str(index)))
            elif part in ("kwargs", "dictitems"):
                for key, item in value:
                    yield from tensor_paths(item, path + (part, key["value"] if isinstance(key, dict) else key))
            else:
                yield from tensor_paths(value, path + (part,))


def tensors_by_path(obj, tree):
    """The sidecar's tensors, matched in order with the objects' own tensors for their bytes."""
    found = []

    def walk(v):
        if isinstance(v, torch.Tensor):
            found.append(v)
            return
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
            for x in (vars(v).values() if type(v) is collections.OrderedDict else ()):
                walk(x)
        elif isinstance(v, (list, tuple, set)):
            for x in v:
                walk(x)
        elif isinstance(v, torch.nn.Module):
            walk(v.__reduce_ex__(2)[2])

    walk(obj)
    out = {}
    for (path, node), tensor in zip(tensor_paths(tree), found, strict=True):
        out[path] = {"dtype": node["dtype"], "shape": node["shape"],
                     "hex": tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes().hex()}
    return out


def write_object_files():
    """Whole torch.save files holding objects, for ckpt-tool's tests."""
    os.makedirs(OBJECTS_OUT, exist_ok=True)
    for name, build in [
        ("namespace", namespace_run),
        ("with_numpy", with_numpy),
        ("whole_model", small_model),
        ("python_objects", python_objects),
    ]:
        obj = build()
        path = os.path.join(OBJECTS_OUT, name + ".pt")
        torch.save(obj, path)
        try:
            torch.load(path, weights_only=True)
            loadable = True
        except Exception:
            loadable = False
        tree = Describer()(obj)
        sidecar = {
            "source": "made by scripts/make_pickle_fixtures.py with torch " + torch.__version__ + ", numpy " + numpy.__version__,
            "unsafe_globals": torch.serialization.get_unsafe_globals_in_checkpoint(path),
            "weights_only_loadable": loadable,
            "tensors": tensors_by_path(obj, tree),
            "tree": tree,
        }
        with open(os.path.join(OBJECTS_OUT, name + ".expected.json"), "w") as f:
            json.dump(sidecar, f, indent=1, ensure_ascii=False)
            f.write("\n")
    print("wrote object files to", os.path.normpath(OBJECTS_OUT))


if __name__ == "__main__":
    sys.exit(main())
