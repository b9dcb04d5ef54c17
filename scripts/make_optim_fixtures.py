#!/usr/bin/env python3
"""Writes the Optim fixtures in Tests/Fixtures/optim/ from real torch (never from ckpt's output).

Each scenario is data both sides interpret: parameters (dtype, shape, exact bytes, optional name),
constructor options, groups, gradients per step (dense or sparse COO), option changes between steps,
state dicts to load. torch runs it and records what it produced: the error (type and message) or
the final state_dict, encoded exactly (floats and tensors as little-endian bytes in hex).

Run: ~/.cache/ckpt/venv-torch/bin/python scripts/make_optim_fixtures.py
"""
import json
import os
import struct
import sys
import warnings
from collections import Counter

import torch
import torch.optim.optimizer as torch_optimizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_machine  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "optim")
DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
          "bfloat16": torch.bfloat16, "complex64": torch.complex64, "complex128": torch.complex128,
          "int64": torch.int64}


def tensor_bytes(t):
    return t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes().hex()


def enc_tensor(t):
    return {"t": "tensor", "dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape), "hex": tensor_bytes(t)}


def enc(v):
    """A state tree as JSON, Python types kept (bool before int: bool is an int in Python)."""
    if isinstance(v, torch.Tensor):
        return enc_tensor(v)
    if isinstance(v, bool):
        return {"t": "bool", "v": v}
    if isinstance(v, int):
        return {"t": "int", "v": v}
    if isinstance(v, float):
        return {"t": "float", "hex": struct.pack("<d", v).hex()}
    if v is None:
        return {"t": "none"}
    if isinstance(v, str):
        return {"t": "str", "v": v}
    if isinstance(v, tuple):
        return {"t": "tuple", "items": [enc(x) for x in v]}
    if isinstance(v, list):
        return {"t": "list", "items": [enc(x) for x in v]}
    if isinstance(v, Counter):  # a dict subclass: MultiStepLR's milestones (make_scheduler_fixtures.py)
        return {"t": "counter", "items": [[k, c] for k, c in v.items()]}
    if isinstance(v, dict):
        return {"t": "dict", "items": [[{"int": k} if isinstance(k, int) else {"str": k}, enc(x)] for k, x in v.items()]}
    raise TypeError(type(v))


def make_tensor(spec):
    data = bytes.fromhex(spec["hex"])
    t = torch.frombuffer(bytearray(data), dtype=torch.uint8).view(DTYPES[spec["dtype"]]) if data else torch.empty(0, dtype=DTYPES[spec["dtype"]])
    return t.reshape(spec["shape"]).clone()


def random_spec(gen, dtype, shape, scale=1.0, zero_fraction=0.0):
    t = torch.randn(shape, generator=gen, dtype=torch.float64) * scale
    if zero_fraction:
        t[torch.rand(shape, generator=gen) < zero_fraction] = 0
    if DTYPES[dtype].is_complex:
        t = torch.complex(t, torch.randn(shape, generator=gen, dtype=torch.float64) * scale)
    return enc_tensor(t.to(DTYPES[dtype]))


def sparse_spec(gen, dtype, shape, sparse_dim, nnz, duplicates=0):
    """A sparse COO gradient: random positions (some repeated, in scattered order), random values."""
    cols = [torch.randint(0, shape[d], (nnz,), generator=gen) for d in range(sparse_dim)]
    idx = torch.stack(cols)
    if duplicates:
        # Repeat the first position `duplicates` times so coalescing has to add three or more values.
        idx = torch.cat([idx, idx[:, :1].repeat(1, duplicates)], dim=1)
    count = idx.shape[1]
    values = torch.randn([count] + list(shape[sparse_dim:]), generator=gen, dtype=torch.float64)
    values[0] = values[0] * 1e3  # magnitudes far apart make the order of additions visible
    return {"sparse": {"indices": idx.tolist(), "values": enc_tensor(values.to(DTYPES[dtype])), "shape": list(shape)}}


def make_grad(g):
    if g is None:
        return None
    if "sparse" in g:
        s = g["sparse"]
        return torch.sparse_coo_tensor(torch.tensor(s["indices"], dtype=torch.int64).reshape(len(s["indices"]), -1),
                                       make_tensor(s["values"]), s["shape"])
    return make_tensor(g["dense"])


def build(scn):
    params = [torch.nn.Parameter(make_tensor(p)) for p in scn["params"]]
    named = [p.get("name") for p in scn["params"]]

    def entry(i):
        return (named[i], params[i]) if named[i] is not None else params[i]

    kwargs = dict(scn.get("kwargs", {}))
    if "lr_tensor" in kwargs:
        kwargs["lr"] = make_tensor(kwargs.pop("lr_tensor"))
    if scn.get("groups") is None:
        target = [entry(i) for i in range(len(params))]
    else:
        target = []
        for g in scn["groups"]:
            d = dict(g.get("options", {}))
            d = {"params": [entry(i) for i in g["params"]], **d}
            target.append(d)
    optimizer = torch.optim.SGD if scn.get("optimizer") == "SGD" else torch.optim.Adagrad
    return params, optimizer(target, **kwargs)


def run(scn):
    """Runs a scenario; records warnings, an error, or the final state_dict."""
    out = dict(scn)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            params, opt = build(scn)
            for g in scn.get("add_groups", []):
                extra = [torch.nn.Parameter(make_tensor(p)) for p in g["new_params"]]
                params.extend(extra)
                names = [p.get("name") for p in g["new_params"]]
                opt.add_param_group({"params": [(n, p) if n is not None else p for n, p in zip(names, extra)]
                                     + [params[i] for i in g.get("existing", [])], **g.get("options", {})})
            if "load" in scn:
                opt.load_state_dict(scn["load_torch"]())
                out["after_load"] = enc(opt.state_dict())
            for step in scn.get("steps", []):
                for gi, key, value in step.get("set", []):
                    opt.param_groups[gi][key] = value
                for p, g in zip(params, step["grads"]):
                    p.grad = make_grad(g)
                opt.step()
            out["expected"] = enc(opt.state_dict())
            out["final_params"] = [enc_tensor(p) for p in params]
        except Exception as e:  # the scenario is about the error
            out["error"] = {"type": type(e).__name__, "message": str(e)}
    out["warnings"] = [str(w.message) for w in caught if "Sparse invariant" not in str(w.message)]
    out.pop("load_torch", None)
    # JSON has no NaN or infinity: such options travel as strings ("nan", "-inf").
    out["kwargs"] = {k: (repr(v) if isinstance(v, float) and v != v or v in (float("inf"), float("-inf")) else v)
                     for k, v in out.get("kwargs", {}).items()}
    # Option order matters (it is the state_dict's key order) and Swift's JSON reader loses
    # object order, so options travel as [key, value] pairs.
    for g in (out.get("groups") or []) + out.get("add_groups", []):
        g["options"] = [[k, v] for k, v in dict(g.get("options", {})).items()]
    return out


def p(gen, dtype="float32", shape=(3,), name=None):
    spec = random_spec(gen, dtype, list(shape))
    if name is not None:
        spec["name"] = name
    return spec


def dense_steps(gen, specs, count, every=None):
    steps = []
    for s in range(count):
        grads = []
        for i, spec in enumerate(specs):
            has = every is None or (s % every[i] == 0)
            grads.append({"dense": random_spec(gen, spec["dtype"], spec["shape"])} if has else None)
        steps.append({"grads": grads})
    return steps


def layouts(gen):
    """state_dict shapes, key orders and Python types for several configurations."""
    scns = []
    scns.append({"name": "defaults", "params": [p(gen), p(gen, shape=(2, 2))]})
    scns.append({"name": "named", "params": [p(gen, name="w"), p(gen, name="b")]})
    scns.append({"name": "all_options", "params": [p(gen)],
                 "kwargs": {"lr": 0.5, "lr_decay": 0.25, "weight_decay": 0.0, "initial_accumulator_value": 0.125,
                            "eps": 1e-8, "foreach": True, "maximize": True}})
    scns.append({"name": "fused", "params": [p(gen), p(gen, "float64")], "kwargs": {"fused": True}})
    scns.append({"name": "groups_override_in_given_order", "params": [p(gen), p(gen), p(gen)],
                 "groups": [{"params": [0], "options": {"eps": 1e-3, "initial_accumulator_value": 0.5}},
                            {"params": [1, 2], "options": {"lr": 0.5}}],
                 "kwargs": {"initial_accumulator_value": 0.25}})
    scns.append({"name": "named_group_with_option", "params": [p(gen, name="a"), p(gen, name="b")],
                 "groups": [{"params": [0, 1], "options": {"lr": 0.25}}]})
    scns.append({"name": "duplicate_in_group", "params": [p(gen), p(gen)], "groups": [{"params": [0, 1, 0]}]})
    scns.append({"name": "complex_params", "params": [p(gen, "complex64"), p(gen, "complex128")],
                 "kwargs": {"initial_accumulator_value": 0.5}})
    scns.append({"name": "half_params", "params": [p(gen, "float16"), p(gen, "bfloat16")],
                 "kwargs": {"initial_accumulator_value": 0.1}})
    scns.append({"name": "tensor_lr", "params": [p(gen)],
                 "kwargs": {"lr_tensor": enc_tensor(torch.tensor(0.25))}})
    # torch 2.15 creates the new parameter's state at its first step; ckpt creates it at once
    # (step 0, sum = initial_accumulator_value), so ckpt's dict has these ids in addition.
    scns.append({"name": "add_param_group", "params": [p(gen)], "fresh_state_ids": [1],
                 "add_groups": [{"new_params": [p(gen, shape=(2,))], "options": {"lr": 0.125}}]})
    return scns


def errors(gen):
    """Every construction-time and add_param_group error, with torch's type and message."""
    bad = [("lr", -1.0), ("lr", -1e-20), ("lr", float("nan")), ("lr", -float("inf")), ("lr_decay", -0.5),
           ("weight_decay", -1.0), ("initial_accumulator_value", -2.0), ("eps", -1e-10), ("eps", -1e16),
           ("lr", -123456789.0), ("lr", -1.5e-7)]
    scns = [{"name": f"invalid_{k}_{v!r}", "params": [p(gen)], "kwargs": {k: v}} for k, v in bad]
    # torch validates options before it looks at the parameters.
    scns.append({"name": "empty_parameter_list", "params": []})
    scns.append({"name": "empty_parameter_list_and_invalid_lr", "params": [], "kwargs": {"lr": -1.0}})
    scns.append({"name": "tensor_lr_two_elements", "params": [p(gen)],
                 "kwargs": {"lr_tensor": enc_tensor(torch.tensor([0.1, 0.2]))}})
    scns.append({"name": "tensor_lr_negative", "params": [p(gen)], "kwargs": {"lr_tensor": enc_tensor(torch.tensor(-1.0))}})
    scns.append({"name": "tensor_lr_negative_fraction", "params": [p(gen)],
                 "kwargs": {"lr_tensor": enc_tensor(torch.tensor(-0.5))}})
    scns.append({"name": "fused_and_foreach", "params": [p(gen)], "kwargs": {"fused": True, "foreach": True}})
    scns.append({"name": "fused_and_differentiable", "params": [p(gen)], "kwargs": {"fused": True, "differentiable": True}})
    scns.append({"name": "overlapping_groups", "params": [p(gen), p(gen)],
                 "groups": [{"params": [0]}, {"params": [1, 0]}]})
    scns.append({"name": "mixed_names_in_group", "params": [p(gen, name="a"), p(gen)]})
    scns.append({"name": "named_group_after_unnamed", "params": [p(gen)],
                 "add_groups": [{"new_params": [p(gen, name="x")]}]})
    scns.append({"name": "unnamed_group_after_named", "params": [p(gen, name="a")],
                 "add_groups": [{"new_params": [p(gen)]}]})
    scns.append({"name": "add_group_overlap", "params": [p(gen)], "add_groups": [{"new_params": [], "existing": [0]}]})
    scns.append({"name": "sparse_with_weight_decay", "params": [p(gen, shape=(5,))], "kwargs": {"weight_decay": 0.1},
                 "steps": [{"grads": [sparse_spec(gen, "float32", [5], 1, 2)]}]})
    scns.append({"name": "fused_sparse", "params": [p(gen, shape=(5,))], "kwargs": {"fused": True},
                 "steps": [{"grads": [sparse_spec(gen, "float32", [5], 1, 2)]}]})
    c = p(gen, "complex64")
    scns.append({"name": "fused_complex", "params": [c], "kwargs": {"fused": True},
                 "steps": [{"grads": [{"dense": random_spec(gen, "complex64", [3])}]}]})
    return scns


def sparse(gen):
    """Sparse-gradient trajectories (30 steps each)."""
    scns = []
    configs = [
        ("f32_1d", "float32", [12], 1, {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1}),
        ("f64_1d", "float64", [12], 1, {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1}),
        ("f32_1d_maximize", "float32", [12], 1, {"lr": 0.05, "maximize": True}),
        ("f32_2d_both_sparse", "float32", [4, 5], 2, {"lr": 0.2, "eps": 1e-6}),
        ("f32_hybrid", "float32", [6, 3], 1, {"lr": 0.3, "lr_decay": 0.1}),
        ("f64_hybrid", "float64", [6, 3], 1, {"lr": 0.3, "lr_decay": 0.1}),
        ("f16_1d", "float16", [12], 1, {"lr": 0.1, "initial_accumulator_value": 0.1}),
        ("bf16_1d", "bfloat16", [12], 1, {"lr": 0.1, "initial_accumulator_value": 0.1}),
        ("f16_hybrid_default_eps", "float16", [6, 3], 1, {"lr": 0.01}),
        ("bf16_hybrid", "bfloat16", [6, 3], 1, {"lr": 0.05, "lr_decay": 0.5}),
        ("f32_foreach", "float32", [12], 1, {"lr": 0.1, "foreach": True}),
        ("f32_tensor_lr", "float32", [12], 1, {"lr_tensor": enc_tensor(torch.tensor(0.3)), "lr_decay": 0.1}),
    ]
    for name, dtype, shape, sdim, kwargs in configs:
        param = p(gen, dtype, shape)
        steps = [{"grads": [sparse_spec(gen, dtype, shape, sdim, 5, duplicates=3 if s % 2 == 0 else 0)]} for s in range(30)]
        scns.append({"name": "sparse_" + name, "params": [param], "kwargs": kwargs, "steps": steps})
    # A dense and a sparse parameter of one dtype under foreach: torch sends the whole bucket to
    # the single-tensor path.
    a, b = p(gen, "float32", [12]), p(gen, "float32", [7])
    steps = [{"grads": [sparse_spec(gen, "float32", [12], 1, 4), {"dense": random_spec(gen, "float32", [7])}]} for _ in range(20)]
    scns.append({"name": "sparse_and_dense_foreach_bucket", "params": [a, b], "kwargs": {"foreach": True, "lr": 0.1}, "steps": steps})
    # A gradient value of exactly zero where sum is zero: 0/(sqrt(0)+eps) in float16 is 0/0.
    zero = {"sparse": {"indices": [[1, 3]], "values": enc_tensor(torch.tensor([0.0, 0.5], dtype=torch.float16)), "shape": [5]}}
    scns.append({"name": "sparse_f16_zero_over_zero", "params": [p(gen, "float16", [5])], "kwargs": {"lr": 0.1},
                 "steps": [{"grads": [zero]}] * 3})
    return scns


def semantics(gen):
    """Dense scenarios about behaviour, not rounding: skipped params, lr changed mid-run, groups."""
    scns = []
    specs = [p(gen), p(gen, shape=(2, 3)), p(gen, "float64", (4,))]
    scns.append({"name": "skipped_params_keep_their_step", "params": specs,
                 "groups": [{"params": [0, 1], "options": {"lr": 0.05}}, {"params": [2], "options": {"weight_decay": 0.1}}],
                 "kwargs": {"lr_decay": 0.05}, "steps": dense_steps(gen, specs, 12, every=[1, 2, 3])})
    steps = dense_steps(gen, specs, 10)
    for s in steps[5:]:
        s["set"] = [[0, "lr", 0.5]]
    scns.append({"name": "lr_changed_mid_run", "params": specs, "groups": [{"params": [0, 1]}, {"params": [2]}],
                 "steps": steps})
    tspecs = [p(gen, shape=(5,)), p(gen, shape=(2, 2))]
    for path in ("single", "foreach", "fused"):
        kwargs = {"lr_tensor": enc_tensor(torch.tensor(0.3)), "lr_decay": 0.1}
        if path != "single":
            kwargs[path] = True
        scns.append({"name": f"tensor_lr_{path}", "params": tspecs, "kwargs": kwargs, "steps": dense_steps(gen, tspecs, 8)})
    cspecs = [p(gen, "complex64", (4,)), p(gen, "complex128", (2, 2))]
    scns.append({"name": "complex_dense", "params": cspecs, "kwargs": {"lr": 0.1, "weight_decay": 0.01},
                 "steps": dense_steps(gen, cspecs, 10)})
    return scns


def loads(gen):
    """load_state_dict: a source optimizer's state_dict loaded into a target scenario."""
    scns = []

    def source(specs, kwargs=None, groups=None, steps=3, dtype_change=None, names=None):
        def make():
            scn = {"params": [dict(s) for s in specs], "kwargs": kwargs or {}, "groups": groups}
            if names:
                for s, n in zip(scn["params"], names):
                    s["name"] = n
            params, opt = build(scn)
            for _ in range(steps):
                for prm in params:
                    prm.grad = torch.ones_like(prm) * 0.5
                opt.step()
            sd = opt.state_dict()
            if dtype_change:
                for st in sd["state"].values():
                    st["sum"] = st["sum"].to(dtype_change)
                    st["step"] = st["step"].to(dtype_change)
            return sd
        return make

    f32 = [p(gen), p(gen, shape=(2,))]
    target = {"params": [p(gen), p(gen, shape=(2,))], "kwargs": {"lr": 0.5, "lr_decay": 0.125}}

    def add(name, src, extra=None, steps_after=2):
        scn = dict(target)
        scn.update(extra or {})
        scn["name"] = name
        scn["load_torch"] = src
        scn["load"] = enc(src())
        specs = scn["params"]
        scn["steps"] = dense_steps(gen, specs, steps_after)
        scns.append(scn)

    add("saved_options_win", source(f32, {"lr": 0.01, "eps": 1e-6, "maximize": True}))
    add("step_and_sum_kept_float64_step", source(f32, steps=2, dtype_change=torch.float64))
    add("fused_saved_casts_step_to_float32", source(f32, {"fused": True}, dtype_change=torch.float64))
    add("group_count_differs", source(f32, groups=[{"params": [0]}, {"params": [1]}]))
    add("group_size_differs", source([p(gen)]), {"params": [p(gen), p(gen)], "groups": [{"params": [0, 1]}]})
    add("names_saved_override_current", source(f32, names=["a", "b"]),
        {"params": [p(gen, name="x"), p(gen, shape=(2,), name="y")]})
    add("names_current_kept_when_saved_has_none", source(f32),
        {"params": [p(gen, name="x"), p(gen, shape=(2,), name="y")]})
    add("names_saved_into_unnamed", source(f32, names=["a", "b"]))
    add("half_param_gets_sum_cast", source(f32), {"params": [p(gen, "float16"), p(gen, "bfloat16", (2,))]})

    def drop_second():
        sd = source(f32)()
        del sd["state"][1]
        return sd
    # torch 2.15 creates the missing state lazily at the next step; ckpt creates it at load.
    add("missing_state_gets_fresh", drop_second, {"fresh_state_ids_after_load": [1]})

    def old_format():
        sd = source(f32)()
        for st in sd["state"].values():
            st["step"] = float(st["step"].item())
        for g in sd["param_groups"]:
            for k in ("foreach", "maximize", "differentiable", "fused"):
                g.pop(k)
        return sd
    add("old_checkpoint_numeric_step_and_missing_options", old_format)

    def extra_ids():
        sd = source(f32)()
        sd["state"][7] = {"note": torch.tensor([1.0, 2.0])}
        return sd
    add("unmatched_state_kept_under_its_key", extra_ids)
    return scns


def hooks():
    """The order torch runs hooks in, for one scripted program (mirrored in HookTests.swift)."""
    log = []
    prm = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.Adagrad([prm])
    handles = []
    handles.append(torch_optimizer.register_optimizer_step_pre_hook(lambda o, a, k: log.append("global_pre")))
    handles.append(torch_optimizer.register_optimizer_step_post_hook(lambda o, a, k: log.append("global_post")))
    opt.register_step_pre_hook(lambda o, a, k: log.append("pre1"))
    opt.register_step_pre_hook(lambda o, a, k: log.append("pre2"))
    opt.register_step_post_hook(lambda o, a, k: log.append("post1"))
    opt.register_step_post_hook(lambda o, a, k: log.append("post2"))

    def closure():
        log.append("closure")
        return 1.5
    prm.grad = torch.ones(2)
    loss = opt.step(closure)
    log.append(f"loss={loss}")
    for h in handles:
        h.remove()
    opt.register_state_dict_pre_hook(lambda o: log.append("sd_pre_a"))
    opt.register_state_dict_pre_hook(lambda o: log.append("sd_pre_b"), prepend=True)
    opt.register_state_dict_post_hook(lambda o, sd: log.append("sd_post_a"))
    opt.register_state_dict_post_hook(lambda o, sd: log.append("sd_post_b"), prepend=True)
    sd = opt.state_dict()
    opt.register_load_state_dict_pre_hook(lambda o, sd: log.append("load_pre_a"))
    opt.register_load_state_dict_pre_hook(lambda o, sd: log.append("load_pre_b"), prepend=True)
    opt.register_load_state_dict_post_hook(lambda o: log.append("load_post_a"))
    h = opt.register_load_state_dict_post_hook(lambda o: log.append("load_post_b"), prepend=True)
    opt.load_state_dict(sd)
    h.remove()
    opt.load_state_dict(sd)
    return {"log": log}


def conversions():
    """float64 values and what torch's .to(float32/float16/bfloat16) makes of them (bits), for the
    casts load_state_dict applies and the rounding of half-precision arithmetic."""
    specials = [0.0, -0.0, 1.0, -2.5, 0.1, 1e-10, 65504.0, 65519.99, 65520.0, 1e5, -1e5, 6.0e-8, 5.960464477539063e-08,
                2.98023223876953125e-08, 2.98023223876953126e-08, 1.0000000596046448, 1.00048828125, 1.000732421875,
                3.4e38, 1e39, 1e-45, 1.401298464324817e-45, 9.183549615799121e-41, float("inf"), float("-inf"),
                # doubles just above a float32 tie: float64 -> float32 -> float16 rounds twice
                1.0004882812500002, 2049.0000000001, 1.00390625, 1.0039062500000002]
    gen = torch.Generator().manual_seed(99)
    randoms = (torch.randn(200, generator=gen, dtype=torch.float64) * torch.exp(torch.randn(200, generator=gen, dtype=torch.float64) * 8)).tolist()
    source = torch.tensor(specials + randoms, dtype=torch.float64)
    return {"float64_hex": tensor_bytes(source),
            "float32_hex": tensor_bytes(source.to(torch.float32)),
            "float16_hex": tensor_bytes(source.to(torch.float16)),
            "bfloat16_hex": tensor_bytes(source.to(torch.bfloat16)),
            "float16_from_float32_hex": tensor_bytes(source.to(torch.float32).to(torch.float16)),
            "bfloat16_from_float32_hex": tensor_bytes(source.to(torch.float32).to(torch.bfloat16))}


# Their results depend on torch.sqrt's kernel (MKL's, chosen by CPU vendor and instruction set), so
# they carry the machine's facts and other machines' results live in machines/<machine>/.
def sgd_layouts(gen):
    """SGD's state_dict: lazy momentum buffers, key orders and Python types."""
    def scn(name, params, kwargs=None, steps=2, **extra):
        specs = params
        return {"name": name, "optimizer": "SGD", "params": specs, "kwargs": kwargs or {},
                "steps": extra.pop("steps_spec", None) or dense_steps(gen, specs, steps), **extra}
    scns = [
        scn("defaults_keep_no_state", [p(gen), p(gen, shape=(2, 2))]),
        scn("momentum_buffers", [p(gen), p(gen, shape=(2, 2))], {"lr": 0.1, "momentum": 0.9}),
        scn("all_options_foreach", [p(gen), p(gen, "float64")],
            {"lr": 0.5, "momentum": 0.25, "dampening": 0.125, "weight_decay": 0.0625, "foreach": True, "maximize": True}),
        scn("nesterov_fused", [p(gen), p(gen, "float64")], {"lr": 0.1, "momentum": 0.9, "nesterov": True, "fused": True}),
        scn("named", [p(gen, name="w"), p(gen, name="b")], {"momentum": 0.5}),
        scn("tensor_lr", [p(gen)], {"lr_tensor": enc_tensor(torch.tensor(0.25)), "momentum": 0.5}),
        scn("half_and_complex", [p(gen, "float16"), p(gen, "bfloat16"), p(gen, "complex64"), p(gen, "complex128")],
            {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}),
    ]
    three = [p(gen), p(gen), p(gen)]
    scns.append(scn("groups_override_and_param_without_grad", three, {"momentum": 0.9},
                    groups=[{"params": [0], "options": {"momentum": 0.5}}, {"params": [1, 2], "options": {"lr": 0.5}}],
                    steps_spec=dense_steps(gen, three, 3, every=[1, 1, 5])))
    two = [p(gen), p(gen)]
    steps = dense_steps(gen, two, 4)
    steps[2]["set"] = [[0, "momentum", 0.0]]  # buffers stay, unused and unchanged
    scns.append(scn("momentum_switched_off", two, {"lr": 0.1, "momentum": 0.9}, steps_spec=steps))
    scns.append(scn("add_param_group_later", [p(gen)], {"momentum": 0.9},
                    add_groups=[{"new_params": [p(gen, shape=(2,))], "options": {"lr": 0.125}}],
                    steps_spec=[{"grads": [{"dense": random_spec(gen, "float32", [3])},
                                           {"dense": random_spec(gen, "float32", [2])}]}]))
    return scns


def sgd_errors(gen):
    """SGD's construction and step errors, with torch's type and message; and what it accepts."""
    bad = [("lr", -1.0), ("lr", -1e-20), ("lr", -float("inf")), ("lr", float("nan")), ("momentum", -0.5),
           ("weight_decay", -1.0), ("dampening", -1.0)]
    scns = [{"name": f"{k}_{v!r}", "optimizer": "SGD", "params": [p(gen)], "kwargs": {k: v}} for k, v in bad]

    def add(name, params, kwargs=None, **extra):
        scns.append({"name": name, "optimizer": "SGD", "params": params, "kwargs": kwargs or {}, **extra})
    add("nesterov_without_momentum", [p(gen)], {"nesterov": True})
    add("nesterov_with_dampening", [p(gen)], {"nesterov": True, "momentum": 0.9, "dampening": 0.1})
    add("empty_parameter_list", [])
    # Options and Nesterov are checked before the parameter list.
    add("empty_parameter_list_and_nesterov", [], {"nesterov": True})
    add("empty_parameter_list_and_negative_momentum", [], {"momentum": -1.0})
    add("tensor_lr_two_elements", [p(gen)], {"lr_tensor": enc_tensor(torch.tensor([0.1, 0.2]))})
    add("tensor_lr_negative", [p(gen)], {"lr_tensor": enc_tensor(torch.tensor(-1.0))})
    add("fused_and_foreach", [p(gen)], {"fused": True, "foreach": True})
    add("fused_and_differentiable", [p(gen)], {"fused": True, "differentiable": True})
    add("sparse_with_weight_decay", [p(gen, shape=(5,))], {"weight_decay": 0.1},
        steps=[{"grads": [sparse_spec(gen, "float32", [5], 1, 2)]}])
    add("fused_sparse", [p(gen, shape=(5,))], {"fused": True}, steps=[{"grads": [sparse_spec(gen, "float32", [5], 1, 2)]}])
    add("fused_complex", [p(gen, "complex64")], {"fused": True},
        steps=[{"grads": [{"dense": random_spec(gen, "complex64", [3])}]}])
    two = [p(gen), p(gen)]
    add("fused_buffers_for_some_params_only", two, {"fused": True, "momentum": 0.9},
        steps=[{"grads": [{"dense": random_spec(gen, "float32", [3])}, None]},
               {"grads": [{"dense": random_spec(gen, "float32", [3])}, {"dense": random_spec(gen, "float32", [3])}]}])
    return scns


def sgd_loads(gen):
    """SGD load_state_dict: torch's dict loaded into a target SGD that then steps on."""
    scns = []
    f32 = [p(gen), p(gen, shape=(2,))]

    def source(kwargs, steps=3, transform=None):
        def make():
            params, opt = build({"optimizer": "SGD", "params": [dict(s) for s in f32], "kwargs": kwargs})
            for _ in range(steps):
                for prm in params:
                    prm.grad = torch.ones_like(prm) * 0.5
                opt.step()
            sd = opt.state_dict()
            return transform(sd) if transform else sd
        return make

    def add(name, src, kwargs, params=None):
        target = {"name": name, "optimizer": "SGD", "params": params or [p(gen), p(gen, shape=(2,))], "kwargs": kwargs}
        target["load_torch"] = src
        target["load"] = enc(src())
        target["steps"] = dense_steps(gen, target["params"], 2)
        scns.append(target)

    add("buffers_and_saved_options_win", source({"lr": 0.01, "momentum": 0.9, "nesterov": True}), {"lr": 0.5, "momentum": 0.1})
    add("no_buffers_saved_then_momentum", source({"lr": 0.01}), {"lr": 0.5, "momentum": 0.9})
    add("fused_source", source({"lr": 0.01, "momentum": 0.9, "fused": True}), {"momentum": 0.9})
    add("half_params_get_buffers_cast", source({"lr": 0.01, "momentum": 0.9}), {"momentum": 0.9},
        params=[p(gen, "float16"), p(gen, "bfloat16", (2,))])

    def old_format(sd):
        # torch before 2.0 kept `momentum_buffer: None` without momentum, and groups without the
        # options SGD gained later.
        for g in sd["param_groups"]:
            for k in ("nesterov", "maximize", "foreach", "differentiable", "fused"):
                g.pop(k)
        for i in range(2):
            sd["state"][i] = {"momentum_buffer": None}
        return sd
    add("old_checkpoint_none_buffers_and_missing_options", source({"lr": 0.01}, transform=old_format), {"momentum": 0.9})
    return scns


MACHINE_DEPENDENT = ("sparse", "semantics")


def main():
    variant = "--machine-variant" in sys.argv
    out = torch_machine.variant_directory(OUT, os.environ) if variant else OUT
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(1234)
    groups = {"layouts": layouts(gen), "errors": errors(gen), "sparse": sparse(gen), "semantics": semantics(gen),
              "loads": loads(gen)}
    # SGD's scenarios draw from their own generator, so Adagrad's stay as they were.
    sgd_gen = torch.Generator().manual_seed(4321)
    groups.update({"sgd_layouts": sgd_layouts(sgd_gen), "sgd_errors": sgd_errors(sgd_gen), "sgd_loads": sgd_loads(sgd_gen)})
    for name, scns in groups.items():
        if variant and name not in MACHINE_DEPENDENT:
            continue
        content = {"torch": torch.__version__, "scenarios": [run(s) for s in scns]}
        if name in MACHINE_DEPENDENT:
            content["machine"] = torch_machine.facts()
        with open(os.path.join(out, f"{name}.json"), "w") as f:
            json.dump(content, f, indent=None, separators=(",", ":"))
    if variant:
        print(f"wrote {out}")
        return
    with open(os.path.join(OUT, "conversions.json"), "w") as f:
        json.dump({"torch": torch.__version__, **conversions()}, f)
    with open(os.path.join(OUT, "hooks.json"), "w") as f:
        json.dump({"torch": torch.__version__, **hooks()}, f, indent=1)
    # A torch.save'd state dict, to load through Checkpoint, with its exact content as a sidecar.
    scn = {"params": [p(gen, name="layer.weight", shape=(2, 3)), p(gen, name="layer.bias", shape=(3,))],
           "kwargs": {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1}}
    params, opt = build(scn)
    for _ in range(4):
        for prm in params:
            prm.grad = torch.randn(prm.shape, generator=gen)
        opt.step()
    torch.save(opt.state_dict(), os.path.join(OUT, "adagrad_named.pt"))
    with open(os.path.join(OUT, "adagrad_named.json"), "w") as f:
        json.dump({"torch": torch.__version__, "state_dict": enc(opt.state_dict())}, f)


if __name__ == "__main__":
    main()
