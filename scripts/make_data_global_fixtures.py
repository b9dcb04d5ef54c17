#!/usr/bin/env python3
"""Writes checkpoints holding the plain-data values torch.load(weights_only=True) refuses, with real torch.

Usage: python scripts/make_data_global_fixtures.py Tests/Fixtures
Writes Tests/Fixtures/data_globals/NAME.pt (or .pth) and NAME.expected.json.

These are the values ckpt reads as data when asked (LoadOptions.allowDataGlobals,
`--allow-data-globals`): numpy arrays, scalars and dtypes, argparse.Namespace, pathlib paths,
datetime values and collections.defaultdict. The sidecar is made from the Python objects saved:

  "unsafe_globals": what torch.serialization.get_unsafe_globals_in_checkpoint lists (zip files only)
  "dtype_classes":  numpy's dtype classes the file needs besides (torch checks them on BUILD)
  "values": {KEY_PATH: VALUE}, every data value at the key path ckpt gives it, described as ckpt
            represents it:
      numpy.ndarray / numpy.<scalar type>: "dtype" (torch name), "shape", "hex" (elements in C
            order), "module" (numpy's module as pickled), "fortran" (arrays)
      numpy.dtype: "str" (numpy's dtype.str)
      argparse.Namespace: "attributes" (names, in order)
      pathlib.PosixPath / PurePosixPath: "parts" (Path.parts)
      datetime.datetime / date / timedelta / timezone: "fields" (the record's int attributes),
            "utc_offset_seconds" for an aware datetime or a timezone
      defaultdict: "default_factory" ("builtins.list"), "keys"
    plus {KEY_PATH: {"type": "Tensor", "hex": ...}} for the torch tensors beside them.
  "reject": {"code", "mentions"} instead, for a file whose data value is impossible.

rng_state.pth is laid out as transformers' Trainer._save_rng_state writes it: python's
random.getstate(), numpy's np.random.get_state() (an array of 624 uint32) and torch's CPU generator
state (a uint8 tensor), after seeding each.
"""

import argparse
import collections
import datetime
import io
import json
import os
import pathlib
import pickle
import random
import sys
import zipfile

import numpy
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_legacy_fixtures import legacy_bytes  # noqa: E402  (re-execs with PYTHONHASHSEED=0)

NUMPY_MODULE = "numpy._core.multiarray"


def torch_dtype(array):
    return str(torch.from_numpy(numpy.ascontiguousarray(array)).dtype).removeprefix("torch.")


def describe(value, path, out):
    """Fills `out` with the data values (and torch tensors) under `value`, by ckpt key path."""
    def at(key):
        return f"{path}/{key}" if path else str(key)

    if isinstance(value, torch.Tensor):
        out[path] = {"type": "Tensor", "hex": value.contiguous().view(-1).view(torch.uint8).numpy().tobytes().hex()}
    elif isinstance(value, numpy.ndarray):
        out[path] = {"type": "numpy.ndarray", "dtype": torch_dtype(value), "shape": list(value.shape),
                     "hex": numpy.ascontiguousarray(value).tobytes().hex(), "module": NUMPY_MODULE,
                     "fortran": bool(value.flags.f_contiguous and not value.flags.c_contiguous)}
    elif isinstance(value, numpy.generic):
        out[path] = {"type": "numpy." + type(value).__name__, "dtype": torch_dtype(numpy.asarray(value)), "shape": [],
                     "hex": value.tobytes().hex(), "module": NUMPY_MODULE}
    elif isinstance(value, numpy.dtype):
        out[path] = {"type": "numpy.dtype", "str": value.str}
    elif isinstance(value, argparse.Namespace):
        out[path] = {"type": "argparse.Namespace", "attributes": list(vars(value))}
        for key, item in vars(value).items():
            describe(item, at(key), out)
    elif isinstance(value, pathlib.PurePath):
        out[path] = {"type": f"pathlib.{type(value).__name__}", "parts": list(value.parts)}
    elif isinstance(value, datetime.datetime):
        names = ["year", "month", "day", "hour", "minute", "second", "microsecond"]
        out[path] = {"type": "datetime.datetime", "fields": {n: getattr(value, n) for n in names}}
        if value.tzinfo is not None:
            out[path]["utc_offset_seconds"] = int(value.utcoffset().total_seconds())
            describe(value.tzinfo, at("tzinfo"), out)
    elif isinstance(value, datetime.timezone):
        arguments = value.__getinitargs__()  # (offset,) or (offset, name), as pickled
        out[path] = {"type": "datetime.timezone", "utc_offset_seconds": int(arguments[0].total_seconds())}
        if len(arguments) == 2:
            out[path]["name"] = arguments[1]
        describe(arguments[0], at("offset"), out)
    elif isinstance(value, datetime.date):
        out[path] = {"type": "datetime.date", "fields": {n: getattr(value, n) for n in ["year", "month", "day"]}}
    elif isinstance(value, datetime.timedelta):
        out[path] = {"type": "datetime.timedelta",
                     "fields": {"days": value.days, "seconds": value.seconds, "microseconds": value.microseconds}}
    elif isinstance(value, collections.defaultdict):
        factory = value.default_factory
        out[path] = {"type": "defaultdict", "default_factory": f"{factory.__module__}.{factory.__qualname__}",
                     "keys": [str(k) for k in value]}
        for key, item in value.items():
            describe(item, at(key), out)
    elif isinstance(value, dict):
        for key, item in value.items():
            describe(item, at(key), out)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            describe(item, at(index), out)
    return out


