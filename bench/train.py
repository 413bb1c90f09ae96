"""Training throughput per recipe and architecture: what robustness costs, as a ratio.

For each of the five seed architectures, on the same seeded batches of the right input shape,
one optimisation step of ``training.trainer.train_batch`` (the very code the recipes run) is
timed for the recipes

* ``regular`` — supervised step;
* ``mmd`` — plus the target batch's forward pass and λ·MMD² (002 eq. 3);
* ``fgsm`` — 003 Algorithm 1 with FGSM examples for f_a of the batch;
* ``pgd10`` — the same with PGD, 10 iterations (α = ε/10);

and reported as training images per second and as a ratio to ``regular``. Peer: a bare PyTorch
step (forward, cross-entropy, backward, Adam) on the same model and batch — what a hand-written
loop costs, so the recipe machinery's overhead is visible (``regular`` / ``bare``).

Run:  .venv/bin/python bench/train.py [--batch 32] [--steps 3] [--threads 2] [--fa 0.5]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from core.preprocess import Preprocessing
from training import models
from training.data import DomainData, Split, TaskData
from training.losses import z_bin_edges
from training.recipes import Recipe
from training.trainer import Objective, _make_optimizer, input_bounds, train_batch

ARCH_TASK = {
    "convnet": "morphology",
    "resnet18": "morphology",
    "deepshadows": "lsbg",
    "simple_cnn": "photoz",
    "inception": "photoz",
}
RECIPES = {
    "regular": {"recipe": "regular"},
    "mmd": {"recipe": "mmd", "mmd_weight": 0.05},
    "fgsm": {"recipe": "adversarial", "adv_attack": "fgsm"},
    "pgd10": {"recipe": "adversarial", "adv_attack": "pgd", "adv_iter": 10},
}


def _task_data(task: str, net: torch.nn.Module, n: int, gen: torch.Generator) -> TaskData:
    c, h, w = net.input_shape
    x = torch.rand((n, c, h, w), generator=gen).numpy()
    if task == "photoz":
        y = (0.39 * torch.rand(n, generator=gen)).numpy().astype(np.float32)
        ebv = (0.1 * torch.rand((n, 1), generator=gen)).numpy()
        classes, edges = None, z_bin_edges()
    else:
        y = (torch.arange(n) % net.num_outputs).numpy().astype(np.int64)
        ebv, classes, edges = None, [str(i) for i in range(net.num_outputs)], None
    sp = Split(x, y, ebv, np.arange(n))
    dom = DomainData("bench", None, {}, {"train": sp, "val": sp, "test": sp}, Preprocessing())
    return TaskData(task, dom, dom, classes, edges)


def _time(fn, steps: int) -> float:
    fn()  # warm-up (allocations, first-call dispatch)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps


def bench_arch(arch: str, batch: int, steps: int, fa: float) -> dict[str, float]:
    task = ARCH_TASK[arch]
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = models.build(arch)
    data = _task_data(task, net, batch, gen)
    sp = data.source.splits["train"]
    xb = torch.from_numpy(sp.x)
    eb = None if sp.ebv is None else torch.from_numpy(sp.ebv)
    out = {}
    base = dict(task=task, architecture=arch, optimizer="adam", lr=1e-4, batch_size=batch)
    for name, kw in RECIPES.items():
        kw = dict(kw)
        if kw["recipe"] == "adversarial":
            kw["adv_fraction"] = fa
        recipe = Recipe(**base, **kw)
        obj = Objective(recipe, data, torch.device("cpu"))
        opt = _make_optimizer(net, recipe)
        tb = obj.targets(torch.from_numpy(sp.y))
        xt = xb.flip(0) if recipe.mmd_weight else None
        et = None if xt is None or eb is None else eb.flip(0)
        net.train()
        args = (net, obj, opt, xb, tb, eb, xt, et, input_bounds(task), gen)
        sec = _time(lambda args=args: train_batch(*args), steps)
        out[name] = batch / sec
    # peer: a bare hand-written step
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    extra = () if eb is None else (eb,)
    tb = Objective(Recipe(**base, recipe="regular"), data, torch.device("cpu")).targets(
        torch.from_numpy(sp.y)
    )

    def bare():
        opt.zero_grad()
        F.cross_entropy(net(xb, *extra), tb).backward()
        opt.step()

    out["bare"] = batch / _time(bare, steps)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fa", type=float, default=0.5, help="adversarial fraction f_a")
    ap.add_argument("--arch", nargs="*", default=list(ARCH_TASK))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"# {' '.join(['.venv/bin/python', 'bench/train.py', *(argv or sys.argv[1:])])}")
    print(
        f"# torch {torch.__version__}, {args.threads} threads, {platform.processor() or 'cpu'}; "
        f"batch {args.batch}, {args.steps} timed steps after one warm-up, f_a = {args.fa}"
    )
    head = f"{'architecture':<12} " + " ".join(f"{k:>9}" for k in (*RECIPES, "bare"))
    print("training images / s")
    print(head)
    rows = {}
    for arch in args.arch:
        rows[arch] = bench_arch(arch, args.batch, args.steps, args.fa)
        print(f"{arch:<12} " + " ".join(f"{rows[arch][k]:9.1f}" for k in (*RECIPES, "bare")),
              flush=True)  # fmt: skip
    print("\ncost relative to regular (regular time = 1; larger is slower)")
    print(f"{'architecture':<12} " + " ".join(f"{k:>9}" for k in (*RECIPES, "bare")))
    for arch, r in rows.items():
        print(f"{arch:<12} " + " ".join(f"{r['regular'] / r[k]:9.2f}" for k in (*RECIPES, "bare")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
