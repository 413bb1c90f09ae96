"""The training loop behind every recipe (``training.recipes``).

One function, ``fit``, trains a network on a :class:`~training.data.TaskData` under a
:class:`~training.recipes.Recipe`:

* loss: weighted cross-entropy (002 eq. 1, weights from the source train labels) or the photo-z
  cross-entropy against the one-hot redshift bin (003 §2), plus the architecture's own weight
  penalty (DeepShadows' Keras L2), plus λ·MMD² between the source batch's latents and an equal
  batch of unlabelled target latents (``mmd`` recipes, 002 eq. 3);
* adversarial recipes (003 Algorithm 1): a fraction f_a of each batch is replaced by FGSM or PGD
  examples made against the current weights (with inference-mode batch norm, so the attack does
  not move the running statistics);
* Adam / AdamW / Adadelta with the recipe's hyper-parameters, optional reduce-on-plateau (003),
  early stopping on the validation loss (the recipe's objective on the clean validation split:
  supervised + L2 + λ·MMD², without adversarial examples), the best-validation weights kept;
* one seed fixes initialisation, shuffling, target sampling and augmentation;
* a checkpoint after every epoch (``checkpoint.pt``), resumed when the same recipe is run again
  into the same directory; ``history.json`` and ``training_curve.png`` after every epoch;
* CUDA when present.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from core.mmd import mmd2

from . import models
from .attacks import fgsm, pgd
from .data import Split, TaskData
from .losses import class_weights, per_sample_cross_entropy, z_to_bin
from .recipes import Recipe

CHECKPOINT = "checkpoint.pt"
HISTORY = "history.json"
CURVE = "training_curve.png"


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def input_bounds(task: str) -> tuple[float, float] | None:
    """Valid range of the network input: the arcsinh stretch maps to [0, 1]; fluxes are free."""
    return None if task == "photoz" else (0.0, 1.0)


@dataclass
class FitResult:
    model: nn.Module
    history: list[dict]
    best_epoch: int
    seconds: float
    device: str
    stopped_early: bool


class Objective:
    """The recipe's loss on one batch; shared by training and validation."""

    def __init__(self, recipe: Recipe, data: TaskData, device: torch.device) -> None:
        self.recipe, self.data, self.device = recipe, data, device
        if data.kind == "classification":
            self.weights = class_weights(data.source.splits["train"].y, data.num_outputs).to(device)
        else:
            self.weights = None
            self.edges = data.z_edges

    def targets(self, y: Tensor) -> Tensor:
        """Class index, or redshift-bin index for photo-z, [N] int64 on the device."""
        if self.weights is not None:
            return y.to(self.device)
        return z_to_bin(y.cpu(), self.edges).to(self.device)

    def supervised(self, logits: Tensor, target: Tensor) -> Tensor:
        """Mean (class-weighted for classifiers) cross-entropy, a 0-d tensor, of logits [N, K]
        against class or redshift-bin indices ``target`` [N] int64."""
        if self.weights is not None:
            return F.cross_entropy(logits, target, weight=self.weights)
        return F.cross_entropy(logits, target)


def _batches(n: int, size: int, gen: torch.Generator | None) -> Iterator[Tensor]:
    order = torch.randperm(n, generator=gen) if gen is not None else torch.arange(n)
    # drop a last batch of one: batch norm cannot normalise a single image
    for b in order.split(size):
        if len(b) > 1 or gen is None:
            yield b


