#!/usr/bin/env python3
"""Writes the rename fixtures in Tests/Fixtures/rename/ from real torch (never from ckpt's output).

Model v1 (encoder, two attention layers, an auxiliary head, fc, batch norm) trains a few Adagrad
steps in torch over named parameters in two groups, so the optimizer's state dict carries
`param_names`; `v1.pt` is `torch.save({"model": ..., "optimizer": ...})`. Model v2 renames
(fc -> head, encoder -> model.encoder, layers.N.attn -> blocks.N.attention), reorders (head first),
removes (aux) and adds (extra) layers, with another group layout. `map.json` is the rename map
ckpt reads. Here the same mapping is applied BY HAND (an explicit dict, no regular expressions):
v2's weights come from v1's, and v2's optimizer gets v1's state for each surviving parameter
through a hand-built state dict; torch then continues a few steps on v2 with recorded gradients.
`expected.json` records torch's state of every v2 parameter after the load and after the steps.

Run: ~/.cache/ckpt/venv-torch/bin/python scripts/make_rename_fixtures.py [--machine-variant]
Check a renamed file (used by the CLI tests): ... make_rename_fixtures.py --check-renamed OUT.pt
"""
import copy
import json
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_machine  # noqa: E402
from make_optim_fixtures import enc, enc_tensor  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "rename")
INITIAL_ACCUMULATOR = 0.1
TRAIN_STEPS = 3
CONTINUE_STEPS = 4

MAP = {"rules": [
    {"exact": "fc.weight", "to": "head.weight"},
    {"exact": "fc.bias", "to": "head.bias"},
    {"prefix": "encoder.", "to": "model.encoder."},
    {"regex": "layers\\.(\\d+)\\.attn\\.(weight|bias)", "to": "blocks.$1.attention.$2"},
    {"drop": "aux\\..*"},
]}

# The same mapping written out by hand: v2 name -> v1 name, for every surviving key.
V2_FROM_V1 = {
    "head.weight": "fc.weight", "head.bias": "fc.bias",
    "blocks.0.attention.weight": "layers.0.attn.weight", "blocks.0.attention.bias": "layers.0.attn.bias",
    "blocks.1.attention.weight": "layers.1.attn.weight", "blocks.1.attention.bias": "layers.1.attn.bias",
    "model.encoder.0.weight": "encoder.0.weight", "model.encoder.0.bias": "encoder.0.bias",
    "model.encoder.2.weight": "encoder.2.weight", "model.encoder.2.bias": "encoder.2.bias",
    "bn.weight": "bn.weight", "bn.bias": "bn.bias",
    "bn.running_mean": "bn.running_mean", "bn.running_var": "bn.running_var",
    "bn.num_batches_tracked": "bn.num_batches_tracked",
}


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.Linear(6, 6)


class Attention2(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = nn.Linear(6, 6)


class V1(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 6))
        self.layers = nn.ModuleList([Attention(), Attention()])
        self.aux = nn.Linear(6, 2)
        self.bn = nn.BatchNorm1d(6)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        h = self.encoder(x)
        for layer in self.layers:
            h = torch.tanh(layer.attn(h)) + h
        h = self.bn(h)
        return self.fc(h), self.aux(h)


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 6))


