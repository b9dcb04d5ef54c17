#!/usr/bin/env python3
"""Writes TorchScript archives (torch.jit.save) with real torch, and what torch reads from them.

Usage: python scripts/make_torchscript_fixtures.py Tests/Fixtures
Writes Tests/Fixtures/torchscript/NAME.pt and NAME.expected.json:

  "state_dict":  torch.jit.load(f).state_dict(), in order: [{"key", "dtype", "shape", "hex"}]
  "eager_keys":  the eager model's state_dict() keys (a non-persistent buffer is not among them)
  "modules":     {module path: the class torch.jit.load gives it (its `original_name`)}
  "constants":   the archive's constants.pkl tensors: [{"dtype", "shape", "hex"}]
  "attributes":  {module path/attribute: value} for a few plain attributes

Re-running it writes the same bytes. The eager classes are importable from this file (`from make_torchscript_fixtures import Scripted`),
so a test can build the same model and load_state_dict what ckpt converted.
"""

import json
import os
import sys

import torch


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)
        self.register_buffer("steps", torch.arange(4, dtype=torch.int64))

    def forward(self, x):
        return self.lin(x) + self.steps.sum()


class Scripted(torch.nn.Module):
    """Parameters before and after submodules, a frozen one, BatchNorm's int64 buffer, a Sequential,
    and attributes that are not state: a plain tensor, an int, a str."""

    def __init__(self):
        super().__init__()
        self.block = Block()
        self.scale = torch.nn.Parameter(torch.ones(2))
        self.norm = torch.nn.BatchNorm1d(2)
        self.frozen = torch.nn.Parameter(torch.full((2,), 0.5), requires_grad=False)
        self.head = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))
        self.offset = torch.tensor([5.0, 6.0])  # an attribute, not a buffer
        self.depth = 3
        self.tag = "demo"

    def forward(self, x):
        y = self.norm(self.block(x)) * self.scale + self.frozen + self.offset
        return self.head(y) * self.depth


class Traced(torch.nn.Module):
    """Traced: a tensor made in forward becomes a constant; a non-persistent buffer."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)
        self.register_buffer("mask", torch.tensor([1.0, 0.0]), persistent=False)
        self.register_buffer("shift", torch.tensor([0.25, -0.25]))

    def forward(self, x):
        return self.lin(x) * self.mask + self.shift + torch.tensor([1.0, 2.0])


def tensor_fields(tensor):
    tensor = tensor.detach()
    return {"dtype": str(tensor.dtype).removeprefix("torch."), "shape": list(tensor.shape),
            "hex": tensor.contiguous().view(-1).view(torch.uint8).numpy().tobytes().hex()}


def describe(path, eager):
    loaded = torch.jit.load(path)
    modules = {name: module.original_name for name, module in loaded.named_modules()}
    return {
        "note": "made by scripts/make_torchscript_fixtures.py",
        "torch_version": torch.__version__,
        "state_dict": [{"key": key, **tensor_fields(value)} for key, value in loaded.state_dict().items()],
        "eager_keys": list(eager.state_dict()),
        "modules": modules,
    }


def main():
    if os.environ.get("PYTHONHASHSEED") != "0":
        # TorchScript writes some class constants in set order, which depends on the hash seed.
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable] + sys.argv)
    if len(sys.argv) != 2:
        sys.exit("usage: make_torchscript_fixtures.py FIXTURES_DIR")
    directory = os.path.join(sys.argv[1], "torchscript")
    os.makedirs(directory, exist_ok=True)

    torch.manual_seed(21)
    scripted = Scripted()
    scripted.norm(torch.randn(4, 2))  # running statistics and num_batches_tracked move
    path = os.path.join(directory, "scripted.pt")
    torch.jit.save(torch.jit.script(scripted), path)
    document = describe(path, scripted)
    document["constants"] = []
    document["attributes"] = {"depth": 3, "tag": "demo", "offset": tensor_fields(scripted.offset)}
    write(directory, "scripted", document)

    torch.manual_seed(22)
    traced = Traced()
    path = os.path.join(directory, "traced.pt")
    torch.jit.save(torch.jit.trace(traced, torch.randn(1, 3)), path)
    document = describe(path, traced)
    document["constants"] = [tensor_fields(torch.tensor([1.0, 2.0]))]
    document["attributes"] = {}
    write(directory, "traced", document)
    print(f"wrote TorchScript fixtures to {directory}")


def write(directory, name, document):
    with open(os.path.join(directory, f"{name}.expected.json"), "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
