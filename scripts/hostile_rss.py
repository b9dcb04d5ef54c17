#!/usr/bin/env python3
"""Hostile inputs against ckpt's resource caps (ResourceLimits, docs/RELIABILITY.md).

Writes each hostile fixture to a temporary directory, runs `ckpt-tool inspect`, `inspect --json`
and `ckpt-tool verify` on it with the default caps, and prints the file's size, the child's peak RSS (getrusage),
RSS above the file's size, wall time, CPU time (user + system) and CPU time per MiB. Fails (exit 1)
when any run moves peak RSS more than 64 MiB above the file's size or takes more than 1 s of CPU per
MiB (1 s for files under 1 MiB), or when the tool crashes. The time bound is judged on CPU time: on
a shared machine wall time also counts the time spent waiting for a core (a 0.4 s run took 1.6 s of
wall time at load 5), which says nothing about the input. A benign file is measured in the same run
as the baseline.

Usage: scripts/hostile_rss.py [path/to/ckpt-tool]   (default .build/release/ckpt-tool)
Needs only Python's standard library: every fixture is built byte by byte here.
"""
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib

MIB = 1 << 20
RSS_BOUND = 64 * MIB
# ResourceLimits' defaults (Sources/Checkpoint/ResourceLimits.swift): the bases of the count caps,
# which grow by one per so many bytes of the file (VALUES_BYTES_PER_UNIT). The "at cap" fixtures
# load with about this much (their small files add a little), the real worst case of each cap.
MEMO_ENTRIES = 1 << 19
VALUES = 1 << 18
VALUES_BYTES_PER_UNIT = 256  # ResourceLimits.Name.bytesPerUnit
CONTAINER_WEIGHT = 6  # what a new container counts toward VALUES (PickleMachine.containerWeight)
TREE_VALUES = 1 << 20
JSON_VALUES = 1 << 20
DCP_MODULE = b"torch.distributed.checkpoint.metadata"