def _target_draws(n_target: int, sizes: list[int], gen: torch.Generator) -> list[Tensor]:
    """Indices of the unlabelled target batch paired with each source batch (``sizes`` [B]
    batch lengths): consecutive slices of shuffled passes over the n_target target objects, so
    an object appears at most once in a batch (unless a batch straddles two passes) and every
    object once per pass.

    Why not with replacement: then most batches hold some target object twice, and the ``mmd``
    recipe with the multi-bandwidth kernel stalls (validation figures: docs/benchmarks.md,
    training figures). Why duplicates hurt is not known.
    """
    need = sum(sizes)
    order = torch.cat(
        [torch.randperm(n_target, generator=gen) for _ in range(-(-need // n_target))]
    )
    out, start = [], 0
    for k in sizes:
        out.append(order[start : start + k])
        start += k
    return out


def _augment(x: Tensor, gen: torch.Generator) -> Tensor:
    """Each image [C, H, W] of x [N, C, H, W] turned by its own random multiple of 90° and
    mirrored with probability ½ (003 §2: flips and rotations, per image; H = W)."""
    turns = torch.randint(4, (len(x),), generator=gen)
    flips = torch.randint(2, (len(x),), generator=gen).bool()
    out = x.clone()
    for k in range(4):
        for flip in (False, True):
            sel = ((turns == k) & (flips == flip)).nonzero().flatten()
            if len(sel):
                y = torch.rot90(x[sel], k, dims=(2, 3))
                out[sel] = torch.flip(y, dims=(3,)) if flip else y
    return out


def _tensors(split: Split) -> tuple[Tensor, Tensor, Tensor | None]:
    ebv = None if split.ebv is None else torch.from_numpy(split.ebv)
    return torch.from_numpy(split.x), torch.from_numpy(split.y), ebv


def adversarial_examples(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    recipe: Recipe,
    extra: tuple[Tensor, ...],
    bounds: tuple[float, float] | None,
    gen: torch.Generator | None = None,
) -> Tensor:
    """FGSM or PGD examples [N, C, H, W] of x [N, C, H, W] (model-input units, within
    ``bounds``) for targets [N] under ``recipe``'s attack (ε in input units), made with
    inference-mode batch norm; ``extra``: further inputs, e.g. E(B−V) [N, 1] (mag)."""
    was_training = model.training
    model.eval()
    try:
        if recipe.adv_attack == "fgsm":
            return fgsm(
                model, x, target, recipe.adv_eps, per_sample_cross_entropy,
                extra=extra, bounds=bounds,
            )  # fmt: skip
        return pgd(
            model, x, target, recipe.adv_eps, recipe.pgd_alpha, recipe.adv_iter,
            per_sample_cross_entropy, norm=recipe.adv_norm, extra=extra, bounds=bounds,
        )  # fmt: skip
    finally:
        model.train(was_training)


def _make_optimizer(model: nn.Module, r: Recipe) -> torch.optim.Optimizer:
    if r.optimizer == "adam":
        return torch.optim.Adam(
            model.parameters(), lr=r.lr, betas=r.betas, eps=r.adam_eps, weight_decay=r.weight_decay
        )
    if r.optimizer == "adamw":
        return torch.optim.AdamW(
            model.parameters(), lr=r.lr, betas=r.betas, eps=r.adam_eps, weight_decay=r.weight_decay
        )
    if r.optimizer == "adadelta":
        return torch.optim.Adadelta(
            model.parameters(), lr=r.lr, rho=r.rho, weight_decay=r.weight_decay
        )
    raise ValueError(f"unknown optimizer {r.optimizer!r}")


def _step_loss(
    model: nn.Module,
    obj: Objective,
    xb: Tensor,
    tb: Tensor,
    eb: Tensor | None,
    xt: Tensor | None,
    et: Tensor | None,
) -> tuple[Tensor, dict[str, float]]:
    """Loss of one batch: supervised (+ L2 penalty) (+ λ·MMD² against target batch xt).

    With a target batch, source and target go through the network in *one* forward pass, so
    batch normalisation sees the same mixed statistics in training as its running averages give
    at inference. (Two separate passes normalise each domain by its own batch statistics while
    training — an alignment the inference-mode network, with running statistics averaged over
    both domains, does not have; validation then disagrees with training.)
    """
    if xt is None:
        latent = model.features(xb, *(() if eb is None else (eb,)))
    else:
        xs_all = torch.cat([xb, xt])
        extra = () if eb is None else (torch.cat([eb, et]),)
        both = model.features(xs_all, *extra)
        latent, lt = both[: len(xb)], both[len(xb) :]
    loss = obj.supervised(model.head(latent), tb)
    parts = {"ce": float(loss.detach())}
    loss = loss + model.l2_penalty()
    if xt is not None:
        m = mmd2(latent, lt, obj.recipe.mmd_bandwidth)
        loss = loss + obj.recipe.mmd_weight * m
        parts["mmd"] = float(m.detach())
    parts["loss"] = float(loss.detach())
    return loss, parts


def train_batch(
    model: nn.Module,
    obj: Objective,
    opt: torch.optim.Optimizer,
    xb: Tensor,
    tb: Tensor,
    eb: Tensor | None,
    xt: Tensor | None,
    et: Tensor | None,
    bounds: tuple[float, float] | None,
    gen: torch.Generator,
) -> dict[str, float]:
    """One optimisation step of the recipe on a source batch (xb [B, C, H, W], targets tb [B],
    E(B−V) eb) and, for MMD recipes, an unlabelled target batch (xt, et): augmentation, the
    adversarial replacement of 003 Algorithm 1, the loss, backward and the optimiser step.
    Returns the loss parts (floats)."""
    recipe = obj.recipe
    if recipe.augment:
        xb = _augment(xb, gen)
        if xt is not None:
            xt = _augment(xt, gen)
    n_adv = int(round(recipe.adv_fraction * len(xb)))
    if n_adv:
        # 003 Algorithm 1: the first n_adv of the (shuffled) batch become adversarial
        extra = () if eb is None else (eb[:n_adv],)
        adv = adversarial_examples(model, xb[:n_adv], tb[:n_adv], recipe, extra, bounds, gen)
        xb = torch.cat([adv, xb[n_adv:]])
    loss, parts = _step_loss(model, obj, xb, tb, eb, xt, et)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return parts


def evaluate_loss(
    model: nn.Module, obj: Objective, data: TaskData, split: str = "val"
) -> dict[str, float]:
    """The recipe's objective (without adversarial examples) on ``split`` of the source (and, for
    MMD recipes, the same-size split of the target), in inference mode; mean over batches."""
    r, dev = obj.recipe, obj.device
    xs, ys, es = _tensors(data.source.splits[split])
    xt, _, et = _tensors(data.target.splits[split])
    use_mmd = r.mmd_weight > 0
    sums: dict[str, float] = {}
    n = 0
    model.eval()
    with torch.no_grad():
        for b in _batches(len(xs), r.eval_batch_size, None):
            if len(b) < 2:
                continue
            tb = obj.targets(ys[b])
            bt = b[b < len(xt)]
            tgt = (xt[bt].to(dev), None if et is None else et[bt].to(dev))
            use = use_mmd and len(bt) >= 2
            _, parts = _step_loss(
                model, obj, xs[b].to(dev), tb, None if es is None else es[b].to(dev),
                tgt[0] if use else None, tgt[1] if use else None,
            )  # fmt: skip
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v * len(b)
            n += len(b)
    return {k: v / max(n, 1) for k, v in sums.items()}


#: Training images (and as many target images for MMD recipes) whose batch statistics become the
#: batch-norm running statistics after every epoch.
BN_REFRESH_MAX = 2048


def refresh_batch_norm(
    model: nn.Module,
    xs: Tensor,
    es: Tensor | None,
    xt: Tensor | None,
    et: Tensor | None,
    recipe: Recipe,
    device: torch.device,
) -> None:
    """Set every batch-norm layer's running mean and variance to the exact average over the first
    ``BN_REFRESH_MAX`` training images (source xs [N, C, H, W], with E(B−V) es; for MMD recipes
    each batch mixed with as many target images, as in training), in training-recipe batches.

    Why: the running statistics are an exponential average that starts at mean 0, variance 1.
    After the few dozen steps of a quick recipe the variance was still ~0.9^steps — for the
    ConvNet's first layer 0.0226 where the batches' own was 5.7e-5 — so the inference-mode
    network answered one class for every image (accuracy 0.25) while the same weights with batch
    statistics scored 0.74, and early stopping kept epoch 1.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    momenta = [b.momentum for b in bns]
    for b in bns:
        b.reset_running_stats()
        b.momentum = None  # cumulative average over the refresh batches
    model.train()
    n = min(len(xs), BN_REFRESH_MAX)
    with torch.no_grad():
        for b in torch.arange(n).split(recipe.batch_size):
            x = xs[b]
            e = None if es is None else es[b]
            if xt is not None:
                t = b % len(xt)
                x = torch.cat([x, xt[t]])
                e = None if e is None else torch.cat([e, et[t]])
            model.features(x.to(device), *(() if e is None else (e.to(device),)))
    for b, m in zip(bns, momenta, strict=True):
        b.momentum = m


def _save_history(out: Path, history: list[dict], recipe: Recipe) -> None:
    (out / HISTORY).write_text(
        json.dumps({"recipe": recipe.to_dict(), "epochs": history}, indent=1)
    )
    plot_history(
        history, out / CURVE, title=f"{recipe.task} · {recipe.architecture} · {recipe.recipe}"
    )


def plot_history(history: list[dict], path: Path, title: str = "") -> Path:
    """Training and validation loss (and MMD² when present) per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    has_mmd = any("val_mmd" in h for h in history)
    fig, axes = plt.subplots(1, 2 if has_mmd else 1, figsize=(9 if has_mmd else 5, 3.6))
    axes = np.atleast_1d(axes)
    axes[0].plot(ep, [h["train_loss"] for h in history], "o-", label="train")
    axes[0].plot(ep, [h["val_loss"] for h in history], "s-", label="validation")
    axes[0].set(xlabel="epoch", ylabel="loss", title=title)
    axes[0].legend()
    if has_mmd:
        axes[1].semilogy(ep, [max(h.get("train_mmd", np.nan), 1e-8) for h in history], "o-",
                         label="train")  # fmt: skip
        axes[1].semilogy(ep, [max(h.get("val_mmd", np.nan), 1e-8) for h in history], "s-",
                         label="validation")  # fmt: skip
        axes[1].set(xlabel="epoch", ylabel="MMD² (source vs target latents)")
        axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def fit(
    recipe: Recipe,
    data: TaskData,
    out: str | Path,
    model: nn.Module | None = None,
    device: torch.device | None = None,
    progress: bool = True,
    resume: bool = True,
) -> FitResult:
    """Train under ``recipe`` and return the best-validation model (in eval mode, on the CPU).

    ``model`` : start from these weights (fine-tuning); default a fresh ``recipe.architecture``.
    For the ``finetune`` recipe the labelled training set is the first ``finetune_n`` objects of
    the *target* train split and validation uses the target validation split.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = device or default_device()
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    if recipe.recipe == "finetune":
        # labelled target objects become the training and validation data
        n = min(recipe.finetune_n, len(data.target.splits["train"]))
        src = copy.copy(data.source)
        src.splits = {
            "train": data.target.splits["train"].subset(np.arange(n)),
            "val": data.target.splits["val"],
            "test": data.target.splits["test"],
        }
        data = TaskData(data.task, src, data.target, data.classes, data.z_edges)
    if model is None:
        model = models.build(recipe.architecture, **recipe.model_kwargs)
    if model.num_outputs != data.num_outputs:
        raise ValueError(
            f"{recipe.architecture} has {model.num_outputs} outputs but {data.task} needs "
            f"{data.num_outputs}"
        )
    model = model.to(device)
    obj = Objective(recipe, data, device)
    opt = _make_optimizer(model, recipe)
    sched = (
        torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=recipe.plateau_factor, patience=recipe.plateau_patience
        )
        if recipe.plateau_factor
        else None
    )
    history: list[dict] = []
    best_val, best_state, best_epoch, bad = float("inf"), None, 0, 0
    start_epoch = 1
    ckpt_path = out / CHECKPOINT
    if resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ck["recipe"] == recipe.to_dict():
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            if sched is not None and ck.get("scheduler"):
                sched.load_state_dict(ck["scheduler"])
            gen.set_state(ck["generator"])
            torch.set_rng_state(ck["torch_rng"])
            if ck.get("cuda_rng") is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(ck["cuda_rng"])
            history, best_val, best_epoch, bad = (
                ck["history"], ck["best_val"], ck["best_epoch"], ck["bad_epochs"]
            )  # fmt: skip
            best_state = ck["best_state"]
            start_epoch = ck["epoch"] + 1
            if progress:
                print(f"resuming {ckpt_path} after epoch {ck['epoch']}")
        elif progress:
            print(f"{ckpt_path} belongs to another recipe; starting afresh")

    xs, ys, es = _tensors(data.source.splits["train"])
    xt_all, _, et_all = _tensors(data.target.splits["train"])
    bounds = input_bounds(data.task)
    use_mmd = recipe.mmd_weight > 0
    t0 = time.perf_counter()
    stopped = False
    epochs = tqdm(
        range(start_epoch, recipe.epochs + 1),
        desc=f"train {recipe.task}/{recipe.architecture}/{recipe.recipe}",
        unit="epoch",
        disable=not progress,
    )
    if bad >= recipe.patience:
        epochs = []  # a resumed run that had already stopped early
        stopped = True
    for epoch in epochs:
        model.train()
        sums: dict[str, float] = {}
        seen = 0
        te = time.perf_counter()
        batches = list(_batches(len(xs), recipe.batch_size, gen))
        targets = _target_draws(len(xt_all), [len(b) for b in batches], gen) if use_mmd else None
        for i, b in enumerate(tqdm(batches, leave=False, disable=not progress, unit="batch")):
            xb, tb = xs[b].to(device), obj.targets(ys[b])
            eb = None if es is None else es[b].to(device)
            xt = et = None
            if targets is not None:
                it = targets[i]
                xt = xt_all[it].to(device)
                et = None if et_all is None else et_all[it].to(device)
            parts = train_batch(model, obj, opt, xb, tb, eb, xt, et, bounds, gen)
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v * len(b)
            seen += len(b)
        train_seconds = time.perf_counter() - te
        refresh_batch_norm(model, xs, es, xt_all if use_mmd else None, et_all, recipe, device)
        val = evaluate_loss(model, obj, data, "val")
        if not np.isfinite(val["loss"]) or not all(np.isfinite(v) for v in sums.values()):
            raise FloatingPointError(
                f"{recipe.task}/{recipe.architecture}/{recipe.recipe}: non-finite loss at epoch "
                f"{epoch} (train {sums}, validation {val}); lower the learning rate"
            )
        row = {
            "epoch": epoch,
            **{f"train_{k}": v / seen for k, v in sums.items()},
            **{f"val_{k}": v for k, v in val.items()},
            "lr": opt.param_groups[0]["lr"],
            "seconds": time.perf_counter() - te,  # the epoch, validation included
            "images_per_s": seen / train_seconds,  # training steps only
        }
        history.append(row)
        if sched is not None:
            sched.step(val["loss"])
        if val["loss"] < best_val:
            best_val, best_epoch, bad = val["loss"], epoch, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
        if progress:
            epochs.set_postfix(loss=f"{row['train_loss']:.4f}", val=f"{val['loss']:.4f}")
        state = {
            "recipe": recipe.to_dict(),
            "epoch": epoch,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict() if sched is not None else None,
            "generator": gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": history,
            "best_val": best_val,
            "best_epoch": best_epoch,
            "bad_epochs": bad,
            "best_state": best_state,
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }
        tmp_path = ckpt_path.with_suffix(".tmp")
        torch.save(state, tmp_path)
        os.replace(tmp_path, ckpt_path)  # a kill mid-write leaves the previous checkpoint intact
        _save_history(out, history, recipe)
        if bad >= recipe.patience:
            stopped = True
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model = model.cpu().eval()
    return FitResult(model, history, best_epoch, time.perf_counter() - t0, str(device), stopped)


def predict(
    model: nn.Module, split: Split, batch_size: int = 256, device: torch.device | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Softmax outputs [N, K] and latents [N, D] of a split, in inference mode, float32."""
    device = device or next(model.parameters()).device
    model.eval()
    probs, lats = [], []
    with torch.no_grad():
        for i in range(0, len(split), batch_size):
            x = torch.from_numpy(split.x[i : i + batch_size]).to(device)
            extra = (
                ()
                if split.ebv is None
                else (torch.from_numpy(split.ebv[i : i + batch_size]).to(device),)
            )
            z = model.features(x, *extra)
            probs.append(torch.softmax(model.head(z), 1).cpu().numpy())
            lats.append(z.cpu().numpy())
    k = getattr(model, "num_outputs", 0)
    d = getattr(model, "latent_dim", 0)
    if not probs:
        return np.zeros((0, k), np.float32), np.zeros((0, d), np.float32)
    return np.concatenate(probs).astype(np.float32), np.concatenate(lats).astype(np.float32)
