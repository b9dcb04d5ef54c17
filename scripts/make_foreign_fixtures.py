#!/usr/bin/env python3
"""Copies real weight files shipped inside pip packages into the fixtures, with torch's reading of each.

Usage: python scripts/make_foreign_fixtures.py Tests/Fixtures [--check CKPT_TOOL]

Downloads (pip download --no-deps, pinned versions, cached in ~/.cache/ckpt/foreign) three wheels
that ship model weights, as a new user would find them:
  - lpips 0.1.4 (BSD-2-Clause): six legacy (pre-1.6) files pickled by Python 2, saved from CUDA;
  - facenet-pytorch 2.6.0 (MIT): three legacy files whose tensors are non-contiguous views;
  - silero-vad 6.2.3 (MIT): a TorchScript archive.

The small ones become fixtures (Tests/Fixtures/pt/foreign_*.pt, licenses in
Tests/Fixtures/pt/FOREIGN.md) with sidecars in make_fixtures.py's schema, written from what
`torch.load(map_location="cpu")` returns (and the location torch reports for each tensor's storage),
so the fixture tests and `make interop` compare ckpt's reading of them with torch's.

With --check, every weight file of the three wheels (not only the committed ones) is converted to
safetensors by CKPT_TOOL and compared, tensor by tensor and bit for bit, with torch's reading
(`torch.jit.load(f).state_dict()` for the TorchScript archive). Prints one line per file.
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import SCHEMA_VERSION, Describer, is_flat_tensor_dict  # noqa: E402
from make_legacy_fixtures import write_json  # noqa: E402

import torch  # noqa: E402

WHEELS = ["lpips==0.1.4", "facenet-pytorch==2.6.0", "silero-vad==6.2.3"]
CACHE = os.path.expanduser("~/.cache/ckpt/foreign")

# Committed fixtures: (fixture name, path inside the unpacked wheels, what it shows).
COMMITTED = [
    ("foreign_lpips_v0_0_alex", "lpips/weights/v0.0/alex.pth",
     "lpips 0.1.4's weights: legacy format pickled by Python 2 (OrderedDict(pairs), str as SHORT_BINSTRING), "
     "storages saved on cuda"),
    ("foreign_lpips_v0_1_squeeze", "lpips/weights/v0.1/squeeze.pth",
     "lpips 0.1.4's weights: legacy format pickled by Python 2, with _metadata, storages saved on cuda"),
    ("foreign_facenet_pnet", "facenet_pytorch/data/pnet.pt",
     "facenet-pytorch 2.6.0's P-Net: legacy format, every conv weight a non-contiguous view"),
]


def unpacked():
    """The three wheels, downloaded once and unpacked; returns the directory."""
    root = os.path.join(CACHE, "unpacked")
    if os.path.isdir(root):
        return root
    wheels = os.path.join(CACHE, "wheels")
    os.makedirs(wheels, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", wheels, *WHEELS],
                   check=True)
    staging = tempfile.mkdtemp(dir=CACHE)
    for wheel in glob.glob(os.path.join(wheels, "*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(staging)
    os.rename(staging, root)
    return root


def torch_reading(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # A TorchScript archive is a zip with a constants.pkl record beside data.pkl.
        if zipfile.is_zipfile(path) and any(n.endswith("/constants.pkl") for n in zipfile.ZipFile(path).namelist()):
            return torch.jit.load(path, map_location="cpu").state_dict()
        return torch.load(path, map_location="cpu", weights_only=True)


def recorded_locations(path):
    """{key: location} for each tensor of a flat state dict, as torch.load reports them to map_location."""
    seen = {}

    def remember(storage, location):
        seen[storage.data_ptr()] = location
        return storage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = torch.load(path, map_location=remember, weights_only=True)
    return {key: seen[tensor.untyped_storage().data_ptr()] for key, tensor in tree.items()}


def write_fixtures(root, out_dir):
    for name, relative, note in COMMITTED:
        source = os.path.join(root, relative)
        target = os.path.join(out_dir, f"{name}.pt")
        shutil.copyfile(source, target)
        tree = torch_reading(target)
        write_json(out_dir, name, {
            "schema_version": SCHEMA_VERSION,
            "fixture": name,
            "torch_version": torch.__version__,
            "expect": "load",
            "note": note,
            "source": relative,
            # torch.load needs map_location="cpu" for the cuda storages on a machine without CUDA.
            "map_location": "cpu",
            # Each tensor's storage location as torch.load hands it to a map_location function.
            "locations": recorded_locations(target),
            "weights_only_loadable": True,
            "flat_tensors": is_flat_tensor_dict(tree),
            "root": Describer().node(tree),
        })
    print(f"wrote {len(COMMITTED)} foreign fixtures to {out_dir}")


def check(root, tool):
    from safetensors.torch import load_file
    failed = 0
    files = sorted(p for p in glob.glob(os.path.join(root, "**", "*"), recursive=True)
                   if p.endswith((".pt", ".pth", ".jit")))
    with tempfile.TemporaryDirectory() as work:
        for path in files:
            relative = os.path.relpath(path, root)
            expected = torch_reading(path)
            out = os.path.join(work, "out.safetensors")
            run = subprocess.run([tool, "convert", path, out], capture_output=True, text=True)
            if run.returncode != 0:
                failed += 1
                print(f"FAIL {relative}: convert: {run.stderr.strip()}")
                continue
            got = load_file(out)
            problems = []
            if list(got) != list(expected):
                problems.append(f"keys {list(got)[:3]}... != torch's {list(expected)[:3]}...")
            for key, tensor in expected.items():
                other = got.get(key)
                if other is None or other.dtype != tensor.dtype or other.shape != tensor.shape \
                        or not torch.equal(other.contiguous().view(torch.uint8), tensor.contiguous().view(torch.uint8)):
                    problems.append(f"{key} differs")
            if problems:
                failed += 1
                print(f"FAIL {relative}: {'; '.join(problems[:3])}")
            else:
                print(f"PASS {relative}: {len(expected)} tensors equal torch's reading bit for bit")
    print(f"{len(files) - failed} of {len(files)} files equal torch's reading")
    return failed == 0


def main():
    if len(sys.argv) not in (2, 4) or (len(sys.argv) == 4 and sys.argv[2] != "--check"):
        sys.exit("usage: make_foreign_fixtures.py FIXTURES_DIR [--check CKPT_TOOL]")
    root = unpacked()
    if len(sys.argv) == 4:
        sys.exit(0 if check(root, sys.argv[3]) else 1)
    write_fixtures(root, os.path.join(sys.argv[1], "pt"))


if __name__ == "__main__":
    main()