def deflate(data_or_count):
    """A raw deflate stream of the given bytes, or of that many zero bytes (streamed)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    if isinstance(data_or_count, int):
        out, left, block = [], data_or_count, bytes(8 * MIB)
        while left:
            n = min(left, len(block))
            out.append(c.compress(block[:n]))
            left -= n
        return b"".join(out) + c.flush()
    return c.compress(data_or_count) + c.flush()


def raw_zip(entries):
    """entries: (name, method, crc, compressed bytes, declared size, local header offset or None)."""
    body, central = bytearray(), bytearray()
    for name, method, crc, data, size, offset in entries:
        name = name.encode()
        here = len(body) if offset is None else offset
        if offset is None:
            body += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, crc, len(data), size, len(name), 0)
            body += name + data
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, crc, len(data), size, len(name), 0, 0, 0, 0, 0, here)
        central += name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), len(body), 0)
    return bytes(body + central + end)


def pt(pickle_bytes, extra=()):
    """A torch.save-shaped zip holding `pickle_bytes` as data.pkl (stored), plus raw entries."""
    entries = [("archive/data.pkl", 0, zlib.crc32(pickle_bytes), pickle_bytes, len(pickle_bytes), None)]
    entries += [("archive/byteorder", 0, zlib.crc32(b"little"), b"little", 6, None)]
    return raw_zip(entries + list(extra))


EMPTY_DICT_PICKLE = b"\x80\x02}q\x00."


def shared_shape_pickle(tensors, dims):
    """A torch.save-shaped data.pkl of `tensors` tensors that all share one shape tuple of `dims`
    ones (and use it as their strides), fetched from the memo: each tensor costs a dozen bytes, and
    its shape prints `dims` numbers. Written by Python's pickler with stand-ins for torch's globals."""
    import collections
    import io
    import pickle
    import types

    utils = types.ModuleType("torch._utils")
    torch = types.ModuleType("torch")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called: only pickled")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    FloatStorage = type("FloatStorage", (), {"__module__": "torch"})
    torch.FloatStorage = FloatStorage
    storage = object()
    shape = (1,) * dims

    class Tensor:
        def __reduce__(self):
            return (_rebuild_tensor_v2, (storage, 0, shape, shape, False, collections.OrderedDict()))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", FloatStorage, "0", "cpu", 1) if obj is storage else None

    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        out = io.BytesIO()
        Pickler(out, protocol=2).dump({"t%d" % n: Tensor() for n in range(tensors)})
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return out.getvalue()


def fixtures(work, tool):
    """(name, path) of each hostile input."""
    made = []

    def put(name, data):
        path = os.path.join(work, name)
        with open(path, "wb") as f:
            f.write(data)
        made.append((name, path))

    # Zip: one deflated entry inflating to 1 GiB (refused), one to the file's size + 31 MiB (the
    # most the default allows, inflated by verify), and 1,000 entries over one stream (Fifield).
    bomb = deflate(1 << 30)
    put("zip-bomb-1GiB.pt", pt(EMPTY_DICT_PICKLE, [("archive/data/0", 8, 0, bomb, 1 << 30, None)]))
    at_cap = 31 * MIB
    put("zip-bomb-at-cap.pt", pt(EMPTY_DICT_PICKLE, [("archive/data/0", 8, zlib.crc32(bytes(at_cap)), deflate(at_cap), at_cap, None)]))
    small = deflate(MIB)
    overlap = [("archive/data/0", 8, 0, small, MIB, None)] + [("archive/data/%d" % n, 8, 0, small, MIB, 0) for n in range(1, 1000)]
    put("zip-overlapping-1000.pt", pt(EMPTY_DICT_PICKLE, overlap))
    # Pickle: a memo of 2^24 + 1 entries (MEMOIZE, 1 byte each) and one at the cap, 2^25 + 1 values
    # pushed (None, 1 byte each) and a list at the cap (the list and its elements are pushed), a
    # list of empty dicts at the cap, 22
    # levels of shared tuples (2^23 - 1 places in the tree from 100 bytes) and 19 (2^20 - 1, at the
    # cap), 100,000 levels of nesting.
    put("pickle-memo-16M.pt", pt(b"\x80\x04N" + b"\x94" * ((1 << 24) + 1) + b"."))
    put("pickle-memo-at-cap.pt", pt(b"\x80\x04N" + b"\x94" * MEMO_ENTRIES + b"."))
    put("pickle-values-32M.pt", pt(b"\x80\x02](" + b"N" * ((1 << 25) + 1) + b"e."))
    put("pickle-values-at-cap.pt", pt(b"\x80\x02](" + b"N" * (VALUES - CONTAINER_WEIGHT) + b"e."))
    # The dearest values: empty dicts, as many as the cap allows (each counting CONTAINER_WEIGHT).
    put("pickle-dicts-at-cap.pt", pt(b"\x80\x02](" + b"}" * (VALUES // CONTAINER_WEIGHT - 1) + b"e."))
    put("pickle-shared-tuples-22.pt", pt(b"\x80\x02N" + b"q\x00h\x00\x86" * 22 + b"."))
    put("pickle-shared-tuples-at-cap.pt", pt(b"\x80\x02N" + b"q\x00h\x00\x86" * (TREE_VALUES.bit_length() - 2) + b"."))
    # A shape shared by tensors through the memo counts once per dimension and place: 7 tensors of
    # 2^17 - 1 dimensions stay inside the tree cap (7 * 2^17 places), 9 do not.
    data = [("archive/data/0", 0, zlib.crc32(bytes(4)), bytes(4), 4, None)]
    put("pickle-shared-shape-at-cap.pt", pt(shared_shape_pickle(7, (1 << 17) - 1), data))
    put("pickle-shared-shape-over.pt", pt(shared_shape_pickle(9, (1 << 17) - 1), data))
    # A 64 MiB file whose pickle pushes as many Nones as the values cap grown with the file
    # allows (2^18 + 64 MiB / 256 = 2^19), the rest a stored junk entry that is never read as
    # structure: the cap grows with the file, and the RSS above its size must stay in the bound.
    total = 64 * MIB
    nones = lambda n: b"\x80\x02](" + b"N" * n + b"e."
    count = VALUES + total // VALUES_BYTES_PER_UNIT - CONTAINER_WEIGHT
    junk = lambda n: [("archive/junk", 0, 0, bytes(n), n, None)]
    padding = total - len(pt(nones(count), junk(0)))
    put("pickle-values-at-grown-cap-64MiB.pt", pt(nones(count), [("archive/junk", 0, zlib.crc32(bytes(padding)), bytes(padding), padding, None)]))
    put("pickle-deep-100k.pt", pt(b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b"."))
    # safetensors: a 99 MB header of one shape of 49 million zeros (under the header's byte cap,
    # over its value cap), one of as many zeros as the value cap allows, and a header declaring a
    # 1 TiB tensor in a tiny file.
    zeros = 49_000_000
    header = b'{"w":{"dtype":"F32","shape":[' + b"0," * (zeros - 1) + b'0],"data_offsets":[0,0]}}'
    put("safetensors-header-99MB.safetensors", struct.pack("<Q", len(header)) + header)
    zeros = JSON_VALUES - 7  # the header's other values: 2 objects, a string, 2 arrays, 2 offsets
    header = b'{"w":{"dtype":"F32","shape":[' + b"0," * (zeros - 1) + b'0],"data_offsets":[0,0]}}'
    put("safetensors-values-at-cap.safetensors", struct.pack("<Q", len(header)) + header)
    header = b'{"w":{"dtype":"F32","shape":[262144,1048576],"data_offsets":[0,1099511627776]}}'
    put("safetensors-1TiB-tensor.safetensors", struct.pack("<Q", len(header)) + header + bytes(4))
    # DCP: a checkpoint written by ckpt-tool itself, its .metadata then given 10 million chunks for
    # one tensor (one chunk object fetched from the memo: 5 bytes each).
    source = os.path.join(work, "dcp-source.safetensors")
    header = b'{"w":{"dtype":"F32","shape":[4,2],"data_offsets":[0,32]}}'
    with open(source, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + bytes(32))
    dcp = os.path.join(work, "dcp-chunks-10M")
    subprocess.run([tool, "convert", source, dcp, "--format", "dcp"], check=True, capture_output=True)
    os.remove(source)
    meta = os.path.join(dcp, ".metadata")
    with open(meta, "rb") as f:
        pickle = f.read()
    start = pickle.index(b"c" + DCP_MODULE + b"\nChunkStorageMetadata\n")
    end = pickle.index(b"ube", start) + 2
    memo = struct.pack("<I", 0x7FFF0000)
    with open(meta, "wb") as f:
        f.write(pickle[:end] + b"r" + memo + (b"j" + memo) * (10_000_000 - 1) + pickle[end:])
    made.append(("dcp-chunks-10M", dcp))
    return made


def size_of(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path))
    return os.path.getsize(path)


def run_isolated(tool, command, path):
    """Measures in a fresh child Python so each run's peak RSS is its own (RUSAGE_CHILDREN keeps a
    maximum over all children)."""
    code = (
        "import resource, subprocess, sys, time\n"
        "s = time.monotonic()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "w = time.monotonic() - s\n"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "lines = (p.stderr or p.stdout).strip().splitlines()\n"
        "print(p.returncode, u.ru_maxrss * 1024, w, u.ru_utime + u.ru_stime, (lines[0][:120] if lines else '').replace(' ', '\\x01'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, tool, *command.split(), path], capture_output=True, text=True, check=True)
    status, rss, wall, cpu, line = out.stdout.split()
    return int(status), int(rss), float(wall), float(cpu), line.replace("\x01", " ")


def main():
    tool = sys.argv[1] if len(sys.argv) > 1 else ".build/release/ckpt-tool"
    tool = os.path.abspath(tool)
    if not os.access(tool, os.X_OK):
        sys.exit(f"{tool} not found: swift build -c release --product ckpt-tool")
    work = tempfile.mkdtemp(prefix="ckpt-hostile-")
    failures = []
    try:
        benign = os.path.join(work, "benign.pt")
        with open(benign, "wb") as f:
            f.write(pt(EMPTY_DICT_PICKLE))
        print("writing fixtures ...", flush=True)
        cases = [("baseline (benign .pt)", benign)] + fixtures(work, tool)
        print(f"{'input':38} {'cmd':14} {'file MiB':>9} {'peak MiB':>9} {'above':>8} {'wall s':>7} {'cpu s':>7} {'cpu/MiB':>7}  result")
        for name, path in cases:
            size = size_of(path)
            for command in ("inspect", "inspect --json", "verify"):
                status, rss, wall, cpu, line = run_isolated(tool, command, path)
                above = rss - size
                per_mib = cpu / max(size / MIB, 1)
                crashed = status < 0 or status > 3
                bad = crashed or above > RSS_BOUND or per_mib > 1.0
                result = ("CRASH " if crashed else "") + ("FAIL " if bad else "") + (line if status else "loaded")
                print(f"{name:38} {command:14} {size / MIB:9.2f} {rss / MIB:9.1f} {above / MIB:8.1f} {wall:7.2f} {cpu:7.2f} {per_mib:7.3f}  {result}", flush=True)
                if bad and not name.startswith("baseline"):
                    failures.append(f"{name} {command}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        print("over the bounds (64 MiB above the file's size, 1 s of CPU per MiB): " + ", ".join(failures))
        sys.exit(1)
    print("every hostile input within 64 MiB above its size and 1 s of CPU per MiB")


if __name__ == "__main__":
    main()
