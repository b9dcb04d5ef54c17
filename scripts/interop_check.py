#!/usr/bin/env python3
"""Checks that real PyTorch, safetensors and a plain zip + JSON reader read what ckpt writes.

Run by scripts/interop.sh (make interop). For every fixture `<name>.pt` with a sidecar
`<name>.expected.json` (see scripts/make_fixtures.py):

  convert     ckpt-tool convert IN OUT for OUT = .ckpt, .pt, .safetensors
  torch       torch.load(OUT, weights_only=True) and with mmap=True, for .ckpt and .pt, deep-equal to
              torch.load(IN): Python types (tuple stays tuple, OrderedDict with equal attributes,
              Parameter stays Parameter), key order, dtype/shape/stride/storage_offset/requires_grad,
              bit-identical elements (NaN included) and the same storage-sharing pattern
  safetensors safetensors.torch.load_file(OUT) gives the original tensors for flat tensor dicts
              (complex128, which has no safetensors tag, as its view_as_real, or refused by name);
              for other trees the file must at least be valid safetensors; converted back to .pt it
              gives the original tree (types, key order, values; views and sharing may become copies)
  same bytes  convert OUT.ckpt -> OUT2.ckpt is byte-identical to OUT.ckpt
  manifest    zipfile + json alone (docs/FORMAT.md; no torch, no pickle) recover the tree and every
              tensor's elements, equal to torch's; CRC-32, nbytes and offsets agree with the zip
  reject      a fixture the sidecar marks "reject" (a damaged legacy file) makes convert fail with a
              message and no output file

The original is loaded with weights_only=True, except for fixtures whose sidecar says torch's
weights_only loader cannot read them (pickle protocols 4 and 5); those are our own generated files.
Prints one PASS/FAIL line per check and exits 1 if any check failed.
"""

import argparse
import base64
import collections
import json
import os
import struct
import subprocess
import sys
import traceback
import warnings
import zipfile
import zlib

import torch

# Element sizes by manifest dtype name, independent of torch (the manifest check must not need it).
ITEM_SIZES = {
    "float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "complex64": 8, "complex128": 16,
    "int64": 8, "int32": 4, "int16": 2, "int8": 1, "uint8": 1, "bool": 1,
    "uint16": 2, "uint32": 4, "uint64": 8, "float8_e4m3fn": 1, "float8_e5m2": 1,
}
SAFETENSORS_DTYPES = {name for name in ITEM_SIZES if name != "complex128"}
MAX_REPORTED_DIFFERENCES = 12


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, fixture, what, problems):
        """Records one check; `problems` is a list of strings (empty: pass)."""
        if problems:
            self.failed += 1
            print(f"FAIL  {fixture:18} {what}")
            for problem in problems[:MAX_REPORTED_DIFFERENCES]:
                print("        " + problem.replace("\n", "\n        "))
            if len(problems) > MAX_REPORTED_DIFFERENCES:
                print(f"        ... and {len(problems) - MAX_REPORTED_DIFFERENCES} more")
        else:
            self.passed += 1
            print(f"PASS  {fixture:18} {what}")
        sys.stdout.flush()


def guarded(function, *args):
    """Runs a check body; an exception is a failure with its last traceback line, not a crash."""
    try:
        return function(*args)
    except Exception as error:  # noqa: BLE001 - every failure must become a FAIL line
        where = traceback.extract_tb(error.__traceback__)[-1]
        return [f"raised {type(error).__name__}: {error} (at {os.path.basename(where.filename)}:{where.lineno})"]


# ---------------------------------------------------------------------------------------------
# Deep comparison of two Python trees


def float_bits(value):
    return struct.pack("<d", value)


def element_bits(tensor):
    return tensor.detach().contiguous().reshape(-1).view(torch.uint8)


