#!/usr/bin/env python3
"""Writes Tests/Fixtures/devices/: torch.save files whose storages were saved on mps and cuda.

Usage: ~/.cache/ckpt/venv-torch/bin/python scripts/make_device_fixtures.py [Tests/Fixtures/devices]

This machine has neither device, so each file is saved on the CPU with torch's
`torch.serialization.location_tag` (the function whose result torch.save writes into every
storage's persistent id, `('storage', type, key, location, numel)`) answering "mps" or "cuda:0" for
chosen storages. The result is byte for byte what torch.save writes on such a machine: the
location string in data.pkl is the only thing that differs, and zip layout, alignment and CRCs are
torch's own. (Rewriting 'cpu' in a saved data.pkl would do too, with the pickle string's length
fixed for 'cuda:0', but then the zip would have to be rebuilt without torch's alignment.)

Files:
  on_mps.pt    a model state_dict (fc1, fc2) whose every storage is on "mps"
  mixed.pt     {"model": state_dict, "step": 3}: fc1.weight and fc2.weight on "cuda:0", the rest on "cpu"
  expected.json {NAME: {"locations": {key path: location}, "devices": [distinct locations, in the
               order the pickle first names them], "parameters": total numel,
               "load_error": what torch.load(f) without map_location raises here (type and first line),
               "loads_with_map_location_cpu": torch.load(f, map_location="cpu", weights_only=True) works}}

Each file is checked here: torch.load without map_location must refuse it (this machine lacks the
device) and torch.load(f, map_location="cpu") must read back the saved values.
"""

import collections
import json
import os
import sys

import torch

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "devices")
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(11)


def save_on(obj, path, device_of):
    """torch.save(obj, path), each storage's location tag chosen by device_of(storage data_ptr)."""
    original = torch.serialization.location_tag

    def tag(storage):
        return device_of(storage.data_ptr()) or original(storage)

    torch.serialization.location_tag = tag
    try:
        torch.save(obj, path)
    finally:
        torch.serialization.location_tag = original


def flatten(tree, prefix=""):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from flatten(value, f"{prefix}{key}/")
    elif isinstance(tree, torch.Tensor):
        yield prefix.rstrip("/"), tree


def describe(path, obj, location_of):
    try:
        torch.load(path, weights_only=True)
        raise SystemExit(f"{path}: torch.load without map_location loaded it; the fixture proves nothing")
    except RuntimeError as error:
        load_error = f"{type(error).__name__}: {str(error).splitlines()[0]}"
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    locations, devices, parameters = {}, [], 0
    for (key, tensor), (_, back) in zip(flatten(obj), flatten(loaded)):
        assert torch.equal(tensor, back), key
        location = location_of(tensor)
        locations[key] = location
        if location not in devices:
            devices.append(location)
        parameters += tensor.numel()
    return {"locations": locations, "devices": devices, "parameters": parameters,
            "load_error": load_error, "loads_with_map_location_cpu": True}


model = torch.nn.Sequential(collections.OrderedDict(
    fc1=torch.nn.Linear(4, 3), fc2=torch.nn.Linear(3, 2))).state_dict()
expected = {}

path = os.path.join(OUT, "on_mps.pt")
save_on(model, path, lambda pointer: "mps")
expected["on_mps.pt"] = describe(path, dict(model), lambda tensor: "mps")

on_cuda = {model["fc1.weight"].data_ptr(), model["fc2.weight"].data_ptr()}
path = os.path.join(OUT, "mixed.pt")
mixed = {"model": model, "step": 3}
save_on(mixed, path, lambda pointer: "cuda:0" if pointer in on_cuda else None)
expected["mixed.pt"] = describe(
    path, {"model": dict(model)}, lambda tensor: "cuda:0" if tensor.data_ptr() in on_cuda else "cpu")

with open(os.path.join(OUT, "expected.json"), "w") as handle:
    json.dump(expected, handle, indent=1, sort_keys=True)
    handle.write("\n")
print(json.dumps(expected, indent=1))
