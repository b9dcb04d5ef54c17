#!/usr/bin/env python3
"""A DCP checkpoint as N ranks save it, made by torch's own dcp.save machinery in one process.

Usage: make_dcp_ranks.py MODEL.pt OUT_DIR [RANKS]   (RANKS defaults to 64)

Each tensor of MODEL.pt (a flat dict) becomes a DTensor sharded Shard(0) over RANKS ranks; other
values are saved once. The ranks are simulated in turn with torch's "fake" process group (no
communication): each rank's DefaultSavePlanner and FileSystemWriter make and write its local plan,
and rank 0's planner makes the global plan and its FileSystemWriter commits `.metadata`, the steps
torch.distributed.checkpoint.save takes through its _DistWrapper. The files are what RANKS real
processes would write.
"""
import sys
import warnings

import torch
import torch.distributed as dist
from torch.distributed.checkpoint import DefaultSavePlanner, FileSystemWriter
from torch.distributed.tensor import DTensor, Shard, init_device_mesh
from torch.testing._internal.distributed.fake_pg import FakeStore

warnings.simplefilter("ignore")
model, out = sys.argv[1], sys.argv[2]
ranks = int(sys.argv[3]) if len(sys.argv) > 3 else 64
source = torch.load(model, weights_only=True)


def rank_state(rank, mesh):
    state = {}
    for name, value in source.items():
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] >= ranks:
            local = value.chunk(ranks)[rank].clone()
            state[name] = DTensor.from_local(local, mesh, [Shard(0)], shape=value.shape, stride=value.stride())
        else:
            state[name] = value
    return state


planners, writers, plans = [], [], []
for rank in range(ranks):
    dist.init_process_group("fake", store=FakeStore(), rank=rank, world_size=ranks)
    mesh = init_device_mesh("cpu", (ranks,))
    planner = DefaultSavePlanner()
    planner.set_up_planner(rank_state(rank, mesh), is_coordinator=rank == 0)
    writer = FileSystemWriter(out, sync_files=False)
    writer.set_up_storage_writer(rank == 0)
    plans.append(writer.prepare_local_plan(planner.create_local_plan()))
    planners.append(planner)
    writers.append(writer)
    dist.destroy_process_group()

global_plans, metadata = planners[0].create_global_plan(plans)
global_plans = writers[0].prepare_global_plan(global_plans)
results = []
for rank in range(ranks):
    plan = planners[rank].finish_plan(global_plans[rank])
    future = writers[rank].write_data(plan, planners[rank])
    future.wait()
    results.append(future.value())
writers[0].finish(metadata, results)
