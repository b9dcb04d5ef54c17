#!/usr/bin/env python3
"""Generate ckpt's test fixtures with real PyTorch, and a sidecar describing each one.

Usage: python scripts/make_fixtures.py Tests/Fixtures
Writes Tests/Fixtures/pt/<name>.pt and Tests/Fixtures/pt/<name>.expected.json.

Every fixture is built from fixed seeds and a fixed PYTHONHASHSEED (set orders depend on it), so
re-running the script writes the same bytes. The sidecar is derived from the Python objects that
were saved, never from ckpt's reader: it is the ground truth the Swift tests and `make interop`
compare against.

Sidecar schema (schema_version 1), one JSON object per fixture:

  {
    "schema_version": 1,
    "fixture": "<name>",                 # file is <name>.pt next to the sidecar
    "torch_version": "2.15.0+...",
    "expect": "load" | "reject",         # "reject": ckpt must throw one of reject_codes
    "reject_codes": ["unsupported", "notRecognized"],   # only when expect == "reject"
    "weights_only_loadable": true,       # torch.load(weights_only=True) reads the file
    "flat_tensors": true,                # root is a (Ordered)dict of str -> tensor only
    "note": "why the fixture exists",
    "root": NODE                         # absent when expect == "reject"
  }

NODE is an object whose "type" is Python's `type(v).__name__`, plus per-type fields:

  dict, OrderedDict   "items": [{"key": KEY, "value": NODE}, ...]        in iteration order
                      "attributes": [{"name": str, "value": NODE}, ...]  the instance __dict__
                                                                         (OrderedDict only; torch's
                                                                         `_metadata` lives here)
  KEY                 {"type": "str", "value": str} | {"type": "int", "value": "<decimal>"}
  list, tuple, set    "items": [NODE, ...]              (set: in iteration order, as pickled)
  str                 "value": str
  int                 "value": "<decimal>"              (a string: exact beyond 2**53)
  float               "value": float.hex(v) ("nan", "inf", "-inf" included),
                      "bits": 16 hex digits of the IEEE-754 binary64 pattern
  bool                "value": true | false
  NoneType            (no other field)
  bytes, bytearray    "hex": the bytes as lowercase hex
  Size                "value": [int, ...]
  device              "value": str(device)              ("cpu")
  dtype               "value": the name after "torch."  ("float16")
  complex             "real", "imag": each {"value": float.hex, "bits": hex64}
  Tensor, Parameter   "dtype": name after "torch.", "shape": [int], "stride": [int],
                      "storage_offset": int (elements), "requires_grad": bool,
                      "storage": int  -- index of the tensor's storage among the distinct storages
                                         in first-seen (pickling) order; equal ids <=> one storage,
                      "storage_nbytes": int  -- byte size of the whole storage,
                      "hex": the logical elements of t.contiguous(), row-major, as hex

Storages are identified as torch.save identifies them (`untyped_storage()._cdata`): a data_ptr
would merge distinct empty storages, which all have a null pointer but are saved separately.
"""

import collections
import io
import json
import math
import os
import pickle
import struct
import sys
import warnings
import zipfile

if os.environ.get("PYTHONHASHSEED") != "0":
    # Set iteration order (and so the pickled order of a set of strings) depends on the hash seed.
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)

import torch  # noqa: E402  (after the re-exec, so the import happens once)

SCHEMA_VERSION = 1


# ---------------------------------------------------------------------------------------------
# Sidecar description


def float_fields(value):
    return {"value": float.hex(value), "bits": struct.pack(">d", value).hex()}


def tensor_hex(tensor):
    flat = tensor.detach().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes().hex()