class TreeDiff:
    """Compares two loaded trees; with `layout`, also strides, offsets and storage sharing."""

    def __init__(self, layout=True):
        self.layout = layout
        self.problems = []
        self.storage_pairs = {}  # storage in the original -> storage in the copy
        self.reverse_pairs = {}

    def report(self, path, message):
        self.problems.append(f"{path or '<root>'}: {message}")

    def compare(self, original, copy, path=""):
        if type(original) is not type(copy):
            self.report(path, f"type {type(copy).__name__}, expected {type(original).__name__}")
            return
        if isinstance(original, torch.Tensor):
            self.compare_tensors(original, copy, path)
        elif isinstance(original, dict):
            original_keys = [(type(k).__name__, k) for k in original]
            copy_keys = [(type(k).__name__, k) for k in copy]
            if original_keys != copy_keys:
                self.report(path, f"keys {copy_keys}, expected {original_keys} (in order)")
                return
            for key in original:
                self.compare(original[key], copy[key], f"{path}/{key}")
            if isinstance(original, collections.OrderedDict):
                self.compare(dict(vars(original)), dict(vars(copy)), f"{path}/@attributes")
        elif isinstance(original, torch.Size):
            if tuple(original) != tuple(copy):
                self.report(path, f"Size {tuple(copy)}, expected {tuple(original)}")
        elif isinstance(original, (list, tuple)):
            if len(original) != len(copy):
                self.report(path, f"{len(copy)} items, expected {len(original)}")
                return
            for index, (a, b) in enumerate(zip(original, copy)):
                self.compare(a, b, f"{path}/{index}")
        elif isinstance(original, float):
            if float_bits(original) != float_bits(copy):
                self.report(path, f"float {copy!r}, expected {original!r} (bitwise)")
        elif isinstance(original, complex):
            if (float_bits(original.real), float_bits(original.imag)) != (float_bits(copy.real), float_bits(copy.imag)):
                self.report(path, f"complex {copy!r}, expected {original!r} (bitwise)")
        elif original != copy:
            self.report(path, f"{copy!r}, expected {original!r}")

    def compare_tensors(self, original, copy, path):
        properties = [("dtype", lambda t: t.dtype), ("shape", lambda t: tuple(t.shape)),
                      ("requires_grad", lambda t: t.requires_grad)]
        if self.layout:
            properties += [("stride", lambda t: t.stride()), ("storage_offset", lambda t: t.storage_offset()),
                           ("storage nbytes", lambda t: t.untyped_storage().nbytes())]
        for name, get in properties:
            if get(original) != get(copy):
                self.report(path, f"{name} {get(copy)}, expected {get(original)}")
                return
        if not torch.equal(element_bits(original), element_bits(copy)):
            self.report(path, "elements differ bitwise")
        if not self.layout:
            return
        a, b = original.untyped_storage()._cdata, copy.untyped_storage()._cdata
        if self.storage_pairs.setdefault(a, b) != b or self.reverse_pairs.setdefault(b, a) != a:
            self.report(path, "storage sharing differs from the original's")


def tree_differences(original, copy, layout=True):
    diff = TreeDiff(layout)
    diff.compare(original, copy)
    return diff.problems


# ---------------------------------------------------------------------------------------------
# Checks


