#!/usr/bin/env python3
"""Writes the learning-rate scheduler fixtures in Tests/Fixtures/schedulers/ from real torch.

Every scenario is data both sides interpret: the optimizer (kind, one learning rate per group, and
torch's `defaults` for it, which ckpt's test optimizer copies),
the scheduler (torch's class name and keyword arguments; functions by name, from LAMBDAS below,
which ckpt's tests define again), and the operations: a plain `step()`, `step(epoch)` (torch's
closed forms), or `step(metric)` for ReduceLROnPlateau. torch runs it and records each group's
learning rate after construction and after every operation (and the momentum, or beta1, when the
scheduler cycles it), as little-endian float64 bytes in base64, so equality is bit for bit, and
the final `state_dict()` with Python types kept.

Some scenarios are also saved at several steps k: `states/<name>.pt`, written by torch.save, maps
`"at_<k>"` to `{"scheduler": sched.state_dict(), "optimizer": opt.state_dict()}`. The script loads
each state into fresh torch objects built in the documented order
(scheduler first, then its state, then the optimizer's) and checks that torch continues on
exactly the recorded learning rates; the continuation is the recorded sequence after step k.

`errors.json` holds what torch raises for invalid arguments and failing steps (exception type and
message), and where `load_state_dict` puts keys it does not know.

`page/` holds the example of torch's `Optimizer.load_state_dict` docs (SGD lr=3e-4, LinearLR then
CosineAnnealingLR in a SequentialLR with milestones [20]) on a tiny fixed model: `save_seq.pt`,
`save_optim.pt` and `save_model.pt` saved after 50 steps, and `page.json` with the gradients of
every step, torch's 100-step continuation (learning rates and parameters after every step) and
what torch does when the optimizer's state is loaded before the schedulers are built.

`resume/` holds training runs checkpointed as torch users write them (RESUME_RUNS): a small
nn.Sequential trained RESUME_STEPS steps on fixed gradients with SGD (momentum, weight decay) under
one scheduler (`"scheduler"`) or two stepped together (`"schedulers"`, a list). `<name>.pt` holds
the initial weights, the gradients of every step and the parameters after every step (one tensor
per parameter, stacked over the steps), and the learning rate after construction and after every
step; `<name>_at_<k>.pt` is
`torch.save({"model": ..., "optimizer": ..., "scheduler(s)": ..., "epoch": k})` after step k. The
script resumes each file in fresh torch objects (model, optimizer, schedulers, their states, then
the optimizer's) and checks that torch continues on exactly the recorded rates and parameters.

Run: ~/.cache/ckpt/venv-torch/bin/python scripts/make_scheduler_fixtures.py
"""
import base64
import json
import math
import os
import random
import shutil
import struct
import sys
import warnings

import torch
from torch.optim import lr_scheduler as L

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_optim_fixtures import enc  # noqa: E402 - a state tree as JSON, Python types kept

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "schedulers")
STEPS = 320

# Functions a scheduler takes, by name. ckpt's tests define the same ones (SchedulerFixtures.swift).
LAMBDAS = {
    "pow095": lambda e: 0.95 ** e,
    "warmup10": lambda e: min(1.0, (e + 1) / 10),
    "div30": lambda e: e // 30,
    "const095": lambda e: 0.95,
    "alternate": lambda e: 0.9 if e % 2 else 1.05,
    "inverse": lambda x: 1 / (1.0 + 0.01 * x),
    "halfpow": lambda x: 0.5 ** x,
}


def f64(values):
    return base64.b64encode(struct.pack(f"<{len(values)}d", *values)).decode()


def sequence(values):
    """A float sequence, exact: its runs' values as float64 bytes in base64, and the run lengths
    when some value repeats (a step schedule holds its lr for many steps)."""
    runs = []
    for v in values:
        if runs and struct.pack("<d", runs[-1][0]) == struct.pack("<d", v):
            runs[-1][1] += 1
        else:
            runs.append([v, 1])
    out = {"values": f64([v for v, _ in runs])}
    if len(runs) != len(values):
        out["runs"] = [n for _, n in runs]
    return out


def make_optimizer(spec):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for lr in spec["lrs"]]
    if spec["kind"] == "sgd":
        return torch.optim.SGD(groups, lr=spec["lrs"][0], momentum=spec.get("momentum", 0))
    if spec["kind"] == "adam":
        return torch.optim.Adam(groups, lr=spec["lrs"][0])
    if spec["kind"] == "adagrad":
        return torch.optim.Adagrad(groups, lr=spec["lrs"][0])
    raise ValueError(spec["kind"])


def build(spec, opt):
    """The scheduler `spec` describes, on `opt`."""
    kind, args = spec["type"], dict(spec.get("args", {}))
    for key in ("lr_lambda", "scale_fn"):
        if key in args:
            names = args[key]
            args[key] = [LAMBDAS[n] for n in names] if isinstance(names, list) else LAMBDAS[names]
    if kind == "SequentialLR":
        return L.SequentialLR(opt, [build(s, opt) for s in spec["schedulers"]], milestones=spec["milestones"])
    if kind == "ChainedScheduler":
        return L.ChainedScheduler([build(s, opt) for s in spec["schedulers"]], optimizer=opt)
    return getattr(L, kind)(opt, **args)