class Describer:
    """Turns a Python object tree into sidecar nodes, numbering storages in pickling order."""

    def __init__(self):
        self.storage_ids = {}

    def key(self, key):
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise TypeError(f"unsupported key type {type(key).__name__}")
        if isinstance(key, str):
            return {"type": "str", "value": key}
        return {"type": "int", "value": str(key)}

    def node(self, value):
        kind = type(value).__name__
        if isinstance(value, torch.Tensor):
            storage = value.untyped_storage()
            storage_id = self.storage_ids.setdefault(storage._cdata, len(self.storage_ids))
            return {
                "type": kind,
                "dtype": str(value.dtype).removeprefix("torch."),
                "shape": list(value.shape),
                "stride": list(value.stride()),
                "storage_offset": value.storage_offset(),
                "requires_grad": value.requires_grad,
                "storage": storage_id,
                "storage_nbytes": storage.nbytes(),
                "hex": tensor_hex(value),
            }
        if isinstance(value, dict):
            out = {"type": kind, "items": [{"key": self.key(k), "value": self.node(v)} for k, v in value.items()]}
            if isinstance(value, collections.OrderedDict):
                # OrderedDict pickles its items before its __dict__ (BUILD), so storages met in
                # the attributes come after those in the items.
                out["attributes"] = [{"name": n, "value": self.node(v)} for n, v in vars(value).items()]
            return out
        if isinstance(value, (list, tuple, set)) and not isinstance(value, torch.Size):
            return {"type": kind, "items": [self.node(v) for v in value]}
        if isinstance(value, torch.Size):
            return {"type": kind, "value": list(value)}
        if isinstance(value, bool):
            return {"type": kind, "value": value}
        if isinstance(value, int):
            return {"type": kind, "value": str(value)}
        if isinstance(value, float):
            return {"type": kind, **float_fields(value)}
        if isinstance(value, complex):
            return {"type": kind, "real": float_fields(value.real), "imag": float_fields(value.imag)}
        if isinstance(value, str):
            return {"type": kind, "value": value}
        if isinstance(value, (bytes, bytearray)):
            return {"type": kind, "hex": bytes(value).hex()}
        if value is None:
            return {"type": kind}
        if isinstance(value, torch.device):
            return {"type": kind, "value": str(value)}
        if isinstance(value, torch.dtype):
            return {"type": kind, "value": str(value).removeprefix("torch.")}
        raise TypeError(f"no sidecar form for {kind}")


def is_flat_tensor_dict(tree):
    return isinstance(tree, dict) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in tree.items())


def weights_only_loads(path):
    try:
        with warnings.catch_warnings():
            # torch warns before failing on a protocol other than 2; the answer is recorded instead.
            warnings.simplefilter("ignore")
            torch.load(path, weights_only=True)
        return True
    except Exception:
        return False


# ---------------------------------------------------------------------------------------------
# Fixture trees


def adagrad_groups():
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    first, second = model[0], model[2]
    optimizer = torch.optim.Adagrad(
        [
            {"params": [first.weight, first.bias]},
            {"params": [second.weight], "lr": 0.05, "lr_decay": 0.01, "weight_decay": 0.1},
            {"params": [second.bias], "initial_accumulator_value": 0.5, "eps": 1e-8, "maximize": True},
        ],
        lr=0.1,
    )
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(5, 3)).square().sum().backward()
        optimizer.step()
    return optimizer.state_dict()


def adagrad_named():
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    named = list(model.named_parameters())
    optimizer = torch.optim.Adagrad(
        [
            {"params": named[:2]},
            {"params": named[2:], "lr": 0.2, "lr_decay": 0.001},
        ],
        lr=0.01,
    )
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.randn(4, 2)).sum().backward()
        optimizer.step()
    return optimizer.state_dict()


class TiedModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(5, 3)
        self.norm = torch.nn.LayerNorm(3)
        self.head = torch.nn.Linear(3, 5, bias=False)
        self.head.weight = self.embed.weight  # tied: two state_dict keys, one storage
        self.register_buffer("positions", torch.arange(6, dtype=torch.int64))