class V2(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(6, 3)
        self.blocks = nn.ModuleList([Attention2(), Attention2()])
        self.model = Encoder()
        self.bn = nn.BatchNorm1d(6)
        self.extra = nn.Linear(3, 3)


def v1_groups(model):
    named = dict(model.named_parameters())
    first = [n for n in named if n.startswith(("encoder.", "layers."))]
    second = [n for n in named if n not in first]
    return [
        {"params": [(n, named[n]) for n in first], "lr": 0.1, "lr_decay": 0.01},
        {"params": [(n, named[n]) for n in second], "lr": 0.05, "weight_decay": 0.01},
    ]


# v2's layout: group 0 holds head, bn, extra; group 1 blocks and the encoder.
V2_GROUP_NAMES = [
    ["head.weight", "head.bias", "bn.weight", "bn.bias", "extra.weight", "extra.bias"],
    ["blocks.0.attention.weight", "blocks.0.attention.bias", "blocks.1.attention.weight", "blocks.1.attention.bias",
     "model.encoder.0.weight", "model.encoder.0.bias", "model.encoder.2.weight", "model.encoder.2.bias"],
]
V2_GROUP_OPTIONS = [{"lr": 0.02}, {"lr": 0.03, "lr_decay": 0.5}]
# By hand: v2's group 0 matched parameters all come from v1's group 1, group 1's from v1's group 0,
# so each v2 group loads those saved options (ckpt picks the saved group holding most of them).
V2_GROUP_SOURCE = [1, 0]


def train_v1():
    torch.manual_seed(1489)
    model = V1()
    opt = torch.optim.Adagrad(v1_groups(model), lr=0.1, initial_accumulator_value=INITIAL_ACCUMULATOR)
    for _ in range(TRAIN_STEPS):
        x = torch.randn(8, 4)
        out, aux = model(x)
        loss = out.pow(2).mean() + aux.abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, opt


def v2_from_v1(model1, opt1):
    torch.manual_seed(134107)
    model2 = V2()
    sd1 = model1.state_dict()
    renamed = {new: sd1[old] for new, old in V2_FROM_V1.items()}
    result = model2.load_state_dict(renamed, strict=False)
    named = dict(model2.named_parameters())
    groups = [dict(V2_GROUP_OPTIONS[i], params=[(n, named[n]) for n in names]) for i, names in enumerate(V2_GROUP_NAMES)]
    opt2 = torch.optim.Adagrad(groups, lr=0.1, initial_accumulator_value=INITIAL_ACCUMULATOR)

    saved = opt1.state_dict()
    saved_id = {}
    for group in saved["param_groups"]:
        for pid, name in zip(group["params"], group["param_names"]):
            saved_id[name] = pid
    fresh = opt2.state_dict()
    state = {}
    packed_groups = []
    next_id = 0
    for index, names in enumerate(V2_GROUP_NAMES):
        ids = []
        for name in names:
            ids.append(next_id)
            old = V2_FROM_V1.get(name)
            state[next_id] = copy.deepcopy(saved["state"][saved_id[old]] if old else fresh["state"][next_id])
            next_id += 1
        options = {k: copy.deepcopy(v) for k, v in saved["param_groups"][V2_GROUP_SOURCE[index]].items() if k not in ("params",)}
        options["param_names"] = list(names)
        options["params"] = ids
        packed_groups.append(options)
    opt2.load_state_dict({"state": state, "param_groups": packed_groups})
    return model2, opt2, result


def per_param(model, opt):
    names = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for p, s in opt.state.items():
        out[names[id(p)]] = enc(dict(s))
    return out


def group_options(opt):
    return [enc({k: v for k, v in g.items() if k != "params"}) for g in opt.param_groups]


def main(variant=False):
    # v1's training and v2's steps round as torch on this machine does (MKL's sqrt): other machines'
    # v1.pt and expected.json live in machines/<machine>/, beside the shared map.json.
    out = torch_machine.variant_directory(OUT, os.environ) if variant else OUT
    os.makedirs(out, exist_ok=True)
    model1, opt1 = train_v1()
    torch.save({"model": model1.state_dict(), "optimizer": opt1.state_dict()}, os.path.join(out, "v1.pt"))
    if not variant:
        with open(os.path.join(OUT, "map.json"), "w") as f:
            json.dump(MAP, f, indent=2)
            f.write("\n")

    model2, opt2, load_result = v2_from_v1(model1, opt1)
    named2 = dict(model2.named_parameters())
    initial = [{"name": n, "tensor": enc_tensor(named2[n].detach())} for names in V2_GROUP_NAMES for n in names]
    after_load = per_param(model2, opt2)
    after_load_groups = group_options(opt2)

    gen = torch.Generator().manual_seed(2026)
    steps = []
    for step in range(CONTINUE_STEPS):
        grads = {}
        for names in V2_GROUP_NAMES:
            for n in names:
                if n == "extra.bias" and step == 1:
                    grads[n] = None  # a parameter without a gradient is skipped, its step untouched
                    continue
                grads[n] = torch.randn(named2[n].shape, generator=gen, dtype=named2[n].dtype)
        for n, p in named2.items():
            p.grad = grads[n]
        opt2.step()
        steps.append({n: (enc_tensor(g) if g is not None else None) for n, g in grads.items()})

    v1_saved = opt1.state_dict()
    v1_meta = list(model1.state_dict()._metadata.keys())
    v2_meta = list(model2.state_dict()._metadata.keys())
    expected = {
        "torch": torch.__version__,
        "machine": torch_machine.facts(),
        "initial_accumulator_value": INITIAL_ACCUMULATOR,
        "v1_param_names": [g["param_names"] for g in v1_saved["param_groups"]],
        "v1_model_keys": list(model1.state_dict().keys()),
        "v2_model_keys": list(model2.state_dict().keys()),
        "v2_from_v1": V2_FROM_V1,
        "v1_metadata_prefixes": v1_meta,
        "v2_metadata_prefixes": v2_meta,
        "torch_load_missing_keys": list(load_result.missing_keys),
        "torch_load_unexpected_keys": list(load_result.unexpected_keys),
        "groups": [{"names": names, "options": opts} for names, opts in zip(V2_GROUP_NAMES, V2_GROUP_OPTIONS)],
        "initial_params": initial,
        "after_load": after_load,
        "after_load_groups": after_load_groups,
        "steps": steps,
        "final_state": per_param(model2, opt2),
        "final_params": {n: enc_tensor(p.detach()) for n, p in named2.items()},
    }
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)
    print(f"wrote {out}: v1.pt, map.json, expected.json ({len(after_load)} parameters, {CONTINUE_STEPS} steps)")


def check_renamed(path):
    """Exit 0 when torch loads a file `ckpt-tool rename` wrote and it carries v2's names."""
    tree = torch.load(path, weights_only=True)
    model2 = V2()
    result = model2.load_state_dict(tree["model"], strict=False)
    names = [n for g in tree["optimizer"]["param_groups"] for n in g["param_names"]]
    problems = []
    if list(result.unexpected_keys):
        problems.append(f"unexpected model keys {result.unexpected_keys}")
    if sorted(result.missing_keys) != ["extra.bias", "extra.weight"]:
        problems.append(f"missing model keys {result.missing_keys}")
    if sorted(names) != sorted(n for n in V2_FROM_V1 if n in dict(model2.named_parameters())):
        problems.append(f"param_names {names}")
    meta = set(tree["model"]._metadata.keys())
    if not meta <= set(model2.state_dict()._metadata.keys()):
        problems.append(f"_metadata prefixes {sorted(meta)}")
    print("; ".join(problems) if problems else "ok")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check-renamed":
        check_renamed(sys.argv[2])
    else:
        main(variant="--machine-variant" in sys.argv)