def apply(sched, op):
    if op is None:
        sched.step()
    elif "epoch" in op:
        sched.step(op["epoch"])
    else:
        sched.step(op["metric"])


def encode_ops(ops):
    """`{"plain": n}` for n plain steps, `{"metrics": sequence}` for ReduceLROnPlateau's steps,
    `{"float_epochs": sequence}` for fractional epochs, or `{"epochs": [...]}` with null for a plain
    step, an int epoch, or `{"f": hex}` for a float one."""
    if all(op is None for op in ops):
        return {"plain": len(ops)}
    if all(op is not None and "metric" in op for op in ops):
        return {"metrics": sequence([op["metric"] for op in ops])}
    if all(op is not None and isinstance(op.get("epoch"), float) for op in ops):
        return {"float_epochs": sequence([op["epoch"] for op in ops])}

    def one(op):
        if op is None:
            return None
        if isinstance(op["epoch"], float):
            return {"f": struct.pack("<d", op["epoch"]).hex()}
        return op["epoch"]
    return {"epochs": [one(op) for op in ops]}


def cycles_momentum(spec):
    return spec["type"] in ("CyclicLR", "OneCycleLR") and spec.get("args", {}).get("cycle_momentum", True)


def momentum_of(group):
    return group["betas"][0] if "betas" in group else group["momentum"]


def run(scn, ops):
    """Builds and runs a scenario; returns (opt, sched, lrs per group, momenta per group, error)."""
    opt = make_optimizer(scn["optimizer"])
    sched = build(scn["scheduler"], opt)
    lrs = [[g["lr"]] for g in opt.param_groups]
    momenta = [[momentum_of(g)] for g in opt.param_groups]
    error = None
    for op in ops:
        opt.step()
        try:
            apply(sched, op)
        except ValueError as e:
            error = str(e)
            break
        assert sched.get_last_lr() == [g["lr"] for g in opt.param_groups]
        for i, g in enumerate(opt.param_groups):
            lrs[i].append(g["lr"])
            momenta[i].append(momentum_of(g))
    return opt, sched, lrs, momenta, error


def scenario(name, optimizer, scheduler, ops=None, save_at=()):
    return {"name": name, "optimizer": optimizer, "scheduler": scheduler,
            "ops": ops if ops is not None else [None] * STEPS, "save_at": list(save_at)}


def sgd(*lrs, momentum=0):
    return {"kind": "sgd", "lrs": list(lrs), "momentum": momentum}


def adam(*lrs):
    return {"kind": "adam", "lrs": list(lrs)}


def sched(kind, **args):
    return {"type": kind, "args": args}


