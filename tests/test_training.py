"""The training loop: every task trains, one seed fixes everything, checkpoints resume exactly,
the MMD term aligns the domains' latents, the adversarial recipe trains on perturbed images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.preprocess import Preprocessing
from training.data import DomainData, Split, TaskData, load_task
from training.models import SkyNet
from training.recipes import Recipe, load_recipe
from training.trainer import CHECKPOINT, CURVE, HISTORY, fit, predict

TINY = {"batch_size": 8, "eval_batch_size": 16, "n_canaries": 6, "n_parity": 4, "n_boot": 50}


def _state(model: torch.nn.Module) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    ("task", "recipe"),
    [("morphology", "mmd+adversarial"), ("photoz", "adversarial"), ("lsbg", "mmd")],
)
def test_each_task_trains_and_writes_history(tiny_data, tmp_path, task, recipe):
    data = load_task(tiny_data, task)
    r = load_recipe(task, recipe, quick=True, epochs=2, patience=5, **TINY)
    res = fit(r, data, tmp_path, progress=False)
    assert len(res.history) == 2 and not res.model.training
    h = json.loads((tmp_path / HISTORY).read_text())
    assert h["recipe"] == r.to_dict() and [e["epoch"] for e in h["epochs"]] == [1, 2]
    assert all(np.isfinite(e["val_loss"]) for e in h["epochs"])
    assert ("train_mmd" in h["epochs"][0]) == ("mmd" in recipe)
    assert (tmp_path / CURVE).stat().st_size > 1000 and (tmp_path / CHECKPOINT).is_file()
    probs, latent = predict(res.model, data.target.splits["test"])
    assert probs.shape == (len(data.target.splits["test"]), data.num_outputs)
    assert latent.shape[1] == res.model.latent_dim
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)


def test_seed_fixes_everything_and_resume_is_exact(tiny_data, tmp_path):
    data = load_task(tiny_data, "lsbg")
    r = load_recipe("lsbg", "mmd", quick=True, epochs=2, patience=10, augment=True, **TINY)
    a = fit(r, data, tmp_path / "a", progress=False)
    b = fit(r, data, tmp_path / "b", progress=False)
    assert _same(_state(a.model), _state(b.model))
    # interrupted after one epoch, then resumed to two
    fit(r.with_params(epochs=1), data, tmp_path / "c", progress=False)
    ck = torch.load(tmp_path / "c" / CHECKPOINT, weights_only=True)
    ck["recipe"] = r.to_dict()  # the same run, told it has two epochs in all
    torch.save(ck, tmp_path / "c" / CHECKPOINT)
    c = fit(r, data, tmp_path / "c", progress=False)
    assert len(c.history) == 2
    assert _same(_state(a.model), _state(c.model))
    other = fit(r.with_params(seed=1), data, tmp_path / "d", progress=False)
    assert not _same(_state(a.model), _state(other.model))


def _shifted_task(shift: float, n: int = 96, seed: int = 0) -> TaskData:
    """Synthetic two-class images; the target domain is the source plus a constant offset and
    extra noise — a shift the labels do not depend on, which MMD should learn to ignore."""
    rng = np.random.default_rng(seed)

    def split(m: int, offset: float, noise: float) -> Split:
        y = rng.integers(0, 2, m)
        x = rng.normal(0, 0.1, (m, 3, 64, 64)).astype(np.float32)
        x[:, :, 24:40, 24:40] += (0.5 * y)[:, None, None, None]
        x += offset + noise * rng.normal(size=x.shape).astype(np.float32)
        return Split(x.astype(np.float32), y.astype(np.int64), None, np.arange(m))

    def domain(name: str, offset: float, noise: float) -> DomainData:
        sp = {"train": split(n, offset, noise), "val": split(32, offset, noise),
              "test": split(32, offset, noise)}  # fmt: skip
        return DomainData(name, Path("/nonexistent"), {"domain": name}, sp, Preprocessing())

    return TaskData("lsbg", domain("a", 0.0, 0.0), domain("b", shift, 0.1), ["no", "yes"], None)


class _SmallNet(SkyNet):
    """A small SkyNet [N, 3, 64, 64] → latent 16 → 2 logits, so the test runs in seconds."""

    input_shape = (3, 64, 64)

    def __init__(self) -> None:
        super().__init__()
        self.num_outputs, self.latent_dim = 2, 16
        self.conv = torch.nn.Conv2d(3, 8, 5, stride=4, padding=2)
        self.lat = torch.nn.Linear(8 * 16 * 16, 16)
        self.fc = torch.nn.Linear(16, 2)

    def features(self, x):
        return self.lat(torch.relu(self.conv(x)).flatten(1))

    def head(self, z):
        return self.fc(z)


def test_mmd_term_aligns_latents(tmp_path):
    from core.mmd import mmd2

    data = _shifted_task(0.3)
    base = dict(task="lsbg", architecture="deepshadows", optimizer="adam", lr=1e-3, epochs=6,
                batch_size=16, eval_batch_size=32, patience=10)  # fmt: skip
    gap = {}
    for name, lam in (("regular", 0.0), ("mmd", 1.0)):
        r = Recipe(recipe=name, mmd_weight=lam, mmd_bandwidth="median", **base)
        torch.manual_seed(0)
        model = fit(r, data, tmp_path / name, model=_SmallNet(), progress=False).model
        _, zs = predict(model, data.source.splits["test"])
        _, zt = predict(model, data.target.splits["test"])
        gap[name] = float(mmd2(torch.from_numpy(zs), torch.from_numpy(zt), "median"))
    print(gap)
    assert gap["mmd"] < 0.5 * gap["regular"], gap


def test_adversarial_batches_are_perturbed(monkeypatch, tiny_data, tmp_path):
    """003 Algorithm 1: f_a of each batch is replaced by attacked images made with the current
    weights; here every call's inputs and outputs are recorded."""
    import training.trainer as trainer

    calls = []
    real = trainer.adversarial_examples

    def spy(model, x, target, recipe, extra, bounds, gen=None):
        adv = real(model, x, target, recipe, extra, bounds, gen)
        calls.append((x.clone(), adv.clone(), model.training))
        return adv

    monkeypatch.setattr(trainer, "adversarial_examples", spy)
    data = load_task(tiny_data, "lsbg")
    r = load_recipe("lsbg", "adversarial", quick=True, epochs=1, adv_fraction=0.5, **TINY)
    fit(r, data, tmp_path, progress=False)
    n_batches = len(data.source.splits["train"]) // r.batch_size
    assert len(calls) >= n_batches
    for x, adv, training_mode in calls:
        assert len(x) == round(0.5 * r.batch_size) or len(x) < r.batch_size
        assert (adv - x).abs().max() <= r.adv_eps * (1 + 1e-5)
        assert (adv - x).abs().max() > 0 and adv.min() >= 0 and adv.max() <= 1
        assert training_mode  # training resumes in train mode after each attack


