#!/usr/bin/env python3
"""Checks checkpoints ckpt wrote in torch's distributed and sharded layouts with real torch.

Usage:
  PYTHON scripts/check_dcp_interop.py dcp DIR SOURCE.pt [--ranks N]
      torch.distributed.checkpoint.load(template, checkpoint_id=DIR) in one process (no_dist), and
      with --ranks N in N gloo ranks (torch.multiprocessing) whose templates hold every tensor of two
      or more rows as a DTensor sharded Shard(0), must give SOURCE's values (torch.load(SOURCE)); so
      must format_utils.dcp_to_torch_save(DIR, ...) up to DCP's own key flattening (dict keys come
      back as strings).
  PYTHON scripts/check_dcp_interop.py hf DIR SOURCE.pt
      DIR's index and shards, loaded as transformers loads them (safetensors.torch.load_file or
      torch.load(weights_only=True) per shard, merged by weight_map), must hold SOURCE's tensors; a
      tied tensor huggingface_hub dropped (recorded in the index metadata, or the file's
      __metadata__ for one shard) must equal the one kept.
Prints OK and exits 0, or prints each difference and exits 1.
"""
import copy
import json
import os
import sys
import tempfile
import warnings

import torch

warnings.simplefilter("ignore")
failures = []


def raw_bytes(t):
    flat = t.contiguous().reshape(-1)
    return flat.view(torch.uint8) if flat.numel() else flat


def same(a, b, where):
    """Values equal as ckpt promises: tensors bit for bit with dtype and shape, containers by type."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            failures.append(f"{where}: {type(a).__name__} vs {type(b).__name__}")
        elif a.dtype != b.dtype or a.shape != b.shape:
            failures.append(f"{where}: {a.dtype} {list(a.shape)} vs {b.dtype} {list(b.shape)}")
        elif not torch.equal(raw_bytes(a), raw_bytes(b)):
            failures.append(f"{where}: values differ")
        return
    if isinstance(a, dict) and isinstance(b, dict):
        if list(map(str, a.keys())) != list(map(str, b.keys())):
            failures.append(f"{where}: keys {list(a.keys())} vs {list(b.keys())}")
            return
        for (ka, va), vb in zip(a.items(), b.values()):
            same(va, vb, f"{where}/{ka}")
        return
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and type(a) is type(b):
        if len(a) != len(b):
            failures.append(f"{where}: {len(a)} vs {len(b)} items")
            return
        for index, (va, vb) in enumerate(zip(a, b)):
            same(va, vb, f"{where}/{index}")
        return
    if type(a) is not type(b) or a != b:
        failures.append(f"{where}: {a!r} vs {b!r}")


def stringify_keys(value):
    """DCP flattening: every dict key becomes its str()."""
    if isinstance(value, dict):
        return {str(k): stringify_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [stringify_keys(v) for v in value]
    return value


def template(value):
    """The source with every tensor zeroed: what dcp.load loads into."""
    if isinstance(value, torch.Tensor):
        return torch.zeros_like(value)
    if isinstance(value, dict):
        return type(value)((k, template(v)) for k, v in value.items())
    if isinstance(value, list):
        return [template(v) for v in value]
    return copy.deepcopy(value)


def check_one_process(directory, source):
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    loaded = template(source)
    dcp.load(loaded, checkpoint_id=directory, no_dist=True)
    same(loaded, source, "dcp.load")
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "whole.pt")
        dcp_to_torch_save(directory, out)
        same(torch.load(out, weights_only=False), stringify_keys(source), "dcp_to_torch_save")


def rank_worker(rank, world, directory, source_path, port, result_path):
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Shard, distribute_tensor

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    mesh = init_device_mesh("cpu", (world,))
    source = torch.load(source_path, weights_only=False)

    def sharded(value):
        if isinstance(value, torch.Tensor):
            zero = torch.zeros_like(value)
            return distribute_tensor(zero, mesh, [Shard(0)]) if value.dim() >= 1 and value.shape[0] >= 2 else zero
        if isinstance(value, dict):
            return type(value)((k, sharded(v)) for k, v in value.items())
        if isinstance(value, list):
            return [sharded(v) for v in value]
        return copy.deepcopy(value)

    def gathered(value):
        if isinstance(value, DTensor):
            return value.full_tensor()
        if isinstance(value, dict):
            return type(value)((k, gathered(v)) for k, v in value.items())
        if isinstance(value, list):
            return [gathered(v) for v in value]
        return value

    state = sharded(source)
    dcp.load(state, checkpoint_id=directory)
    full = gathered(state)
    same(full, source, f"rank {rank} dcp.load")
    with open(result_path + f".{rank}", "w") as f:
        f.write("\n".join(failures))
    dist.barrier()
    dist.destroy_process_group()


def check_ranks(directory, source_path, world):
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as scratch:
        result = os.path.join(scratch, "failures")
        mp.spawn(rank_worker, args=(world, directory, source_path, 29000 + os.getpid() % 1000, result), nprocs=world, join=True)
        for rank in range(world):
            with open(result + f".{rank}") as f:
                failures.extend(line for line in f.read().split("\n") if line)


def check_hf(directory, source):
    from safetensors import safe_open
    from safetensors.torch import load_file

    names = os.listdir(directory)
    indexes = [n for n in names if n.endswith(".index.json")]
    if indexes:
        with open(os.path.join(directory, indexes[0])) as f:
            index = json.load(f)
        weight_map, metadata = index["weight_map"], index.get("metadata", {})
    else:
        single = [n for n in names if n in ("model.safetensors", "pytorch_model.bin")][0]
        weight_map, metadata = None, {}
        if single.endswith(".safetensors"):
            with safe_open(os.path.join(directory, single), "pt") as f:
                metadata = f.metadata() or {}
    loaded = {}
    files = sorted(set(weight_map.values())) if weight_map else [single]
    for file in files:
        path = os.path.join(directory, file)
        shard = load_file(path) if file.endswith(".safetensors") else torch.load(path, weights_only=True)
        loaded.update(shard)
    if weight_map is not None and set(weight_map) != set(loaded):
        failures.append(f"weight_map names {sorted(weight_map)} but the shards hold {sorted(loaded)}")
    for name, tensor in source.items():
        if name in loaded:
            same(loaded[name], tensor, name)
        elif name in metadata and metadata[name] in loaded:
            same(loaded[metadata[name]], tensor, f"{name} (tied to {metadata[name]})")
        else:
            failures.append(f"{name}: missing from the shards")


def main():
    kind, directory, source_path = sys.argv[1:4]
    source = torch.load(source_path, weights_only=False)
    if kind == "dcp":
        check_one_process(directory, source)
        if "--ranks" in sys.argv:
            check_ranks(directory, source_path, int(sys.argv[sys.argv.index("--ranks") + 1]))
    else:
        check_hf(directory, source)
    for failure in failures:
        print("FAIL", failure)
    print("OK" if not failures else f"{len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