def dtype_classes(value, found):
    """numpy.dtypes.*DType of every numpy value under `value`, in tree order."""
    if isinstance(value, (numpy.ndarray, numpy.generic, numpy.dtype)):
        dtype = value if isinstance(value, numpy.dtype) else value.dtype
        name = f"numpy.dtypes.{type(dtype).__name__}"
        if name not in found:
            found.append(name)
    elif isinstance(value, dict):
        for item in value.values():
            dtype_classes(item, found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            dtype_classes(item, found)
    elif isinstance(value, argparse.Namespace):
        dtype_classes(vars(value), found)
    return found


def write_json(directory, name, document):
    with open(os.path.join(directory, f"{name}.expected.json"), "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1, ensure_ascii=False)
        f.write("\n")


def sidecar(directory, name, path, tree, note):
    document = {"note": note, "torch_version": torch.__version__, "numpy_version": numpy.__version__}
    if zipfile.is_zipfile(path):
        document["unsafe_globals"] = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    document["dtype_classes"] = dtype_classes(tree, [])
    document["values"] = describe(tree, "", {})
    write_json(directory, name, document)


# ---------------------------------------------------------------------------------------------
# Trees


def rng_state():
    """transformers' Trainer._save_rng_state on a CPU machine."""
    random.seed(42)
    numpy.random.seed(42)
    torch.manual_seed(42)
    random.random(), numpy.random.rand(3), torch.rand(3)  # a run has drawn from each
    return {
        "python": random.getstate(),
        "numpy": numpy.random.get_state(),
        "cpu": torch.random.get_rng_state(),
    }


def numpy_values():
    shared = numpy.arange(4, dtype=numpy.float32)
    values = {
        "bool": numpy.array([True, False, True]),
        "int8": numpy.array([-128, 0, 127], dtype=numpy.int8),
        "uint8": numpy.array([0, 128, 255], dtype=numpy.uint8),
        "int16": numpy.array([-32768, 1, 32767], dtype=numpy.int16),
        "uint16": numpy.array([0, 1, 65535], dtype=numpy.uint16),
        "int32": numpy.array([-(2**31), 1, 2**31 - 1], dtype=numpy.int32),
        "uint32": numpy.array([0, 1, 2**32 - 1], dtype=numpy.uint32),
        "int64": numpy.array([-(2**63), 1, 2**63 - 1], dtype=numpy.int64),
        "uint64": numpy.array([0, 1, 2**64 - 1], dtype=numpy.uint64),
        "float16": numpy.array([0.5, -0.0, numpy.inf], dtype=numpy.float16),
        "float32": numpy.array([[1.5, numpy.nan], [-2.0, 3.25]], dtype=numpy.float32),
        "float64": numpy.array([0.1, 1e300, -5e-324]),
        "complex64": numpy.array([1 + 2j, -0.5j], dtype=numpy.complex64),
        "complex128": numpy.array([3 - 4j]),
        "zero_dim": numpy.array(7.5),
        "empty": numpy.zeros((0, 3), dtype=numpy.int16),
        "fortran": numpy.asfortranarray(numpy.arange(6, dtype=numpy.int32).reshape(2, 3)),
        "strided": numpy.arange(10, dtype=numpy.int64)[::3],
        "shared": shared,
        "shared_again": shared,
        "scalar_float64": numpy.float64(0.25),
        "scalar_float32": numpy.float32(-1.5),
        "scalar_int64": numpy.int64(-3),
        "scalar_uint8": numpy.uint8(200),
        "scalar_bool": numpy.bool_(True),
        "scalar_complex128": numpy.complex128(1 - 1j),
        "dtype": numpy.dtype("float32"),
        "dtype_bool": numpy.dtype(bool),
        "tensor": torch.tensor([1.0, 2.0]),
    }
    return values


def python_values():
    utc = datetime.timezone.utc
    india = datetime.timezone(datetime.timedelta(hours=5, minutes=30), "IST")
    counts = collections.defaultdict(int)
    counts["a"] += 2
    counts["b"] += 1
    nested = collections.defaultdict(collections.OrderedDict)
    nested["x"]["y"] = torch.tensor([3], dtype=torch.int8)
    return {
        "args": argparse.Namespace(lr=0.01, epochs=3, arch="resnet", betas=(0.9, 0.999), data=pathlib.PosixPath("/data/x"),
                                   weights=torch.ones(2), nothing=None),
        "empty_args": argparse.Namespace(),
        "path": pathlib.PosixPath("/runs/exp1/ckpt.pt"),
        "relative": pathlib.PurePosixPath("runs/exp1"),
        "naive": datetime.datetime(2024, 5, 1, 12, 30, 15, 250),
        "aware": datetime.datetime(2024, 5, 1, 12, 30, tzinfo=utc),
        "named_zone": datetime.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=india),
        "day": datetime.date(2024, 2, 29),
        "elapsed": datetime.timedelta(days=-1, seconds=5, microseconds=7),
        "history": collections.defaultdict(list, {"loss": [0.5, 0.25], "acc": [0.75]}),
        "counts": counts,
        "nested": nested,
    }


class Impossible:
    """A value whose pickle is in a data global's exact form but whose contents no Python writes."""

    def __init__(self, reduce):
        self.reduce = reduce

    def __reduce__(self):
        return self.reduce


def hostile_values():
    reconstruct = numpy._core.multiarray._reconstruct
    return {
        "short_array": ({"x": Impossible((reconstruct, (numpy.ndarray, (0,), b"b"),
                                          (1, (5,), numpy.dtype("float32"), False, b"\0" * 8)))},
                        "corrupt", "does not fill its shape", "x"),
        "month_13": ({"when": Impossible((datetime.datetime, (bytes([7, 232, 13, 1, 0, 0, 0, 0, 0, 0]),)))},
                     "malformedPickle", "month out of range", "when"),
    }


def rewrite_numpy_module(source, destination, old, new):
    """The archive with its pickle naming numpy's module as numpy 1.x did."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(destination, "w") as copy:
        for info in original.infolist():
            data = original.read(info.filename)
            if info.filename.endswith("/data.pkl"):
                # Protocol 2 GLOBAL lines: no lengths to fix.
                data = data.replace(f"c{old}\n".encode(), f"c{new}\n".encode())
            entry = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            copy.writestr(entry, data)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_data_global_fixtures.py FIXTURES_DIR")
    directory = os.path.join(sys.argv[1], "data_globals")
    os.makedirs(directory, exist_ok=True)

    def save(name, tree, note, extension="pt"):
        path = os.path.join(directory, f"{name}.{extension}")
        torch.save(tree, path)
        sidecar(directory, name, path, torch.load(path, weights_only=False), note)
        return path

    save("rng_state", rng_state(), "transformers' rng_state.pth: python, numpy and CPU generator states", "pth")
    source = save("numpy_values", numpy_values(),
                  "numpy arrays of every dtype a tensor can hold, 0-dim, empty, Fortran order, a strided view "
                  "(pickled as a copy), one array twice, scalars, dtypes")
    save("python_values", python_values(),
         "argparse.Namespace, PosixPath, PurePosixPath, naive and aware datetimes, date, timedelta, defaultdicts")

    numpy1 = os.path.join(directory, "numpy1_values.pt")
    rewrite_numpy_module(source, numpy1, "numpy._core.multiarray", "numpy.core.multiarray")
    tree = torch.load(numpy1, weights_only=False)
    document = {"note": "numpy_values.pt with numpy 1.x's module name, numpy.core.multiarray",
                "torch_version": torch.__version__, "numpy_version": numpy.__version__,
                "unsafe_globals": torch.serialization.get_unsafe_globals_in_checkpoint(numpy1),
                "dtype_classes": dtype_classes(tree, []),
                "values": describe(tree, "", {})}
    for value in document["values"].values():
        if "module" in value:
            value["module"] = "numpy.core.multiarray"
    write_json(directory, "numpy1_values", document)

    legacy = os.path.join(directory, "legacy_rng_state.pth")
    with open(legacy, "wb") as f:
        f.write(legacy_bytes(rng_state()))
    sidecar(directory, "legacy_rng_state", legacy, torch.load(legacy, weights_only=False),
            "rng_state.pth in torch's pre-1.6 format")

    for name, (tree, code, mentions, key) in hostile_values().items():
        path = os.path.join(directory, f"bad_{name}.pt")
        torch.save(tree, path)
        try:
            torch.load(path, weights_only=False)
            torch_does = "loads it"
        except Exception as error:  # recorded for people
            torch_does = f"raises {type(error).__name__}: {str(error)[:120]}"
        write_json(directory, f"bad_{name}", {"reject": {"code": code, "mentions": mentions, "path": key},
                                              "torch": torch_does})
    print(f"wrote data-global fixtures to {directory}")


if __name__ == "__main__":
    main()