def plateau_metrics(seed, n):
    """A loss that improves in bursts and stalls in between, so patience, cooldown and min_lr all act."""
    rng = random.Random(seed)
    value, out = 1.0, []
    for t in range(n):
        if (t // 40) % 2 == 0:
            value *= 0.97
        out.append(value * (1 + 0.002 * rng.random()))
    return out


def epochs(*ops):
    return [None if op is None else {"epoch": op} for op in ops]


def closed_form_ops():
    """Plain steps, then jumps (forward, back, repeated) through `step(epoch)`, then plain steps again."""
    jumps = [12, 13, 40, 40, 7, 100, 99, 150, 0, 250]
    ops = [None] * 5
    for j in jumps:
        ops += epochs(j) + [None] * 6
    return ops + [None] * (STEPS - len(ops))


def scenarios():
    s = []
    # LambdaLR and MultiplicativeLR: functions from LAMBDAS, one for all groups or one per group.
    s.append(scenario("lambda_pow", sgd(0.1), sched("LambdaLR", lr_lambda="pow095"), save_at=(0, 57, 211)))
    s.append(scenario("lambda_two_groups", sgd(0.1, 0.02), sched("LambdaLR", lr_lambda=["warmup10", "div30"])))
    s.append(scenario("lambda_epochs", sgd(0.1), sched("LambdaLR", lr_lambda="warmup10"), ops=closed_form_ops()))
    s.append(scenario("multiplicative_const", sgd(0.1), sched("MultiplicativeLR", lr_lambda="const095"), save_at=(0, 57, 211)))
    s.append(scenario("multiplicative_two_groups", sgd(0.1, 0.5), sched("MultiplicativeLR", lr_lambda=["alternate", "const095"])))
    s.append(scenario("multiplicative_epochs", sgd(0.1), sched("MultiplicativeLR", lr_lambda="alternate"), ops=closed_form_ops()))
    # StepLR, MultiStepLR.
    s.append(scenario("step_30", sgd(0.1), sched("StepLR", step_size=30, gamma=0.1), save_at=(0, 57, 211)))
    s.append(scenario("step_7_two_groups", sgd(0.1, 0.02), sched("StepLR", step_size=7, gamma=0.5)))
    s.append(scenario("step_epochs", sgd(0.1), sched("StepLR", step_size=30, gamma=0.1), ops=closed_form_ops()))
    s.append(scenario("multistep", sgd(0.1), sched("MultiStepLR", milestones=[30, 80, 80, 200], gamma=0.1), save_at=(0, 57, 211)))
    s.append(scenario("multistep_unsorted", sgd(0.1, 1.0), sched("MultiStepLR", milestones=[150, 5], gamma=0.3)))
    s.append(scenario("multistep_epochs", sgd(0.1), sched("MultiStepLR", milestones=[30, 80, 80, 200], gamma=0.1), ops=closed_form_ops()))
    # ConstantLR, LinearLR.
    s.append(scenario("constant_default", sgd(0.1), sched("ConstantLR"), save_at=(0, 3, 211)))
    s.append(scenario("constant_half_100", sgd(0.1, 0.3), sched("ConstantLR", factor=0.5, total_iters=100)))
    s.append(scenario("constant_epochs", sgd(0.1), sched("ConstantLR", factor=0.25, total_iters=20), ops=closed_form_ops()))
    s.append(scenario("linear_default", sgd(0.1), sched("LinearLR")))
    s.append(scenario("linear_warmup", sgd(3e-4), sched("LinearLR", start_factor=0.1, end_factor=1, total_iters=20), save_at=(0, 12, 211)))
    s.append(scenario("linear_decay_to_zero", sgd(0.1), sched("LinearLR", start_factor=1.0, end_factor=0.0, total_iters=300)))
    s.append(scenario("linear_quarter", sgd(0.1, 0.7), sched("LinearLR", start_factor=0.25, end_factor=0.75, total_iters=123)))
    s.append(scenario("linear_epochs", sgd(0.1), sched("LinearLR", start_factor=0.1, end_factor=0.9, total_iters=120), ops=closed_form_ops()))
    # ExponentialLR, PolynomialLR.
    s.append(scenario("exponential_099", sgd(0.1), sched("ExponentialLR", gamma=0.99), save_at=(0, 57, 211)))
    s.append(scenario("exponential_09_two_groups", sgd(0.1, 2.0), sched("ExponentialLR", gamma=0.9)))
    s.append(scenario("exponential_epochs", sgd(0.1), sched("ExponentialLR", gamma=0.98), ops=closed_form_ops()))
    s.append(scenario("polynomial_linear", sgd(0.1), sched("PolynomialLR", total_iters=100, power=1.0), save_at=(0, 57, 211)))
    s.append(scenario("polynomial_square", sgd(0.1), sched("PolynomialLR", total_iters=250, power=2.0)))
    s.append(scenario("polynomial_sqrt", sgd(0.1, 0.05), sched("PolynomialLR", total_iters=50, power=0.5)))
    s.append(scenario("polynomial_epochs", sgd(0.1), sched("PolynomialLR", total_iters=200, power=3.0), ops=closed_form_ops()))
    # CosineAnnealingLR: T_max < 320 so the schedule goes back up through the period branch.
    s.append(scenario("cosine_80", sgd(3e-4), sched("CosineAnnealingLR", T_max=80, eta_min=3e-5), save_at=(0, 57, 211)))
    s.append(scenario("cosine_50_zero", sgd(0.1), sched("CosineAnnealingLR", T_max=50)))
    s.append(scenario("cosine_100_two_groups", sgd(0.1, 0.01), sched("CosineAnnealingLR", T_max=100, eta_min=0.001)))
    s.append(scenario("cosine_epochs", sgd(0.1), sched("CosineAnnealingLR", T_max=70, eta_min=1e-3), ops=closed_form_ops()))
    # CosineAnnealingWarmRestarts: restarts every T_0 (T_mult 1) or after growing periods.
    s.append(scenario("warm_restarts_10", sgd(0.1), sched("CosineAnnealingWarmRestarts", T_0=10), save_at=(0, 57, 211)))
    s.append(scenario("warm_restarts_10x2", sgd(0.1, 0.4), sched("CosineAnnealingWarmRestarts", T_0=10, T_mult=2, eta_min=1e-4), save_at=(0, 57, 211)))
    s.append(scenario("warm_restarts_7x3", sgd(0.1), sched("CosineAnnealingWarmRestarts", T_0=7, T_mult=3, eta_min=0.001)))
    fractional = [{"epoch": e + i / 7} for e in range(46) for i in range(7)]
    s.append(scenario("warm_restarts_fractional", sgd(0.1), sched("CosineAnnealingWarmRestarts", T_0=10, T_mult=2, eta_min=1e-4), ops=fractional[:STEPS]))
    s.append(scenario("warm_restarts_fractional_t1", sgd(0.1), sched("CosineAnnealingWarmRestarts", T_0=6), ops=fractional[:STEPS], save_at=(0, 57, 211)))
    s.append(scenario("warm_restarts_epochs", sgd(0.1), sched("CosineAnnealingWarmRestarts", T_0=5, T_mult=2), ops=closed_form_ops()))
    # CyclicLR: the three modes, custom scale functions in both scale modes, momentum and beta1.
    s.append(scenario("cyclic_triangular", sgd(0.1, momentum=0.9), sched("CyclicLR", base_lr=0.001, max_lr=0.1, step_size_up=20), save_at=(0, 57, 211)))
    s.append(scenario("cyclic_triangular2", sgd(0.1, momentum=0.9), sched("CyclicLR", base_lr=0.001, max_lr=0.1, step_size_up=15, step_size_down=25, mode="triangular2")))
    s.append(scenario("cyclic_exp_range", sgd(0.1, momentum=0.9), sched("CyclicLR", base_lr=0.001, max_lr=0.1, step_size_up=10, mode="exp_range", gamma=0.99), save_at=(0, 57, 211)))
    s.append(scenario("cyclic_custom_cycle", sgd(0.1, 0.1), sched("CyclicLR", base_lr=[0.001, 0.002], max_lr=[0.1, 0.05], step_size_up=12, scale_fn="halfpow", cycle_momentum=False)))
    s.append(scenario("cyclic_custom_iterations", sgd(0.1, momentum=0.9), sched("CyclicLR", base_lr=0.001, max_lr=0.1, step_size_up=9, step_size_down=3, scale_fn="inverse", scale_mode="iterations", base_momentum=0.7, max_momentum=0.95)))
    s.append(scenario("cyclic_adam_beta1", adam(0.1), sched("CyclicLR", base_lr=0.001, max_lr=0.01, step_size_up=25, mode="triangular2"), save_at=(0, 57, 211)))
    s.append(scenario("cyclic_epochs", sgd(0.1, momentum=0.9), sched("CyclicLR", base_lr=0.001, max_lr=0.1, step_size_up=20), ops=closed_form_ops()))
    # OneCycleLR: both anneal strategies, two and three phases, momentum and beta1; the step past
    # total_steps raises.
    s.append(scenario("one_cycle_cos", sgd(0.1, momentum=0.9), sched("OneCycleLR", max_lr=0.1, total_steps=STEPS), ops=[None] * (STEPS + 1), save_at=(0, 57, 211)))
    s.append(scenario("one_cycle_linear", sgd(0.1, momentum=0.9), sched("OneCycleLR", max_lr=0.1, total_steps=STEPS, anneal_strategy="linear"), save_at=(0, 57, 211)))
    s.append(scenario("one_cycle_three_phase_cos", sgd(0.1, momentum=0.9), sched("OneCycleLR", max_lr=0.05, total_steps=STEPS, three_phase=True, pct_start=0.25)))
    s.append(scenario("one_cycle_three_phase_linear", sgd(0.1, momentum=0.9), sched("OneCycleLR", max_lr=0.05, epochs=10, steps_per_epoch=32, three_phase=True, anneal_strategy="linear", div_factor=10.0, final_div_factor=100.0)))
    s.append(scenario("one_cycle_adam_groups", adam(0.1, 0.1), sched("OneCycleLR", max_lr=[0.1, 0.01], total_steps=STEPS, pct_start=0.4, base_momentum=[0.8, 0.85], max_momentum=0.95)))
    s.append(scenario("one_cycle_no_momentum", sgd(0.1), sched("OneCycleLR", max_lr=0.1, total_steps=STEPS, cycle_momentum=False)))
    # ReduceLROnPlateau on a fixed metric sequence.
    metrics = [{"metric": m} for m in plateau_metrics(7, STEPS)]
    s.append(scenario("plateau_default", sgd(0.1), sched("ReduceLROnPlateau"), ops=metrics, save_at=(0, 57, 211)))
    s.append(scenario("plateau_cooldown_min_lrs", sgd(0.1, 0.05), sched("ReduceLROnPlateau", factor=0.5, patience=3, cooldown=5, min_lr=[1e-3, 2e-3]), ops=metrics, save_at=(0, 57, 211)))
    s.append(scenario("plateau_abs", sgd(0.1), sched("ReduceLROnPlateau", threshold=1e-3, threshold_mode="abs", patience=2, eps=1e-4), ops=metrics))
    up = [{"metric": -m["metric"]} for m in metrics]
    s.append(scenario("plateau_max_rel", sgd(0.1), sched("ReduceLROnPlateau", mode="max", factor=0.3, patience=4), ops=up))
    s.append(scenario("plateau_max_abs", sgd(0.1), sched("ReduceLROnPlateau", mode="max", threshold_mode="abs", threshold=1e-4, patience=1, cooldown=2, min_lr=1e-3), ops=up))
    # SequentialLR and ChainedScheduler, nested both ways.
    s.append(scenario("sequential_page", sgd(3e-4), {"type": "SequentialLR", "milestones": [20], "schedulers": [
        sched("LinearLR", start_factor=0.1, end_factor=1, total_iters=20), sched("CosineAnnealingLR", T_max=80, eta_min=3e-5)]},
        save_at=(0, 19, 20, 57, 211)))
    s.append(scenario("sequential_three", sgd(0.1), {"type": "SequentialLR", "milestones": [10, 100], "schedulers": [
        sched("ConstantLR", factor=0.1, total_iters=10), sched("ExponentialLR", gamma=0.98), sched("StepLR", step_size=25, gamma=0.5)]},
        save_at=(0, 57, 211)))
    s.append(scenario("sequential_lambda_multistep", sgd(0.1, 0.2), {"type": "SequentialLR", "milestones": [15], "schedulers": [
        sched("LambdaLR", lr_lambda="warmup10"), sched("MultiStepLR", milestones=[30, 60], gamma=0.5)]}))
    # A ChainedScheduler can only come first: at a milestone torch calls `_update_lr(0)` on the next
    # scheduler, which ChainedScheduler does not implement (NotImplementedError).
    s.append(scenario("sequential_of_chained", sgd(0.1), {"type": "SequentialLR", "milestones": [100], "schedulers": [
        {"type": "ChainedScheduler", "schedulers": [sched("CosineAnnealingLR", T_max=40), sched("ExponentialLR", gamma=0.995)]},
        sched("ExponentialLR", gamma=0.97)]},
        save_at=(0, 57, 211)))
    s.append(scenario("chained_constant_exponential", sgd(0.1), {"type": "ChainedScheduler", "schedulers": [
        sched("ConstantLR", factor=0.1, total_iters=2), sched("ExponentialLR", gamma=0.9)]}, save_at=(0, 57, 211)))
    s.append(scenario("chained_of_sequential", sgd(0.1), {"type": "ChainedScheduler", "schedulers": [
        {"type": "SequentialLR", "milestones": [5], "schedulers": [sched("ConstantLR", factor=0.5, total_iters=5), sched("StepLR", step_size=30, gamma=0.5)]},
        sched("CosineAnnealingWarmRestarts", T_0=25)]}, save_at=(0, 57, 211)))
    return s


def record(scn, states_dir):
    opt, sch, lrs, momenta, error = run(scn, scn["ops"])
    out = {"name": scn["name"], "optimizer": scn["optimizer"], "defaults": enc(make_optimizer(scn["optimizer"]).defaults),
           "scheduler": scn["scheduler"], "ops": encode_ops(scn["ops"]),
           "lrs": [sequence(g) for g in lrs], "final_state": enc(sch.state_dict()),
           "optimizer_groups": enc([{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups])}
    if cycles_momentum(scn["scheduler"]):
        out["momenta"] = [sequence(g) for g in momenta]
    if error is not None:
        out["error"] = error
    if scn["save_at"]:
        saved = {}
        for k in scn["save_at"]:
            opt_k, sch_k, _, _, _ = run(scn, scn["ops"][:k])
            saved[f"at_{k}"] = {"scheduler": sch_k.state_dict(), "optimizer": opt_k.state_dict()}
        path = os.path.join(states_dir, f"{scn['name']}.pt")
        torch.save(saved, path)
        for k in scn["save_at"]:
            check_continuation(scn, torch.load(path, weights_only=True)[f"at_{k}"], k, lrs, error)
    out["save_at"] = scn["save_at"]
    return out


def resume(scn, saved):
    """Fresh torch objects in the documented order, then the saved states: the resume under test."""
    opt = make_optimizer(scn["optimizer"])
    sch = build(scn["scheduler"], opt)
    sch.load_state_dict(saved["scheduler"])
    opt.load_state_dict(saved["optimizer"])
    return opt, sch


def check_continuation(scn, saved, k, lrs, error):
    opt, sch = resume(scn, saved)
    for step, op in enumerate(scn["ops"][k:], start=k + 1):
        try:
            apply(sch, op)
        except ValueError as e:
            assert str(e) == error, (scn["name"], k, str(e))
            return
        for i, g in enumerate(opt.param_groups):
            assert g["lr"] == lrs[i][step] or (math.isnan(g["lr"]) and math.isnan(lrs[i][step])), (scn["name"], k, step)


def page_example(directory):
    """The docs example, saved after 50 steps and continued 100, in the right and the wrong order."""
    os.makedirs(directory, exist_ok=True)
    torch.manual_seed(20)
    model = torch.nn.Linear(3, 2)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(1234)
    grads = [[torch.randn(p.shape, generator=gen) for p in model.parameters()] for _ in range(150)]

    def build_page(opt):
        s1 = L.LinearLR(opt, start_factor=0.1, end_factor=1, total_iters=20)
        s2 = L.CosineAnnealingLR(opt, T_max=80, eta_min=3e-5)
        return L.SequentialLR(opt, schedulers=[s1, s2], milestones=[20])

    def train(model, opt, sch, steps):
        lrs, params = [], []
        for step in steps:
            for p, g in zip(model.parameters(), grads[step]):
                p.grad = g.clone()
            opt.step()
            sch.step()
            lrs.append(opt.param_groups[0]["lr"])
            params.append([p.detach().clone() for p in model.parameters()])
        return lrs, params

    optimizer = torch.optim.SGD(model.parameters(), lr=3e-4)
    lr = build_page(optimizer)
    before_lrs, _ = train(model, optimizer, lr, range(50))
    torch.save(lr.state_dict(), os.path.join(directory, "save_seq.pt"))
    torch.save(optimizer.state_dict(), os.path.join(directory, "save_optim.pt"))
    torch.save(model.state_dict(), os.path.join(directory, "save_model.pt"))
    reference_lrs, reference_params = train(model, optimizer, lr, range(50, 150))

    def fresh_model():
        m = torch.nn.Linear(3, 2)
        m.load_state_dict(torch.load(os.path.join(directory, "save_model.pt"), weights_only=True))
        return m

    # The docs' order: schedulers, then the scheduler's state, then the optimizer's.
    model = fresh_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=3e-4)
    lr = build_page(optimizer)
    lr.load_state_dict(torch.load(os.path.join(directory, "save_seq.pt"), weights_only=True))
    optimizer.load_state_dict(torch.load(os.path.join(directory, "save_optim.pt"), weights_only=True))
    right_lrs, right_params = train(model, optimizer, lr, range(50, 150))
    assert right_lrs == reference_lrs
    assert all(torch.equal(a, b) for x, y in zip(right_params, reference_params) for a, b in zip(x, y))

    # The wrong order: the optimizer's state first; each constructor then changes what was loaded.
    model = fresh_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=3e-4)
    optimizer.load_state_dict(torch.load(os.path.join(directory, "save_optim.pt"), weights_only=True))
    stages = []

    def stage(name):
        g = optimizer.param_groups[0]
        stages.append({"after": name, "lr": struct.pack("<d", g["lr"]).hex(),
                       "initial_lr": struct.pack("<d", g["initial_lr"]).hex()})

    stage("optimizer.load_state_dict")
    s1 = L.LinearLR(optimizer, start_factor=0.1, end_factor=1, total_iters=20)
    stage("LinearLR")
    s2 = L.CosineAnnealingLR(optimizer, T_max=80, eta_min=3e-5)
    stage("CosineAnnealingLR")
    lr = L.SequentialLR(optimizer, schedulers=[s1, s2], milestones=[20])
    stage("SequentialLR")
    lr.load_state_dict(torch.load(os.path.join(directory, "save_seq.pt"), weights_only=True))
    stage("lr.load_state_dict")
    wrong_lrs, wrong_params = train(model, optimizer, lr, range(50, 150))
    assert wrong_lrs != reference_lrs

    def tensor_hex(t):
        return t.contiguous().view(-1).view(torch.uint8).numpy().tobytes().hex()

    def params_json(ps):
        return [[{"shape": list(p.shape), "hex": tensor_hex(p)} for p in step] for step in ps]

    page = {
        "torch": torch.__version__,
        "initial_params": [{"name": k, "shape": list(v.shape), "hex": tensor_hex(v)} for k, v in initial.items()],
        "grads": [[{"shape": list(g.shape), "hex": tensor_hex(g)} for g in step] for step in grads],
        "saved_after": 50,
        "lrs_before_save": sequence(before_lrs),
        "continuation_lrs": sequence(reference_lrs),
        "continuation_params": params_json(reference_params),
        "wrong_order_stages": stages,
        "wrong_order_lrs": sequence(wrong_lrs),
    }
    with open(os.path.join(directory, "page.json"), "w") as f:
        json.dump(page, f, separators=(",", ":"))
        f.write("\n")


