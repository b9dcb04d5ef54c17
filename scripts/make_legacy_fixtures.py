#!/usr/bin/env python3
"""Writes torch.save's pre-1.6 format (`_use_new_zipfile_serialization=False`) fixtures with real torch.

Usage: python scripts/make_legacy_fixtures.py Tests/Fixtures
Writes Tests/Fixtures/pt/legacy_<name>.pt with a sidecar legacy_<name>.expected.json in the schema
of scripts/make_fixtures.py, so the fixture tests that read every torch.save fixture read these too
(and save each one as .pt and .ckpt and read it back).

Each sidecar describes what torch.load returns for the file, never ckpt's reading of it. The files
torch itself cannot read back (the dtypes legacy saves as an untyped storage) are described from
the saved object, and torch reads the same object from a zip archive to show it is well formed.

A legacy file keys each storage by its memory address (`str(storage._cdata)`) and writes the
storages in the string order of those keys; this script renumbers the keys "0", "1", ... in pickling
order and moves the data to match, so re-running it writes the same bytes.

Where torch's reading of a legacy file is not the tree to compare with (it cannot read the untyped
dtypes back; it gives a pre-0.4 storage view its own storage object), the sidecar's "reference" names
a zip archive of the tree described, which `make interop` loads in place of the legacy file.

Tests/Fixtures/legacy/whole_model.pt is a whole nn.Module saved in the legacy format (its class
goes through a ('module', cls, source_file, source) persistent id), with whole_model.json listing
the state_dict torch reads from it.

Hostile variants (legacy_bad_*) are reject fixtures: the sidecar names the CheckpointError codes
ckpt must throw, and "torch" says what torch.load does with the same file.
"""

import collections
import io
import json
import os
import pickle
import pickletools
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import (  # noqa: E402  (importing it re-execs with PYTHONHASHSEED=0)
    SCHEMA_VERSION, Describer, TiedModel, is_flat_tensor_dict, weights_only_loads)
from make_fixtures import dtypes as every_dtype  # noqa: E402

import torch  # noqa: E402

MAGIC = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)


def storages_of(value, found):
    """Every tensor storage in a tree, by torch's legacy key, with its size in bytes."""
    if isinstance(value, torch.Tensor):
        storage = value.untyped_storage()
        found.setdefault(str(storage._cdata), storage.nbytes())
    elif isinstance(value, dict):
        for item in value.values():
            storages_of(item, found)
        for item in vars(value).values() if isinstance(value, collections.OrderedDict) else ():
            storages_of(item, found)
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            storages_of(item, found)
    elif isinstance(value, torch.nn.Module):
        for item in list(value.parameters()) + list(value.buffers()):
            storages_of(item, found)
    return found


def legacy_bytes(tree, protocol=2):
    """torch.save's legacy bytes for `tree`, storage keys renumbered in pickling order."""
    buffer = io.BytesIO()
    torch.save(tree, buffer, _use_new_zipfile_serialization=False, pickle_protocol=protocol)
    data = buffer.getvalue()
    nbytes = storages_of(tree, {})
    stream = io.BytesIO(data)
    for _ in range(3):  # magic number, protocol version, sys_info
        pickle.load(stream)
    object_start = stream.tell()
    key_list = pickle.dumps(sorted(nbytes), protocol=protocol)
    header_end = data.index(key_list, object_start)
    header = data[:header_end]
    chunks, offset = {}, header_end + len(key_list)
    for key in sorted(nbytes):
        chunks[key] = data[offset:offset + 8 + nbytes[key]]  # an 8-byte element count, then the bytes
        offset += 8 + nbytes[key]
    assert offset == len(data), "legacy storages must fill the rest of the file"

    def unicode(text):
        encoded = text.encode()
        if protocol >= 4 and len(encoded) < 256:
            return b"\x8c" + bytes([len(encoded)]) + encoded  # SHORT_BINUNICODE
        return b"X" + struct.pack("<I", len(encoded)) + encoded

    # Pickling order is the order each key is first written (later uses are memo fetches).
    old_keys = sorted(nbytes, key=lambda key: header.index(unicode(key), object_start))
    # From protocol 4 on, pickles are framed: a new key keeps the old one's length ("00…0", "00…1").
    width = (lambda key: len(key)) if protocol >= 4 else (lambda key: 0)
    new_key = {key: str(index).rjust(width(key), "0") for index, key in enumerate(old_keys)}
    for key in old_keys:
        assert header.count(unicode(key)) >= 1, "each storage key must be pickled as a BINUNICODE"
        header = header.replace(unicode(key), unicode(new_key[key]))
    body = pickle.dumps([new_key[key] for key in old_keys], protocol=protocol)
    return header + body + b"".join(chunks[key] for key in old_keys)