@pytest.mark.parametrize(("n_target", "sizes"), [(50, [8, 8, 8, 8, 8, 8, 2]), (7, [4, 4, 4])])
def test_target_batches_hold_no_object_twice(n_target, sizes):
    """MMD recipes pair each source batch with target objects drawn without replacement: no
    object twice within a batch (duplicates stalled the multi-bandwidth recipe), every object
    once per pass over the target set."""
    from training.trainer import _target_draws

    draws = _target_draws(n_target, sizes, torch.Generator().manual_seed(0))
    assert [len(d) for d in draws] == sizes
    flat = torch.cat(draws)
    for start in range(0, len(flat) - n_target + 1, n_target):  # each full pass
        assert sorted(flat[start : start + n_target].tolist()) == list(range(n_target))
    if n_target >= max(sizes):
        within_pass = [d for d, s in zip(draws, np.cumsum([0, *sizes[:-1]]), strict=True)
                       if s // n_target == (s + len(d) - 1) // n_target]  # fmt: skip
        assert within_pass and all(len(set(d.tolist())) == len(d) for d in within_pass)


def test_augmentation_is_per_image():
    """003 §2 augments each image by its own 90° turn and flip: every output is one of the
    eight symmetries of its own input, and a batch uses several of them."""
    from training.trainer import _augment

    x = torch.arange(64 * 2 * 5 * 5, dtype=torch.float32).reshape(64, 2, 5, 5)
    out = _augment(x, torch.Generator().manual_seed(0))
    used = set()
    for i in range(len(x)):
        matches = [
            (k, f)
            for k in range(4)
            for f in (False, True)
            if torch.equal(out[i], torch.flip(torch.rot90(x[i], k, (1, 2)), (2,)) if f
                           else torch.rot90(x[i], k, (1, 2)))
        ]  # fmt: skip
        assert len(matches) == 1, i
        used.add(matches[0])
    assert len(used) == 8


def test_batch_norm_statistics_are_refreshed_exactly():
    """After an epoch the batch-norm running statistics are the training images' own (not an
    exponential average still near its start, which made quick models answer one class), and
    each layer's momentum is kept."""
    from training import models
    from training.trainer import refresh_batch_norm

    torch.manual_seed(0)
    net = models.build("convnet")
    x = torch.rand(12, 3, 100, 100) * 1e-2  # a small variance, far from the initial 1
    recipe = Recipe(task="morphology", recipe="regular", architecture="convnet", batch_size=32)
    refresh_batch_norm(net, x, None, None, None, recipe, torch.device("cpu"))
    with torch.no_grad():
        a = torch.relu(net.conv1(x))
    torch.testing.assert_close(net.bn1.running_mean, a.mean((0, 2, 3)), rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(net.bn1.running_var, a.var((0, 2, 3)), rtol=1e-3, atol=1e-9)
    assert net.bn1.momentum == 0.1 and float(net.bn1.running_var.max()) < 1e-3