def model_tied():
    torch.manual_seed(3)
    state = TiedModel().state_dict()
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    state["view.transposed"] = state["embed.weight"].t()  # non-contiguous, shares the tied storage
    state["view.base"] = base
    state["view.slice"] = base[1:, 1:3]  # storage_offset 5, strides (4, 1)
    state["view.row"] = base[2]  # storage_offset 8
    state["view.expanded"] = torch.arange(3, dtype=torch.float32).expand(4, 3)  # stride 0
    state["extra.parameter"] = torch.nn.Parameter(torch.tensor([0.5, -1.5]))
    state["extra.requires_grad"] = torch.tensor([2.0, 3.0], requires_grad=True)
    return state


def dtypes():
    special = [0.0, -0.0, 1.5, -2.25, math.inf, -math.inf, math.nan]
    tree = {}
    for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
        tree[str(dtype).removeprefix("torch.")] = torch.tensor(special, dtype=dtype)
    # float8 has no Inf in e4m3fn; torch's conversion decides what Inf becomes, the bytes say it.
    tree["float8_e4m3fn"] = torch.tensor(special + [448.0, 0.001953125], dtype=torch.float8_e4m3fn)
    tree["float8_e5m2"] = torch.tensor(special + [57344.0], dtype=torch.float8_e5m2)
    tree["complex64"] = torch.tensor([complex(1.5, -0.0), complex(math.nan, math.inf), complex(-2, 3)],
                                     dtype=torch.complex64)
    tree["complex128"] = torch.tensor([complex(0.1, 0.2), complex(-math.inf, math.nan)], dtype=torch.complex128)
    tree["int64"] = torch.tensor([0, -1, 2**63 - 1, -(2**63)], dtype=torch.int64)
    tree["int32"] = torch.tensor([0, -1, 2**31 - 1, -(2**31)], dtype=torch.int32)
    tree["int16"] = torch.tensor([0, -1, 2**15 - 1, -(2**15)], dtype=torch.int16)
    tree["int8"] = torch.tensor([0, -1, 127, -128], dtype=torch.int8)
    tree["uint8"] = torch.tensor([0, 1, 128, 255], dtype=torch.uint8)
    tree["bool"] = torch.tensor([True, False, True], dtype=torch.bool)
    # Built through signed views: the unsigned wide types support few operations.
    tree["uint16"] = torch.tensor([0, 1, -32768, -1], dtype=torch.int16).view(torch.uint16)
    tree["uint32"] = torch.tensor([0, 1, -(2**31), -1], dtype=torch.int32).view(torch.uint32)
    tree["uint64"] = torch.tensor([0, 1, -(2**63), -1], dtype=torch.int64).view(torch.uint64)
    return tree


def shapes():
    torch.manual_seed(4)
    return {
        "scalar_f32": torch.tensor(3.5),
        "scalar_i64": torch.tensor(-7),
        "scalar_bool": torch.tensor(True),
        "scalar_f8": torch.tensor(1.0, dtype=torch.float8_e5m2),
        "empty_1d": torch.empty(0),
        "empty_3x0": torch.empty(3, 0, dtype=torch.float64),
        "empty_0x4_i32": torch.zeros(0, 4, dtype=torch.int32),
        "rank7": torch.randn(2, 1, 3, 1, 2, 1, 2),
        "rank6_permuted": torch.arange(64, dtype=torch.int16).reshape(2, 2, 2, 2, 2, 2).permute(5, 3, 1, 0, 2, 4),
        "ones_dims": torch.randn(1, 1, 1),
    }


def nested():
    return {
        "ints": [0, 1, -1, 255, 256, 65535, 65536, -(2**31), 2**31 - 1, 2**31, 2**62, -(2**62), 2**63 - 1],
        "floats": (0.0, -0.0, 0.1, -2.5, 1e300, 5e-324, math.inf, -math.inf, math.nan),
        "bools": [True, False],
        "none": None,
        "text": "héllo wörld ✓ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
        "empty_text": "",
        "bytes": b"\x00\x01\xffckpt\x80",
        # No b"": protocol 2 pickles it as a call of builtins.bytes, which weights_only forbids.
        "size": torch.Size([2, 3, 0]),
        "empty_size": torch.Size([]),
        "device": torch.device("cpu"),
        "dtypes": [torch.float16, torch.bfloat16, torch.int64, torch.bool],
        "set": {3, 1, 2, "x"},
        "complex": complex(1.5, -2.0),
        "complex_nan": complex(math.nan, -0.0),
        7: "int key",
        -3: {"negative int key": True},
        "deep": {"a": [(1, (2, [3, {"b": ()}]))], "empty_dict": {}, "empty_list": [], "empty_tuple": ()},
        "tuples": ((), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)),
        "ordered": collections.OrderedDict([("z", 1), ("a", 2)]),
        "tensor_in_list": [torch.tensor([1.0, 2.0]), {"t": torch.tensor([3], dtype=torch.int8)}],
    }


