#!/usr/bin/env python3
"""Writes the checkpoints-at-scale fixtures in Tests/Fixtures/dcp/ and Tests/Fixtures/sharded/ with
real torch (torch.distributed.checkpoint) and huggingface_hub (save_torch_state_dict).

Usage: ~/.cache/ckpt/venv-torch/bin/python scripts/make_dcp_fixtures.py

Every checkpoint comes with NAME.expected.pt: torch's own reading of it, saved with torch.save, so the
Swift tests compare ckpt's reader with torch's through ckpt's verified zip reader, never with itself.

Tests/Fixtures/dcp/
  single/          dcp.save from one process (no process group): nested dicts, an optimizer's int
                   keys, a list of tensors, a transposed (non-contiguous) tensor, bf16, 0-dim, non-tensor
                   values (int, float, str, None, a list of ints).
  two_ranks/       dcp.save from 2 gloo ranks (torch.multiprocessing): DTensors sharded Shard(0) on an
                   even and an uneven first dimension and Shard(1), a replicated tensor, non-tensor values.
  NAME.expected.pt torch.distributed.checkpoint.format_utils.dcp_to_torch_save(NAME, ...).
  single.source.pt the state dict single/ was saved from (int keys and all), torch.save'd: what ckpt's
                   DCP writer is given in the tests.
  hostile/NAME.metadata  single/.metadata with one thing wrong, pickled with torch's own dataclasses:
                   overlap (two chunks of one tensor overlap), outside (a chunk past the tensor's size),
                   past_file (an item's offset + length past its .distcp), missing_file (an item in a
                   .distcp that does not exist), forbidden_global (an os.system call inside the planner
                   data), gap (the chunks do not cover the tensor), duplicate_entry (storage_data
                   naming one chunk twice, which Python's dict would resolve silently to the last).
  storage_variants/NAME.metadata  two_ranks/.metadata with storage_data keyed as torch still reads it
                   (checked here against two_ranks.expected.pt): hints_none (no MetadataIndex.index),
                   hints_wrong (indices naming another chunk or none), extra_entries (entries for a name
                   and for offsets that no item has).
Tests/Fixtures/sharded/
  safetensors/     huggingface_hub.save_torch_state_dict(..., max_shard_size="1KB"): model-0000k-of-0000N
                   .safetensors + model.safetensors.index.json; lm_head.weight tied to embed.weight, so
                   the index metadata records the dropped name as huggingface_hub does.
  bin/             the same with safe_serialization=False: pytorch_model-*.bin + pytorch_model.bin.index.json
                   (tied tensors kept, in one shard).
  NAME.expected.pt the shards loaded as transformers does (safetensors.torch.load_file / torch.load of each
                   file in weight_map order, merged into one dict).
  source.pt        the state dict that was sharded (tied weights shared), for the write tests.
  splits.json      huggingface_hub.split_torch_state_dict_into_shards(source) at several max_shard_size
                   values: {"<size>": {"filename_to_tensors": ..., "metadata": ...}}.
"""
import json
import os
import pickle
import shutil
import sys
import tempfile
import warnings

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.multiprocessing as mp
from torch.distributed.checkpoint.format_utils import dcp_to_torch_save
from torch.distributed.checkpoint.filesystem import _StorageInfo
from torch.distributed.checkpoint.metadata import ChunkStorageMetadata, Metadata, MetadataIndex

ROOT = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures"))
DCP_OUT = os.path.join(ROOT, "dcp")
SHARDED_OUT = os.path.join(ROOT, "sharded")

warnings.simplefilter("ignore")


def single_state():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(3, 4, generator=g)
    return {
        "model": {
            "w": w,
            "wt": torch.randn(4, 3, generator=g).t(),  # non-contiguous: strides (1, 3)
            "b": torch.arange(3, dtype=torch.int64),
            "half": torch.randn(5, generator=g).to(torch.bfloat16),
            "scalar": torch.tensor(2.5, dtype=torch.float64),
        },
        "optim": {
            "state": {0: {"step": torch.tensor(3.0), "sum": torch.ones(2)}, 1: {"step": torch.tensor(3.0), "sum": torch.zeros(3)}},
            "param_groups": [{"lr": 0.1, "eps": 1e-10, "params": [0, 1]}],
        },
        "buffers": [torch.full((2,), 7, dtype=torch.int32), torch.tensor([True, False])],
        "epoch": 7,
        "loss": 0.25,
        "name": "run-1",
        "nothing": None,
    }


def write_dcp_single(out):
    path = os.path.join(out, "single")
    shutil.rmtree(path, ignore_errors=True)
    dcp.save(single_state(), checkpoint_id=path, no_dist=True)
    dcp_to_torch_save(path, os.path.join(out, "single.expected.pt"))
    torch.save(single_state(), os.path.join(out, "single.source.pt"))