def same_tree(a, b):
    return json.dumps(Describer().node(a)) == json.dumps(Describer().node(b))


def sidecar(out_dir, name, tree, note, reference=False, **extra):
    """Writes the sidecar describing `tree`; with `reference`, also `tree` as a zip archive
    (<name>.reference.pt) for checks that compare with what torch loads (make interop)."""
    path = os.path.join(out_dir, f"{name}.pt")
    if reference:
        torch.save(tree, os.path.join(out_dir, f"{name}.reference.pt"))
        extra["reference"] = f"{name}.reference.pt"
    document = {
        "schema_version": SCHEMA_VERSION,
        "fixture": name,
        "torch_version": torch.__version__,
        "expect": "load",
        "note": note,
        "weights_only_loadable": weights_only_loads(path),
        "flat_tensors": is_flat_tensor_dict(tree),
        **extra,
        "root": Describer().node(tree),
    }
    write_json(out_dir, name, document)


def reject(out_dir, name, data, codes, note):
    path = os.path.join(out_dir, f"{name}.pt")
    with open(path, "wb") as f:
        f.write(data)
    try:
        torch.load(path, weights_only=False)
        torch_does = "loads it without an error (reading memory it never filled)"
    except Exception as error:  # what torch says, recorded for people
        torch_does = f"raises {type(error).__name__}: {str(error)[:160]}"
    write_json(out_dir, name, {
        "schema_version": SCHEMA_VERSION,
        "fixture": name,
        "torch_version": torch.__version__,
        "expect": "reject",
        "reject_codes": codes,
        "note": note,
        "torch": torch_does,
    })


def write_json(out_dir, name, document):
    with open(os.path.join(out_dir, f"{name}.expected.json"), "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1, ensure_ascii=False)
        f.write("\n")


# ---------------------------------------------------------------------------------------------
# Trees


class Block(TiedModel):
    """make_fixtures' tied model (two keys on one storage) with a BatchNorm: running statistics and
    an int64 num_batches_tracked."""

    def __init__(self):
        super().__init__()
        self.bn = torch.nn.BatchNorm1d(3)


def views_and_shared():
    torch.manual_seed(11)
    state = Block().state_dict()  # an OrderedDict with _metadata
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    state["view.transposed"] = state["embed.weight"].t()
    state["view.base"] = base
    state["view.slice"] = base[1:, 1:3]
    state["view.row"] = base[2]
    state["view.expanded"] = torch.arange(3, dtype=torch.float64).expand(4, 3)
    state["view.empty_tail"] = base[3:]
    state["extra.parameter"] = torch.nn.Parameter(torch.tensor([0.5, -1.5]))
    state["extra.requires_grad"] = torch.tensor([2.0, 3.0], requires_grad=True)
    return state


# The dtypes torch saves through an untyped storage, which its own legacy loader cannot read back.
UNTYPED = ("uint16", "uint32", "uint64", "float8_e4m3fn", "float8_e5m2")


def legacy_dtypes():
    """make_fixtures' tensor of every dtype that has a typed storage, a 0-dim and an empty one."""
    tree = {name: tensor for name, tensor in every_dtype().items() if name not in UNTYPED}
    tree["scalar"] = torch.tensor(3.5)
    tree["empty"] = torch.empty(0, 4, dtype=torch.int32)
    return tree


def untyped_dtypes():
    return {name: tensor for name, tensor in every_dtype().items() if name in UNTYPED}


def training_checkpoint():
    """What a training script of the torch 1.x era saved: model, optimizer, epoch, config."""
    torch.manual_seed(12)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.randn(5, 3)).square().sum().backward()
        optimizer.step()
    adagrad = torch.optim.Adagrad(model.parameters(), lr=0.01)
    model(torch.randn(2, 3)).sum().backward()
    adagrad.step()
    return {
        "epoch": 7,
        "state_dict": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "adagrad": adagrad.state_dict(),
        "best_acc": 0.875,
        "arch": "mlp",
        "history": [(1, 0.5), (2, 0.25)],
        "meta": collections.OrderedDict([("version", 2), ("note", None), ("nested", {"k": [1, 2, {"t": torch.ones(2)}]})]),
    }


