"""torch's own DCP conversions, for `make bench` (layout-bench runs this in the same session).

Usage: bench_dcp_torch.py MODEL.pt DIR
Runs, each in a child process of its own (its peak memory its own, python and torch included):
  torch_save_to_dcp(MODEL.pt, DIR/torch-dcp)        (one rank, as format_utils writes it)
  dcp_to_torch_save(DIR/torch-dcp, DIR/torch-whole.pt)
Prints one JSON object: {"torch": version, "<name>_s": seconds, "<name>_rss": peak RSS in bytes}.
DIR/torch-dcp is left for the caller, which converts the same checkpoint with ckpt.
"""
import json
import os
import subprocess
import sys

RUN = """
import resource, time, warnings, torch
warnings.simplefilter("ignore")
from torch.distributed.checkpoint.format_utils import dcp_to_torch_save, torch_save_to_dcp
start = time.perf_counter()
{call}
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""

model, directory = sys.argv[1], sys.argv[2]
import torch  # noqa: E402  (for the version only)

result = {"torch": torch.__version__}
dcp_dir = os.path.join(directory, "torch-dcp")
whole = os.path.join(directory, "torch-whole.pt")
for name, call in [
    ("torch_save_to_dcp", f"torch_save_to_dcp({model!r}, {dcp_dir!r})"),
    ("dcp_to_torch_save", f"dcp_to_torch_save({dcp_dir!r}, {whole!r})"),
]:
    out = subprocess.run([sys.executable, "-c", RUN.format(call=call)], check=True, capture_output=True, text=True)
    seconds, rss = out.stdout.strip().splitlines()[-1].split()
    result[name + "_s"] = float(seconds)
    result[name + "_rss"] = int(rss)
os.remove(whole)
print(json.dumps(result))