def small_tree():
    """The tree the protocol and archive variants share: small, but with every kind of record."""
    torch.manual_seed(5)
    weight = torch.randn(2, 3)
    return {
        "weight": weight,
        "weight_t": weight.t(),
        "bias": torch.tensor([0.25, -0.5], dtype=torch.float64),
        "step": torch.tensor(4.0),
        "u16": torch.tensor([1, 2], dtype=torch.int16).view(torch.uint16),
        "meta": {"name": "small", "epoch": 3, "lr": 0.001, "tags": ("a", "b"), "blob": b"\x00\xff",
                 "buffer": bytearray(b"\x01\x80"), "flag": None},
    }


# ---------------------------------------------------------------------------------------------
# Writing


def rewrite_archive(source, destination, compression=zipfile.ZIP_STORED, rename_top=None, drop=()):
    """Copies a torch.save archive with Python's zipfile, the way another zip tool would."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(destination, "w", compression) as copy:
        for info in original.infolist():
            top, _, rest = info.filename.partition("/")
            if rest in drop:
                continue
            name = f"{rename_top}/{rest}" if rename_top else info.filename
            entry = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = compression
            copy.writestr(entry, original.read(info.filename))


def save_legacy_deterministically(tree, path):
    """torch.save(_use_new_zipfile_serialization=False), made independent of memory addresses.

    The legacy format keys each storage by its address and writes the storages in the string
    order of those keys. This renumbers the keys "0", "1", ... in pickling order and moves each
    storage's bytes to match, as if the addresses had been ascending. Takes a flat dict whose
    tensors are top-level values (so their order in the dict is the pickling order).
    """
    buffer = io.BytesIO()
    torch.save(tree, buffer, _use_new_zipfile_serialization=False)
    data = buffer.getvalue()
    nbytes = {}
    for value in tree.values():
        if isinstance(value, torch.Tensor):
            nbytes.setdefault(str(value.untyped_storage()._cdata), value.untyped_storage().nbytes())
    old_keys = list(nbytes)
    new_key = {key: str(index) for index, key in enumerate(old_keys)}

    key_list = pickle.dumps(sorted(old_keys), protocol=2)
    assert data.count(key_list) == 1, "the storage key list must occur once"
    header_end = data.index(key_list)
    header = data[:header_end]
    chunks, offset = {}, header_end + len(key_list)
    for key in sorted(old_keys):
        length = 8 + nbytes[key]  # an 8-byte element count, then the bytes
        chunks[key] = data[offset:offset + length]
        offset += length
    assert offset == len(data), "legacy storages must fill the rest of the file"

    for key in old_keys:
        # Protocol 2 has no frames, so a BINUNICODE may change length without moving anything else.
        old = b"X" + struct.pack("<I", len(key)) + key.encode()
        new = b"X" + struct.pack("<I", len(new_key[key])) + new_key[key].encode()
        assert header.count(old) >= 1, "each storage key must be pickled as a BINUNICODE"
        header = header.replace(old, new)
    body = pickle.dumps([new_key[key] for key in old_keys], protocol=2)
    with open(path, "wb") as f:
        f.write(header + body + b"".join(chunks[key] for key in old_keys))


def write_sidecar(out_dir, name, tree, note, expect="load"):
    path = os.path.join(out_dir, f"{name}.pt")
    sidecar = {
        "schema_version": SCHEMA_VERSION,
        "fixture": name,
        "torch_version": torch.__version__,
        "expect": expect,
        "note": note,
    }
    if expect == "reject":
        sidecar["reject_codes"] = ["unsupported", "notRecognized"]
    else:
        sidecar["weights_only_loadable"] = weights_only_loads(path)
        sidecar["flat_tensors"] = is_flat_tensor_dict(tree)
        sidecar["root"] = Describer().node(tree)
    with open(os.path.join(out_dir, f"{name}.expected.json"), "w", encoding="utf-8") as f:
        json.dump(sidecar, f, indent=1, ensure_ascii=False)
        f.write("\n")


def check_reloads_equal(path, tree, weights_only=True):
    """The saved file must give back the tree (guards against a fixture the sidecar misdescribes)."""
    loaded = torch.load(path, weights_only=weights_only)
    assert json.dumps(Describer().node(loaded)) == json.dumps(Describer().node(tree)), path


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_fixtures.py FIXTURES_DIR")
    out_dir = os.path.join(sys.argv[1], "pt")
    os.makedirs(out_dir, exist_ok=True)

    def save(name, tree, note, **kwargs):
        path = os.path.join(out_dir, f"{name}.pt")
        torch.save(tree, path, **kwargs)
        check_reloads_equal(path, tree, weights_only=kwargs.get("pickle_protocol", 2) == 2)
        write_sidecar(out_dir, name, tree, note)
        return path

    save("adagrad_groups", adagrad_groups(),
         "Adagrad state_dict after 3 steps; 3 groups with different lr, lr_decay, weight_decay, eps, "
         "initial_accumulator_value, maximize")
    save("adagrad_named", adagrad_named(),
         "Adagrad built from named_parameters(): groups carry param_names")
    save("model_tied", model_tied(),
         "nn.Module state_dict (OrderedDict with _metadata), tied weights, transposed/sliced/expanded "
         "views, an nn.Parameter and a requires_grad tensor")
    save("dtypes", dtypes(), "one tensor of every dtype, NaN/Inf/-0.0 in the floating types")
    save("shapes", shapes(), "0-dim, empty and high-rank tensors")
    save("nested", nested(), "every non-tensor value weights_only allows, nested; int keys")

    small = small_tree()
    base = save("protocol2", small, "the small tree at pickle protocol 2 (torch.save's default)")
    save("protocol4", small, "the small tree at pickle protocol 4 (FRAME, SHORT_BINUNICODE, ...)",
         pickle_protocol=4)
    save("protocol5", small, "the small tree at pickle protocol 5", pickle_protocol=5)

    variants = [
        ("archive_deflated", dict(compression=zipfile.ZIP_DEFLATED), "every record deflated"),
        ("archive_renamed", dict(rename_top="some_other_top"), "a top-level folder unrelated to the file name"),
        ("archive_minimal", dict(drop={".format_version", ".storage_alignment", ".data/serialization_id"}),
         "no .format_version, .storage_alignment or .data/serialization_id; no alignment padding"),
    ]
    for name, options, note in variants:
        path = os.path.join(out_dir, f"{name}.pt")
        rewrite_archive(base, path, **options)
        check_reloads_equal(path, small)
        write_sidecar(out_dir, name, small, f"protocol2.pt rewritten by Python zipfile: {note}")

    legacy_path = os.path.join(out_dir, "legacy_format.pt")
    # torch's legacy loader cannot read back uint16 (an untyped storage), so leave it out.
    legacy = {key: value for key, value in small.items() if key != "u16"}
    save_legacy_deterministically(legacy, legacy_path)
    check_reloads_equal(legacy_path, legacy)
    write_sidecar(out_dir, "legacy_format", legacy,
                  "_use_new_zipfile_serialization=False: torch's pre-1.6 format, not a zip "
                  "(more legacy fixtures: scripts/make_legacy_fixtures.py)")

    total = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    print(f"wrote {len(os.listdir(out_dir))} files, {total} bytes, to {out_dir}")


if __name__ == "__main__":
    main()