RESUME_STEPS = 60

# name: (the key the schedulers are saved under, the steps after which the run is saved)
RESUME_RUNS = {
    # warmup then cosine, as the docs' example; saved before, at and after the milestone
    "sequential": ("scheduler", (5, 10, 37)),
    # two schedulers stepped one after the other every step, saved as a list
    "two_schedulers": ("schedulers", (23,)),
}


def resume_model():
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


def resume_objects(name, model):
    """The optimizer and schedulers of run `name`, built as its trainer builds them."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    if name == "sequential":
        warmup = L.LinearLR(opt, start_factor=0.1, total_iters=10)
        cosine = L.CosineAnnealingLR(opt, T_max=50, eta_min=1e-3)
        return opt, [L.SequentialLR(opt, schedulers=[warmup, cosine], milestones=[10])]
    return opt, [L.LinearLR(opt, start_factor=0.25, total_iters=8), L.ExponentialLR(opt, gamma=0.97)]


def resume_train(model, opt, schedulers, grads, steps):
    """Steps with the recorded gradients; the rate and the parameters after each."""
    lrs, params = [], []
    for step in steps:
        for p, g in zip(model.parameters(), grads[step]):
            p.grad = g.clone()
        opt.step()
        for s in schedulers:
            s.step()
        lrs.append(opt.param_groups[0]["lr"])
        params.append([p.detach().clone() for p in model.parameters()])
    return lrs, params


def resume_checkpoint(key, model, opt, schedulers, epoch):
    """What a torch user saves: model, optimizer, scheduler (or a list of them), epoch."""
    saved = {"model": model.state_dict(), "optimizer": opt.state_dict()}
    saved[key] = schedulers[0].state_dict() if key == "scheduler" else [s.state_dict() for s in schedulers]
    saved["epoch"] = epoch
    return saved


def resume_from(name, key, saved):
    """Fresh torch objects restored from a checkpoint in the documented order; the resume under test."""
    model = resume_model()
    model.load_state_dict(saved["model"])
    opt, schedulers = resume_objects(name, model)
    states = [saved["scheduler"]] if key == "scheduler" else saved["schedulers"]
    assert len(states) == len(schedulers)
    for s, state in zip(schedulers, states):
        s.load_state_dict(state)
    opt.load_state_dict(saved["optimizer"])
    return model, opt, schedulers


def same_bits(lrs, params, expected_lrs, expected_params):
    return (all(struct.pack("<d", a) == struct.pack("<d", b) for a, b in zip(lrs, expected_lrs, strict=True))
            and all(torch.equal(a, b) for x, y in zip(params, expected_params, strict=True) for a, b in zip(x, y, strict=True)))


def resume_runs(directory):
    os.makedirs(directory, exist_ok=True)
    for name, (key, save_at) in RESUME_RUNS.items():
        torch.manual_seed(12)
        model = resume_model()
        initial = {k: v.clone() for k, v in model.state_dict().items()}
        gen = torch.Generator().manual_seed(99)
        grads = [[torch.randn(p.shape, generator=gen) for p in model.parameters()] for _ in range(RESUME_STEPS)]
        opt, schedulers = resume_objects(name, model)
        lrs, params = [opt.param_groups[0]["lr"]], []
        for start, end in zip((0,) + save_at, save_at + (RESUME_STEPS,)):
            if start:
                torch.save(resume_checkpoint(key, model, opt, schedulers, start), os.path.join(directory, f"{name}_at_{start}.pt"))
            more_lrs, more_params = resume_train(model, opt, schedulers, grads, range(start, end))
            lrs += more_lrs
            params += more_params
        # One tensor per parameter, stacked over the steps: a few storages instead of hundreds.
        # SGD's float32 bits depend on the machine only through ATen fusing multiply-adds (AVX2 or
        # AVX-512 capability), which ckpt's SGD reproduces on any CPU; the tests need to know.
        torch.save({"initial": initial, "grads": [torch.stack(g) for g in zip(*grads)], "lrs": lrs,
                    "params": [torch.stack(p) for p in zip(*params)], "save_at": list(save_at), "key": key,
                    "aten_capability": torch.backends.cpu.get_cpu_capability()},
                   os.path.join(directory, f"{name}.pt"))
        for k in save_at:
            saved = torch.load(os.path.join(directory, f"{name}_at_{k}.pt"), weights_only=True)
            model, opt, schedulers = resume_from(name, key, saved)
            assert opt.param_groups[0]["lr"] == lrs[k], (name, k)
            more_lrs, more_params = resume_train(model, opt, schedulers, grads, range(k, RESUME_STEPS))
            assert same_bits(more_lrs, more_params, lrs[k + 1:], params[k:]), (name, k)


def error_cases():
    """Invalid arguments and failing steps, each as torch reports it."""
    lam = sched("LambdaLR", lr_lambda=["pow095", "pow095"])
    plateau = sched("ReduceLROnPlateau")
    return [
        ("constant_factor", sgd(0.1), sched("ConstantLR", factor=2.0), []),
        ("linear_start", sgd(0.1), sched("LinearLR", start_factor=0.0), []),
        ("linear_end", sgd(0.1), sched("LinearLR", end_factor=1.5), []),
        ("warm_restarts_t0", sgd(0.1), sched("CosineAnnealingWarmRestarts", T_0=0), []),
        ("warm_restarts_tmult", sgd(0.1), sched("CosineAnnealingWarmRestarts", T_0=5, T_mult=0), []),
        ("warm_restarts_negative_epoch", sgd(0.1), sched("CosineAnnealingWarmRestarts", T_0=5), [{"epoch": -1}]),
        ("lambda_count", sgd(0.1), lam, []),
        ("cyclic_base_count", sgd(0.1, momentum=0.9), sched("CyclicLR", base_lr=[0.1, 0.2], max_lr=1.0), []),
        ("cyclic_no_momentum", {"kind": "adagrad", "lrs": [0.1]}, sched("CyclicLR", base_lr=0.01, max_lr=0.1), []),
        ("one_cycle_no_length", sgd(0.1, momentum=0.9), sched("OneCycleLR", max_lr=0.1), []),
        ("one_cycle_total", sgd(0.1, momentum=0.9), sched("OneCycleLR", max_lr=0.1, total_steps=0), []),
        ("one_cycle_epochs", sgd(0.1, momentum=0.9), sched("OneCycleLR", max_lr=0.1, epochs=0, steps_per_epoch=3), []),
        ("one_cycle_pct", sgd(0.1, momentum=0.9), sched("OneCycleLR", max_lr=0.1, total_steps=10, pct_start=1.5), []),
        ("one_cycle_zero_phase", sgd(0.1, momentum=0.9), sched("OneCycleLR", max_lr=0.1, total_steps=10, pct_start=0.1), []),
        ("one_cycle_max_count", sgd(0.1, momentum=0.9), sched("OneCycleLR", max_lr=[0.1, 0.2], total_steps=10), []),
        ("plateau_factor", sgd(0.1), sched("ReduceLROnPlateau", factor=1.0), []),
        ("plateau_min_lrs", sgd(0.1), sched("ReduceLROnPlateau", min_lr=[0.1, 0.2]), []),
        ("step_size_zero", sgd(0.1), sched("StepLR", step_size=0), [None]),
        ("constant_factor_zero", sgd(0.1), sched("ConstantLR", factor=0.0, total_iters=2), [None, None]),
        ("polynomial_zero_iters", sgd(0.1), sched("PolynomialLR", total_iters=0), [{"epoch": 0}]),
        ("sequential_empty", sgd(0.1), {"type": "SequentialLR", "milestones": [], "schedulers": []}, []),
        ("sequential_plateau", sgd(0.1), {"type": "SequentialLR", "milestones": [], "schedulers": [plateau]}, []),
        ("sequential_milestones", sgd(0.1), {"type": "SequentialLR", "milestones": [], "schedulers": [
            sched("StepLR", step_size=2), sched("StepLR", step_size=3)]}, []),
        ("sequential_chained_second", sgd(0.1), {"type": "SequentialLR", "milestones": [2], "schedulers": [
            sched("StepLR", step_size=2),
            {"type": "ChainedScheduler", "schedulers": [sched("ExponentialLR", gamma=0.9)]}]}, [None, None]),
        ("chained_plateau", sgd(0.1), {"type": "ChainedScheduler", "schedulers": [plateau]}, []),
        ("resume_without_initial_lr", sgd(0.1), sched("StepLR", step_size=3, last_epoch=4), []),
    ]


def record_error(name, optimizer, scheduler, ops):
    out = {"name": name, "optimizer": optimizer, "defaults": enc(make_optimizer(optimizer).defaults), "scheduler": scheduler,
           "ops": encode_ops(ops) if ops else {"plain": 0}}
    try:
        opt = make_optimizer(optimizer)
        sch = build(scheduler, opt)
        out["phase"] = "step"
        for op in ops:
            apply(sch, op)
    except Exception as e:  # noqa: BLE001 - recording what torch raises is the point
        out["type"] = type(e).__name__
        out["message"] = str(e.args[0]) if e.args else ""
        return out
    raise AssertionError(f"{name}: torch raised nothing")


def extras_cases():
    """torch's `load_state_dict` keeps keys it does not know and saves them again; where they go."""
    cases = []
    for name, optimizer, scheduler in [
        ("lambda", sgd(0.1), sched("LambdaLR", lr_lambda="pow095")),
        ("cyclic", sgd(0.1, momentum=0.9), sched("CyclicLR", base_lr=0.01, max_lr=0.1)),
        ("sequential", sgd(0.1), {"type": "SequentialLR", "milestones": [3], "schedulers": [
            sched("ConstantLR"), sched("StepLR", step_size=2)]}),
    ]:
        opt = make_optimizer(optimizer)
        sch = build(scheduler, opt)
        for _ in range(4):
            opt.step()
            sch.step()
        state = sch.state_dict()
        extra = {"verbose": False, "last_epoch": 9, "_future_key": [1, 2.5]}
        sch.load_state_dict({**extra, **{k: v for k, v in state.items() if k != "last_epoch"}})
        cases.append({"name": name, "optimizer": optimizer, "defaults": enc(opt.defaults), "scheduler": scheduler,
                      "loaded": enc({**extra, **{k: v for k, v in state.items() if k != "last_epoch"}}),
                      "state_after": enc(sch.state_dict())})
    return cases


def main():
    warnings.simplefilter("ignore")  # step(epoch) is deprecated in torch; the fixtures use it on purpose.
    shutil.rmtree(OUT, ignore_errors=True)
    states_dir = os.path.join(OUT, "states")
    os.makedirs(states_dir)
    recorded = [record(scn, states_dir) for scn in scenarios()]
    with open(os.path.join(OUT, "sequences.json"), "w") as f:
        # One scenario a line: small, and a regenerated file diffs by scenario.
        f.write(f'{{"torch": {json.dumps(torch.__version__)}, "steps": {STEPS}, "scenarios": [\n')
        f.write(",\n".join(json.dumps(s, separators=(",", ":")) for s in recorded))
        f.write("\n]}\n")
    with open(os.path.join(OUT, "errors.json"), "w") as f:
        errors = [record_error(*case) for case in error_cases()]
        json.dump({"torch": torch.__version__, "errors": errors, "extras": extras_cases()}, f, indent=1)
        f.write("\n")
    page_example(os.path.join(OUT, "page"))
    resume_runs(os.path.join(OUT, "resume"))
    print(f"{len(recorded)} scenarios, {sum(len(s['save_at']) for s in recorded)} saved states")


if __name__ == "__main__":
    main()