def two_rank_worker(rank, world, path, port):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    mesh = init_device_mesh("cpu", (world,))
    w = torch.arange(24, dtype=torch.float32).reshape(6, 4)
    odd = (torch.arange(15, dtype=torch.float64) / 7).reshape(5, 3)
    cols = torch.arange(24, dtype=torch.int64).reshape(4, 6) * 3
    state = {
        "model": {
            "w": distribute_tensor(w, mesh, [Shard(0)]),
            "odd": distribute_tensor(odd, mesh, [Shard(0)]),
            "cols": distribute_tensor(cols, mesh, [Shard(1)]),
            "bias": torch.tensor([0.5, -1.0, 2.0, 4.0]),
        },
        "step": 5,
        "tag": "two-ranks",
    }
    dcp.save(state, checkpoint_id=path)
    dist.barrier()
    dist.destroy_process_group()


def write_dcp_two_ranks(out):
    path = os.path.join(out, "two_ranks")
    shutil.rmtree(path, ignore_errors=True)
    mp.spawn(two_rank_worker, args=(2, path, 29517), nprocs=2, join=True)
    dcp_to_torch_save(path, os.path.join(out, "two_ranks.expected.pt"))


class _Forbidden:
    """Pickles as a call of os.system: what a hostile .metadata would hold."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def write_hostile(out):
    hostile = os.path.join(out, "hostile")
    shutil.rmtree(hostile, ignore_errors=True)
    os.makedirs(hostile)
    with open(os.path.join(out, "single", ".metadata"), "rb") as f:
        good = pickle.load(f)

    def dump(name, metadata):
        with open(os.path.join(hostile, name + ".metadata"), "wb") as f:
            pickle.dump(metadata, f, protocol=4)

    def fresh():
        return pickle.loads(pickle.dumps(good))

    # model.w is [3, 4] in one chunk; split it into two chunks that overlap on row 1.
    m = fresh()
    md = m.state_dict_metadata["model.w"]
    md.chunks = [ChunkStorageMetadata(torch.Size([0, 0]), torch.Size([2, 4])), ChunkStorageMetadata(torch.Size([1, 0]), torch.Size([2, 4]))]
    dump("overlap", m)

    m = fresh()
    m.state_dict_metadata["model.w"].chunks = [ChunkStorageMetadata(torch.Size([0, 0]), torch.Size([3, 5]))]
    dump("outside", m)

    m = fresh()
    m.state_dict_metadata["model.w"].chunks = [ChunkStorageMetadata(torch.Size([0, 0]), torch.Size([2, 4]))]
    dump("gap", m)

    m = fresh()
    for index, info in m.storage_data.items():
        if index.fqn == "model.w":
            info.offset = 1 << 20
    dump("past_file", m)

    m = fresh()
    for index, info in m.storage_data.items():
        if index.fqn == "model.b":
            info.relative_path = "__7_0.distcp"
    dump("missing_file", m)

    m = fresh()
    m.planner_data["epoch"] = _Forbidden()
    dump("forbidden_global", m)

    # storage_data naming model.w's chunk twice, with two places for its bytes: Python's dict
    # keeps the last, silently; the pickle itself is ambiguous. A dict cannot hold the key twice,
    # so the pickler is told to write the first entry again after the others.
    m = fresh()
    storage = m.storage_data
    first = next(iter(storage.items()))

    class Twice(pickle._Pickler):
        def save_dict(self, obj):
            if obj is storage:
                self.write(pickle.EMPTY_DICT)
                self.memoize(obj)
                self._batch_setitems(list(obj.items()) + [(first[0], _StorageInfo(first[1].relative_path, 0, 8))])
            else:
                super().save_dict(obj)

        dispatch = dict(pickle._Pickler.dispatch)
        dispatch[dict] = save_dict

    with open(os.path.join(hostile, "duplicate_entry.metadata"), "wb") as f:
        Twice(f, protocol=4).dump(m)


def write_storage_variants(out):
    """two_ranks/.metadata with storage_data keys that torch reads all the same: MetadataIndex.index
    is a hint (equality and hashing ignore it), and entries naming no chunk are never looked up.
    Each variant is checked here to load equal to two_ranks.expected.pt through torch."""
    variants = os.path.join(out, "storage_variants")
    shutil.rmtree(variants, ignore_errors=True)
    os.makedirs(variants)
    with open(os.path.join(out, "two_ranks", ".metadata"), "rb") as f:
        good = pickle.load(f)
    chunks = {fqn: len(md.chunks) for fqn, md in good.state_dict_metadata.items() if hasattr(md, "chunks")}

    def variant(name, storage_data):
        m = pickle.loads(pickle.dumps(good))
        m.storage_data = storage_data
        with open(os.path.join(variants, name + ".metadata"), "wb") as f:
            pickle.dump(m, f, protocol=4)
        with tempfile.TemporaryDirectory() as scratch:
            copy = os.path.join(scratch, "ckpt")
            shutil.copytree(os.path.join(out, "two_ranks"), copy)
            shutil.copy(os.path.join(variants, name + ".metadata"), os.path.join(copy, ".metadata"))
            dcp_to_torch_save(copy, os.path.join(scratch, "read.pt"))
            read = torch.load(os.path.join(scratch, "read.pt"), weights_only=False)
        expected = torch.load(os.path.join(out, "two_ranks.expected.pt"), weights_only=False)
        assert_same(read, expected, name)

    items = list(good.storage_data.items())
    variant("hints_none", {MetadataIndex(k.fqn, k.offset, None): v for k, v in items})
    # Every hint of a sharded tensor names the other chunk, and one names no chunk at all.
    wrong = {}
    for number, (k, v) in enumerate(items):
        index = k.index if k.index is None or chunks.get(k.fqn, 1) == 1 else (k.index + 1) % chunks[k.fqn]
        wrong[MetadataIndex(k.fqn, k.offset, 99 if number == 0 else index)] = v
    variant("hints_wrong", wrong)
    extra = dict(items)
    k, v = items[0]
    extra[MetadataIndex("ghost.w", k.offset, 0)] = v
    extra[MetadataIndex(k.fqn, torch.Size([1] + list(k.offset)[1:]) if k.offset is not None else None, 0)] = v
    variant("extra_entries", extra)


def assert_same(a, b, where):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for key in a:
            assert_same(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for number, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}/{number}")
    else:
        assert a == b, where


def hf_state():
    g = torch.Generator().manual_seed(2)
    embed = torch.randn(16, 8, generator=g)
    return {
        "embed.weight": embed,
        "layers.0.attn.weight": torch.randn(8, 8, generator=g),
        "layers.0.attn.bias": torch.randn(8, generator=g),
        "layers.0.mlp.weight": torch.randn(32, 8, generator=g).to(torch.bfloat16),
        "layers.1.attn.weight": torch.randn(8, 8, generator=g),
        "layers.1.attn.bias": torch.randn(8, generator=g),
        "layers.1.mlp.weight": torch.randn(32, 8, generator=g).to(torch.bfloat16),
        "norm.weight": torch.ones(8),
        "norm.steps": torch.tensor([3], dtype=torch.int64),
        "lm_head.weight": embed,  # tied to embed.weight
    }


def load_sharded(directory, index_name, loader):
    with open(os.path.join(directory, index_name)) as f:
        index = json.load(f)
    merged = {}
    loaded = {}
    for name, file in index["weight_map"].items():
        if file not in loaded:
            loaded[file] = loader(os.path.join(directory, file))
        merged[name] = loaded[file][name]
    return merged


def write_sharded(out):
    from huggingface_hub import save_torch_state_dict, split_torch_state_dict_into_shards
    from safetensors.torch import load_file

    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    state = hf_state()
    torch.save(state, os.path.join(out, "source.pt"))

    st = os.path.join(out, "safetensors")
    os.makedirs(st)
    save_torch_state_dict(hf_state(), st, max_shard_size="1KB")
    torch.save(load_sharded(st, "model.safetensors.index.json", load_file), os.path.join(out, "safetensors.expected.pt"))

    binary = os.path.join(out, "bin")
    os.makedirs(binary)
    save_torch_state_dict(hf_state(), binary, max_shard_size="1KB", safe_serialization=False)
    torch.save(
        load_sharded(binary, "pytorch_model.bin.index.json", lambda p: torch.load(p, weights_only=True)),
        os.path.join(out, "bin.expected.pt"))

    splits = {}
    for size in ["100", "1KB", "2KB", "1.5KB", "5GB"]:
        limit = int(size) if size.isdigit() else size
        split = split_torch_state_dict_into_shards(state, max_shard_size=limit)
        splits[size] = {"filename_to_tensors": split.filename_to_tensors, "metadata": split.metadata,
                        "is_sharded": split.is_sharded}
    with open(os.path.join(out, "splits.json"), "w") as f:
        json.dump({"torch_version": torch.__version__, "splits": splits}, f, indent=1)
        f.write("\n")


def main():
    os.makedirs(DCP_OUT, exist_ok=True)
    # Relative paths: dcp.save records the checkpoint_id it was given in .metadata.
    os.chdir(DCP_OUT)
    write_dcp_single(".")
    write_dcp_two_ranks(".")
    write_hostile(".")
    write_storage_variants(".")
    write_sharded(SHARDED_OUT)
    print("wrote", DCP_OUT, "and", SHARDED_OUT)


if __name__ == "__main__":
    main()
