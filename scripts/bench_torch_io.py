"""torch.save / torch.load baseline for `make bench` (ckpt-bench runs this in the same session).

Usage: bench_torch_io.py DIR TOTAL_BYTES TENSORS REPEATS
Prints one JSON object: best-of-REPEATS seconds for torch.save (no fsync, as torch.save does) and
torch.load (every byte materialized in memory), for a float32 state_dict of TENSORS equal tensors.
"""
import json
import os
import sys
import time

import torch

directory, total, count, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
per = total // count // 4
state = {f"layer{i}.weight": torch.full((per,), float(i), dtype=torch.float32) for i in range(count)}
path = os.path.join(directory, "torch-baseline.pt")
save, load = [], []
for _ in range(repeats):
    os.sync()  # as ckpt-bench does: each save starts with no dirty pages from the previous one
    start = time.perf_counter()
    torch.save(state, path)
    save.append(time.perf_counter() - start)
    start = time.perf_counter()
    loaded = torch.load(path, weights_only=True)
    load.append(time.perf_counter() - start)
    del loaded
os.remove(path)
print(json.dumps({"bytes": per * 4 * count, "save_s": min(save), "load_s": min(load), "torch": torch.__version__}))