def storage_views(tail=("1", 4, 6)):
    """The format of torch before 0.4, where a tensor could sit on a view of a storage: a
    persistent id with view_metadata (view_key, offset, size). Written by hand, as current torch
    never writes one (its storages have no views), and read by torch's current loader."""
    root = torch.arange(10, dtype=torch.float32)
    parts = {}

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, torch.storage.TypedStorage):
                view = parts[id(obj)]
                return ("storage", torch.FloatStorage, "0", "cpu", 10, view)
            return None

    # _rebuild_tensor_v2 on a view: offsets count from the view's start.
    class OnView:
        def __init__(self, view, offset, size, stride):
            self.storage = torch.storage.TypedStorage(10, dtype=torch.float32)  # stands in; pickled by id
            parts[id(self.storage)] = view
            self.args = (self.storage, offset, size, stride, False, collections.OrderedDict())

        def __reduce__(self):
            return (torch._utils._rebuild_tensor_v2, self.args)

    tree = {
        "whole": OnView(None, 0, (10,), (1,)),
        "tail": OnView(tail, 1, (2, 2), (2, 1)),  # view of elements 4..9, tensor from its element 1
        "tail_again": OnView(tail, 0, (6,), (1,)),  # the same view, whole
        "middle": OnView(("2", 2, 3), 0, (3,), (1,)),
    }
    out = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001,
                   {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(header, out, protocol=2)
    Pickler(out, protocol=2).dump(tree)
    pickle.dump(["0"], out, protocol=2)
    out.write(struct.pack("<q", 10) + root.numpy().tobytes())
    return out.getvalue()


def on_root_storage(tree, root_key):
    """Each tensor of a flat dict rebuilt on the storage of tree[root_key], at the address torch gave
    it; checks first that torch's view storages really share that memory."""
    root = tree[root_key].untyped_storage()
    probe = tree[root_key].clone()
    tree[root_key].fill_(-1.0)
    rebased = {}
    for key, tensor in tree.items():
        storage = tensor.untyped_storage()
        delta = storage.data_ptr() - root.data_ptr()
        assert 0 <= delta and delta + storage.nbytes() <= root.nbytes(), key
        assert bool((tensor == -1.0).all()), f"{key} does not share the root's memory"
        offset = tensor.storage_offset() + delta // tensor.element_size()
        rebased[key] = torch.empty(0, dtype=tensor.dtype).set_(root, offset, tensor.shape, tensor.stride())
    tree[root_key].copy_(probe)
    return rebased


# ---------------------------------------------------------------------------------------------
# Hostile variants of one small file


def pieces(data):
    """Splits a legacy file into its five pickles and the storages."""
    stream = io.BytesIO(data)
    bounds = [0]
    for _ in range(5):
        for _ in pickletools.genops(stream):  # walks one pickle to its STOP without running it
            pass
        bounds.append(stream.tell())
    return [data[a:b] for a, b in zip(bounds, bounds[1:])] + [data[bounds[-1]:]]


def hostile(out_dir):
    tree = {"a": torch.arange(4, dtype=torch.float32), "b": torch.tensor([7, 8], dtype=torch.int64)}
    magic, version, info, obj, keys, data = pieces(legacy_bytes(tree))
    assert pickle.loads(keys) == ["0", "1"]
    first = data[:8 + 16]
    second = data[8 + 16:]

    reject(out_dir, "legacy_bad_truncated", magic + version + info + obj + keys + first + second[:12], ["truncated"],
           "the file ends inside the last storage's data")
    reject(out_dir, "legacy_bad_count_past_end",
           magic + version + info + obj + keys + first + struct.pack("<q", 2**40) + second[8:], ["corrupt", "truncated"],
           "the last storage's element count is far larger than the file")
    reject(out_dir, "legacy_bad_count_mismatch",
           magic + version + info + obj + keys + struct.pack("<q", 3) + first[8:] + second, ["corrupt"],
           "a storage's element count (3) disagrees with the numel its tensor's persistent id gives (4)")
    reject(out_dir, "legacy_bad_duplicate_key",
           magic + version + info + obj + pickle.dumps(["0", "0"], protocol=2) + first + first, ["corrupt"],
           "the storage key list names '0' twice")
    reject(out_dir, "legacy_bad_missing_key",
           magic + version + info + obj + pickle.dumps(["0"], protocol=2) + first, ["missingEntry"],
           "the key list leaves out storage '1', whose data is then not in the file")
    reject(out_dir, "legacy_bad_unknown_key",
           magic + version + info + obj + pickle.dumps(["0", "1", "9"], protocol=2) + first + second + second,
           ["corrupt"], "the key list names a storage '9' that no tensor uses")
    reject(out_dir, "legacy_bad_protocol_version", magic + pickle.dumps(1000, protocol=2) + info + obj + keys + data,
           ["unsupported"], "protocol version 1000 instead of 1001")
    reject(out_dir, "legacy_bad_magic_only", magic, ["truncated"], "nothing after the magic number")
    reject(out_dir, "legacy_bad_view_past_root", storage_views(tail=("1", 6, 6)), ["outOfBounds"],
           "a pre-0.4 storage view of elements 6..11 of a 10-element storage")
    reject(out_dir, "legacy_bad_tensor_past_view", storage_views(tail=("1", 4, 4)), ["outOfBounds"],
           "a tensor of 6 elements on a storage view of 4 (inside the root storage)")


def whole_model(directory):
    """torch.save(model) in the legacy format: the module class goes through a ('module', ...)
    persistent id. ckpt keeps the module as a placeholder; whole_model.json lists model.state_dict()."""
    torch.manual_seed(13)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    path = os.path.join(directory, "whole_model.pt")
    with open(path, "wb") as f:
        f.write(legacy_bytes(model))
    loaded = torch.load(path, weights_only=False)
    state = loaded.state_dict()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    write_json(directory, "whole_model", {
        "note": "torch.save(nn.Sequential) with _use_new_zipfile_serialization=False; state_dict of torch's load",
        "class": "torch.nn.modules.container.Sequential",
        "state_dict": [{"key": k, "dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape),
                        "hex": v.detach().contiguous().view(-1).view(torch.uint8).numpy().tobytes().hex()}
                       for k, v in state.items()],
    })


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_legacy_fixtures.py FIXTURES_DIR")
    out_dir = os.path.join(sys.argv[1], "pt")
    os.makedirs(out_dir, exist_ok=True)

    def save(name, tree, note, protocol=2, torch_reads=True):
        path = os.path.join(out_dir, f"{name}.pt")
        with open(path, "wb") as f:
            f.write(legacy_bytes(tree, protocol))
        if torch_reads:
            loaded = torch.load(path, weights_only=protocol == 2)
            assert same_tree(loaded, tree), name
            sidecar(out_dir, name, loaded, note)
        else:
            zipped = io.BytesIO()
            torch.save(tree, zipped)
            assert same_tree(torch.load(io.BytesIO(zipped.getvalue()), weights_only=True), tree), name
            sidecar(out_dir, name, tree, note, reference=True, torch_reads_legacy=False)

    save("legacy_views_shared", views_and_shared(),
         "nn.Module state_dict (OrderedDict, _metadata), tied weights, transposed, sliced, expanded and empty "
         "views, an nn.Parameter and a requires_grad tensor")
    save("legacy_dtypes", legacy_dtypes(), "one tensor of every dtype with a typed storage, NaN/Inf/-0.0; 0-dim; empty")
    save("legacy_training", training_checkpoint(),
         "a 1.x-era training checkpoint: model state_dict, SGD-with-momentum and Adagrad state_dicts (int keys), "
         "epoch, floats, str, tuples, a nested OrderedDict")
    save("legacy_protocol4", views_and_shared(), "views_shared at pickle protocol 4 (FRAME, SHORT_BINUNICODE, MEMOIZE)",
         protocol=4)
    save("legacy_untyped_dtypes", untyped_dtypes(),
         "uint16/32/64 and float8: torch saves them on an untyped storage (numel in bytes) and its own legacy "
         "loader fails on them ('UntypedStorage' has no attribute 'dtype'); described from the saved object",
         torch_reads=False)

    path = os.path.join(out_dir, "legacy_storage_views.pt")
    with open(path, "wb") as f:
        f.write(storage_views())
    sidecar(out_dir, "legacy_storage_views", on_root_storage(torch.load(path, weights_only=True), "whole"),
            "the pre-0.4 storage views (view_metadata in the persistent id), written by hand, read by torch; torch "
            "gives each view its own storage object sharing the root's memory, described here as tensors on the root "
            "storage at the same addresses", reference=True)

    hostile(out_dir)
    other = os.path.join(sys.argv[1], "legacy")
    os.makedirs(other, exist_ok=True)
    whole_model(other)
    print(f"wrote legacy fixtures to {out_dir} and {other}")


if __name__ == "__main__":
    main()