def convert(tool, source, destination):
    """Runs ckpt-tool convert; returns the problems (empty on success)."""
    try:
        done = subprocess.run([tool, "convert", source, destination], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return ["ckpt-tool convert did not finish in 300 s"]
    if done.returncode != 0:
        return [f"ckpt-tool convert exited {done.returncode}: {done.stderr.strip()[:500]}"]
    if not os.path.isfile(destination):
        return ["ckpt-tool convert exited 0 but wrote no file"]
    return []


def torch_load_problems(original, path, mmap):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.load(path, weights_only=True, mmap=mmap)
    return tree_differences(original, loaded)


def tensor_dtypes(value):
    if isinstance(value, torch.Tensor):
        yield str(value.dtype).removeprefix("torch.")
    elif isinstance(value, dict):
        for item in value.values():
            yield from tensor_dtypes(item)
        if isinstance(value, collections.OrderedDict):
            for item in vars(value).values():
                yield from tensor_dtypes(item)
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            yield from tensor_dtypes(item)


def safetensors_problems(original, path, flat):
    from safetensors import safe_open
    from safetensors.torch import load_file

    if not flat:
        with safe_open(path, framework="pt") as handle:
            for name in handle.keys():
                handle.get_tensor(name)
        return []
    loaded = load_file(path)
    # complex128 has no safetensors tag; stored at all, it can only be as its float64 real view.
    original = {name: torch.view_as_real(t.detach()) if t.dtype == torch.complex128 else t
                for name, t in original.items()}
    problems = []
    if set(loaded) != set(original):
        problems.append(f"tensor names {sorted(loaded)}, expected {sorted(original)}")
    for name, tensor in original.items():
        if name not in loaded:
            continue
        got = loaded[name]
        if got.dtype != tensor.dtype or tuple(got.shape) != tuple(tensor.shape):
            problems.append(f"{name}: {got.dtype} {tuple(got.shape)}, expected {tensor.dtype} {tuple(tensor.shape)}")
        elif not torch.equal(element_bits(got), element_bits(tensor)):
            problems.append(f"{name}: elements differ bitwise")
    return problems


def safetensors_round_trip_problems(tool, original, path, back):
    problems = convert(tool, path, back)
    if problems:
        return problems
    return tree_differences(original, torch.load(back, weights_only=True), layout=False)


def same_bytes_problems(tool, first, second):
    problems = convert(tool, first, second)
    if problems:
        return problems
    with open(first, "rb") as a, open(second, "rb") as b:
        left, right = a.read(), b.read()
    if left != right:
        at = next((i for i, (x, y) in enumerate(zip(left, right)) if x != y), min(len(left), len(right)))
        return [f"{os.path.basename(second)} ({len(right)} bytes) differs from {os.path.basename(first)} "
                f"({len(left)} bytes) from byte {at}"]
    return []


def manifest_problems(original, path):
    """Reads a .ckpt with zipfile + json only and compares it with torch's tree."""
    problems = []
    with zipfile.ZipFile(path) as archive, open(path, "rb") as raw:
        file_bytes = raw.read()
        names = [info.filename for info in archive.infolist()]
        manifests = [name for name in names if name.endswith("/manifest.json") and name.count("/") == 1]
        if len(manifests) != 1:
            return [f"expected one <top>/manifest.json, found {manifests}"]
        manifest = json.loads(archive.read(manifests[0]).decode("utf-8"))
        if manifest.get("format") != "ckpt" or manifest.get("format_version") != 1:
            problems.append(f"format {manifest.get('format')!r} version {manifest.get('format_version')!r}, "
                            "expected 'ckpt' version 1")
        blobs = []
        for index, storage in enumerate(manifest["storages"]):
            info = archive.getinfo(storage["record"])
            blob = archive.read(storage["record"])
            if info.compress_type != zipfile.ZIP_STORED:
                problems.append(f"storages[{index}]: {storage['record']} is compressed")
            if len(blob) != storage["nbytes"]:
                problems.append(f"storages[{index}]: nbytes {storage['nbytes']}, record holds {len(blob)}")
            if zlib.crc32(blob) != storage["crc32"] or info.CRC != storage["crc32"]:
                problems.append(f"storages[{index}]: crc32 {storage['crc32']}, data {zlib.crc32(blob)}, zip {info.CRC}")
            offset = storage["offset"]
            if offset % 64 != 0 or file_bytes[offset:offset + len(blob)] != blob:
                problems.append(f"storages[{index}]: offset {offset} is unaligned or not where the record's bytes are")
            blobs.append(blob)
    ManifestDiff(blobs, problems).compare(original, manifest["root"], "")
    return problems


def manifest_float(node):
    """A float as docs/FORMAT.md writes it: {"value": number} when finite, else {"bits": "0x<IEEE-754 binary64>"}."""
    if "bits" in node:
        return struct.unpack("<d", struct.pack("<Q", int(node["bits"], 16)))[0]
    return float(node["value"])


class ManifestDiff:
    """Compares a manifest tree (docs/FORMAT.md) with the Python tree torch loaded."""

    def __init__(self, blobs, problems):
        self.blobs = blobs
        self.problems = problems
        self.storage_pairs = {}
        self.reverse_pairs = {}

    def report(self, path, message):
        self.problems.append(f"manifest {path or '<root>'}: {message}")

    def compare(self, original, node, path):
        kind = type(original).__name__
        if node.get("type") != kind:
            self.report(path, f"type {node.get('type')}, expected {kind}")
            return
        if isinstance(original, torch.Tensor):
            self.compare_tensor(original, node, path)
        elif isinstance(original, dict):
            keys = [k for k, _ in node["items"]]
            if keys != list(original) or [type(k) for k in keys] != [type(k) for k in original]:
                self.report(path, f"keys {keys}, expected {list(original)}")
                return
            for (key, child), value in zip(node["items"], original.values()):
                self.compare(value, child, f"{path}/{key}")
            if isinstance(original, collections.OrderedDict):
                attributes = node.get("attributes", [])
                if [n for n, _ in attributes] != list(vars(original)):
                    self.report(path, f"attributes {[n for n, _ in attributes]}, expected {list(vars(original))}")
                    return
                for (name, child), value in zip(attributes, vars(original).values()):
                    self.compare(value, child, f"{path}/@{name}")
        elif isinstance(original, torch.Size):
            if node["value"] != list(original):
                self.report(path, f"Size {node['value']}, expected {list(original)}")
        elif isinstance(original, (list, tuple, set)):
            items = node["items"]
            if len(items) != len(original):
                self.report(path, f"{len(items)} items, expected {len(original)}")
            elif not isinstance(original, set):  # a set's order is its hash order in this process
                for index, (value, child) in enumerate(zip(original, items)):
                    self.compare(value, child, f"{path}/{index}")
        elif isinstance(original, float):
            if float_bits(manifest_float(node)) != float_bits(original):
                self.report(path, f"float {node!r}, expected {original!r}")
        elif isinstance(original, complex):
            got = complex(manifest_float(node["real"]), manifest_float(node["imag"]))
            if (float_bits(got.real), float_bits(got.imag)) != (float_bits(original.real), float_bits(original.imag)):
                self.report(path, f"complex {got!r}, expected {original!r}")
        elif isinstance(original, (bytes, bytearray)):
            if base64.b64decode(node["base64"]) != bytes(original):
                self.report(path, "bytes differ")
        elif isinstance(original, (torch.device, torch.dtype)):
            expected = str(original).removeprefix("torch.")
            if node["value"] != expected:
                self.report(path, f"{node['value']!r}, expected {expected!r}")
        elif original is None:
            pass
        elif node.get("value") != original or type(node.get("value")) is not type(original):
            self.report(path, f"{node.get('value')!r}, expected {original!r}")

    def compare_tensor(self, original, node, path):
        expected = {
            "dtype": str(original.dtype).removeprefix("torch."), "shape": list(original.shape),
            "strides": list(original.stride()), "storage_offset": original.storage_offset(),
            "requires_grad": original.requires_grad,
        }
        for field, value in expected.items():
            if node.get(field) != value:
                self.report(path, f"{field} {node.get(field)!r}, expected {value!r}")
                return
        index = node["storage"]
        ours = original.untyped_storage()._cdata
        if self.storage_pairs.setdefault(ours, index) != index or self.reverse_pairs.setdefault(index, ours) != ours:
            self.report(path, "storage sharing differs from torch's")
        blob = self.blobs[index]
        item = ITEM_SIZES[node["dtype"]]
        gathered = bytearray()
        for offset in element_offsets(node["shape"], node["strides"], node["storage_offset"]):
            gathered += blob[offset * item:(offset + 1) * item]
        if bytes(gathered) != element_bits(original).numpy().tobytes():
            self.report(path, "elements gathered from the blob differ from torch's")


def element_offsets(shape, strides, start):
    """Storage offsets (in elements) of a view's elements in row-major order."""
    offsets = [start]
    for size, stride in zip(shape, strides):
        offsets = [base + i * stride for base in offsets for i in range(size)]
    return offsets


def rejected(tool, source, destination):
    try:
        done = subprocess.run([tool, "convert", source, destination], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return ["ckpt-tool convert hung on a file it must reject"]
    if done.returncode == 0:
        return ["ckpt-tool convert accepted a file that must be rejected"]
    if not done.stderr.strip():
        return [f"ckpt-tool convert exited {done.returncode} with no message on stderr"]
    if done.returncode < 0:
        return [f"ckpt-tool convert died from signal {-done.returncode}"]
    if os.path.exists(destination):
        return ["ckpt-tool convert failed but left an output file behind"]
    return []


# ---------------------------------------------------------------------------------------------


def check_fixture(report, tool, fixtures, workdir, name):
    with open(os.path.join(fixtures, f"{name}.expected.json"), encoding="utf-8") as f:
        sidecar = json.load(f)
    source = os.path.join(fixtures, f"{name}.pt")
    out = os.path.join(workdir, name)

    if sidecar["expect"] == "reject":
        report.check(name, "convert rejects it with a message", guarded(rejected, tool, source, out + ".ckpt"))
        return

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # A legacy fixture torch cannot read as described names a zip archive of the described tree.
        reference = os.path.join(fixtures, sidecar["reference"]) if "reference" in sidecar else source
        original = torch.load(reference, weights_only=sidecar["weights_only_loadable"] or reference != source,
                              map_location=sidecar.get("map_location"))

    for ext in ("ckpt", "pt"):
        path = f"{out}.{ext}"
        problems = guarded(convert, tool, source, path)
        report.check(name, f"convert -> .{ext}", problems)
        if problems:
            continue
        for mmap in (False, True):
            report.check(name, f"torch.load(.{ext}, weights_only=True, mmap={mmap}) equals the original",
                         guarded(torch_load_problems, original, path, mmap))
        if ext == "ckpt":
            report.check(name, "convert .ckpt -> .ckpt gives the same bytes",
                         guarded(same_bytes_problems, tool, path, f"{out}.again.ckpt"))
            report.check(name, "manifest (zipfile + json only) matches torch's tree and tensors",
                         guarded(manifest_problems, original, path))

    path = f"{out}.safetensors"
    unstorable = sorted(set(tensor_dtypes(original)) - SAFETENSORS_DTYPES)
    problems = guarded(convert, tool, source, path)
    if problems and unstorable:
        # safetensors has no tag for these dtypes: refusing them by name is a right answer too.
        named = any(dtype in problems[0] for dtype in unstorable)
        report.check(name, f"convert -> .safetensors refuses {', '.join(unstorable)} by name",
                     [] if named else problems)
        return
    report.check(name, "convert -> .safetensors", problems)
    if not problems:
        what = "safetensors load_file gives the original tensors" if sidecar["flat_tensors"] \
            else "safetensors opens the file and reads every tensor"
        report.check(name, what, guarded(safetensors_problems, original, path, sidecar["flat_tensors"]))
        report.check(name, "convert .safetensors -> .pt gives the original tree back (values, not views)",
                     guarded(safetensors_round_trip_problems, tool, original, path, f"{out}.from-safetensors.pt"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tool", required=True)
    parser.add_argument("--fixtures", required=True)
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args()

    names = sorted(f.removesuffix(".expected.json") for f in os.listdir(args.fixtures) if f.endswith(".expected.json"))
    if not names:
        print(f"FAIL  no fixtures in {args.fixtures} (run make fixtures)")
        return 1
    report = Report()
    for name in names:
        check_fixture(report, args.tool, args.fixtures, args.workdir, name)
    print(f"interop: {report.passed} passed, {report.failed} failed ({len(names)} fixtures, torch {torch.__version__})")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
