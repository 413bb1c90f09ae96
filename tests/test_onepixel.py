"""One-pixel attack by differential evolution (002 §2.3): tiny constructed models, 2 bands × 8×8.

The models are built so the answer is known: ``_MaxNet`` is flipped by one bright pixel anywhere,
``_Bump`` only by a bright pixel at one place (the search has to find it), ``_Blind`` by nothing.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from training.attacks import (
    one_pixel,
    one_pixel_each_wrong_class,
    onnx_predictor,
    torch_predictor,
)
from training.attacks.onepixel import _mutation_indices, wrong_class_targets

SMALL = {"population": 16, "generations": 10}


class _MaxNet(nn.Module):
    """Logits [2, 8 m₀ − 4 m₁, 8 m₁ − 4 m₀], m_b the brightest pixel of band b: class 0 for
    faint images; one pixel bright in band 0 (1) gives class 1, in band 1 class 2."""

    def forward(self, image):
        m = image.amax(dim=(2, 3))
        two = torch.full_like(m[:, 0], 2.0)
        return torch.stack([two, 8 * m[:, 0] - 4 * m[:, 1], 8 * m[:, 1] - 4 * m[:, 0]], 1)


class _Bump(nn.Module):
    """Class 1 needs band 0 bright near pixel (5, 2): logit₁ = 12 max(x₀ · w) − 9.6 with w a
    Gaussian of σ = 1 px around it (> 0.5 only for a value > 0.8 at the centre pixel)."""

    def __init__(self) -> None:
        super().__init__()
        r, c = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
        self.register_buffer("w", torch.exp(-((r - 5) ** 2 + (c - 2) ** 2) / 2))

    def forward(self, image):
        q = (image[:, 0] * self.w).amax(dim=(1, 2))
        return torch.stack([torch.zeros_like(q), 12 * q - 9.6, torch.full_like(q, -5.0)], 1)


class _Blind(nn.Module):
    """Ignores its input: no attack can change its answer (class 1)."""

    def forward(self, image):
        return (
            torch.tensor([0.3, 1.0, -0.5]).expand(len(image), 3)
            + 0.0 * image.sum((1, 2, 3))[:, None]
        )


class _Probs(nn.Module):
    """Softmax on top, as a bundle's ONNX ``probs`` output."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image):
        return torch.softmax(self.net(image), dim=1)


def _images(n: int = 6, seed: int = 0, lo: float = 0.0, hi: float = 0.3) -> np.ndarray:
    return (lo + (hi - lo) * np.random.default_rng(seed).random((n, 2, 8, 8))).astype(np.float32)


@pytest.fixture(scope="module")
def maxnet_onnx(tmp_path_factory):
    """_MaxNet exported to ONNX (input ``image``, output ``probs``, dynamic batch), opened with
    ONNX Runtime on the CPU."""
    import onnxruntime as ort

    path = tmp_path_factory.mktemp("onnx") / "maxnet.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Probs(_MaxNet()).eval(), (torch.rand(2, 2, 8, 8),), str(path),
            input_names=["image"], output_names=["probs"], dynamic_axes={"image": {0: "batch"}},
            opset_version=18, dynamo=False,
        )  # fmt: skip
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _predictor(kind: str, session=None):
    return torch_predictor(_MaxNet()) if kind == "torch" else onnx_predictor(session)


def _targets(mode: str, n: int) -> np.ndarray | None:
    return None if mode == "untargeted" else np.full(n, 1 if mode == "target1" else 2)


@pytest.mark.parametrize("bounds", [(0.0, 1.0), (0.2, 0.6)])
@pytest.mark.parametrize("model", [_MaxNet, _Bump, _Blind])
def test_one_pixel_changed_and_inside_bounds(model, bounds):
    x = _images(lo=0.2, hi=0.5)
    res = one_pixel(torch_predictor(model()), x, np.zeros(len(x)), bounds=bounds, **SMALL)
    assert res.images.shape == x.shape and res.images.dtype == np.float32
    changed = (res.images != x).any(axis=1)  # [N, H, W]: positions with any band changed
    assert changed.reshape(len(x), -1).sum(1).max() <= 1
    rows = np.arange(len(x))
    r, c = res.pixel.T
    assert np.array_equal(res.images[rows, :, r, c], res.values)
    assert res.values.min() >= bounds[0] and res.values.max() <= bounds[1]
    assert bool((res.pixel >= 0).all() and (res.pixel < 8).all())
    keep = ~np.zeros_like(changed)
    keep[rows, r, c] = False
    assert np.array_equal(res.images.transpose(0, 2, 3, 1)[keep], x.transpose(0, 2, 3, 1)[keep])


@pytest.mark.parametrize("mode", ["untargeted", "target1", "target2"])
@pytest.mark.parametrize("kind", ["torch", "onnx"])
def test_success_is_confirmed_by_the_model(kind, mode, maxnet_onnx):
    """_MaxNet is flipped every time; the returned images, scored again, agree."""
    x = _images()
    labels = np.zeros(len(x), dtype=np.int64)
    predict = _predictor(kind, maxnet_onnx)
    assert bool((predict(x).argmax(1) == labels).all())
    targets = _targets(mode, len(x))
    res = one_pixel(predict, x, labels, targets=targets, **SMALL)
    assert res.success.all() and res.stopped.all()
    again = _predictor(kind, maxnet_onnx)(res.images)
    np.testing.assert_allclose(again, res.probs, atol=1e-5)
    if targets is None:
        assert bool((again.argmax(1) != labels).all()) and again[:, 0].max() < 0.05
    else:
        assert np.array_equal(again.argmax(1), targets) and again[:, targets[0]].min() > 0.5


@pytest.mark.parametrize("mode", ["untargeted", "target1"])
def test_blind_model_is_never_flipped(mode):
    x = _images()
    labels = np.ones(len(x), dtype=np.int64)
    targets = None if mode == "untargeted" else np.zeros(len(x), dtype=np.int64)
    res = one_pixel(torch_predictor(_Blind()), x, labels, targets=targets, **SMALL)
    assert not res.success.any() and not res.stopped.any()
    assert bool((res.probs.argmax(1) == 1).all())
    p, g = SMALL["population"], SMALL["generations"]
    assert bool((res.generations == g).all() and (res.evaluations == p * (1 + g)).all())


def test_search_finds_the_one_place_and_early_stop_saves_evaluations():
    """_Bump is flipped only at one pixel: the evolution has to move there (generations > 0);
    stopping at the criterion costs fewer model evaluations for the same successes."""
    x = _images(8)
    labels, targets = np.zeros(8), np.ones(8)
    kw = {"population": 20, "generations": 40, "targets": targets}
    res = one_pixel(torch_predictor(_Bump()), x, labels, **kw)
    assert res.success.mean() >= 0.75 and res.generations.mean() > 3  # random init seldom hits
    assert bool((res.pixel[res.success] == [5, 2]).all())
    full = one_pixel(torch_predictor(_Bump()), x, labels, early_stop="off", **kw)
    assert bool((full.generations == 40).all())
    assert full.success.sum() >= res.success.sum()
    assert res.evaluations.sum() < full.evaluations.sum()
    assert bool((res.evaluations <= full.evaluations).all())


def test_flip_rule_stops_at_the_argmax_the_threshold_rule_later():
    """Untargeted, _Bump's true class can fall to ~0.4 but never below 0.05: the argmax flips,
    so "flip" stops there, while "threshold" runs every generation and still reports success."""
    x = _images(4)
    kw = {"population": 20, "generations": 30}
    flip = one_pixel(torch_predictor(_Bump()), x, np.zeros(4), early_stop="flip", **kw)
    thr = one_pixel(torch_predictor(_Bump()), x, np.zeros(4), **kw)
    assert flip.success.all() and flip.stopped.all() and (flip.generations < 30).all()
    assert thr.success.all() and not thr.stopped.any() and (thr.generations == 30).all()
    assert flip.evaluations.sum() < thr.evaluations.sum()


def test_same_seed_same_result_and_batch_composition_does_not_matter():
    x = _images(6)
    labels, predict = np.zeros(6), torch_predictor(_Bump())
    kw = {"population": 12, "generations": 8, "targets": np.ones(6)}
    a = one_pixel(predict, x, labels, seed=3, **kw)
    b = one_pixel(predict, x, labels, seed=3, batch_size=7, **kw)  # many small model calls
    for f in ("success", "generations", "evaluations", "pixel", "values", "images", "probs"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    # each image has its own random stream: the first rows alone get the same answers
    kw["targets"] = np.ones(2)
    c = one_pixel(predict, x[:2], labels[:2], seed=3, **kw)
    assert np.array_equal(c.pixel, a.pixel[:2]) and np.array_equal(c.values, a.values[:2])
    d = one_pixel(predict, x[:2], labels[:2], seed=4, **kw)
    assert not np.array_equal(d.values, c.values)


def test_one_batched_call_per_generation_and_finished_images_drop_out():
    """Every generation scores all images still running in one call (batch_size permitting);
    images flipped in the initial population are not scored again."""
    x = _images(4)
    x[:2, 0, 0, 0] = 0.9  # two images already near class 1: any candidate keeps them flipped
    calls = []
    inner = torch_predictor(_Bump())

    def counting(batch):
        calls.append(len(batch))
        return inner(batch)

    labels = np.zeros(4)
    res = one_pixel(counting, x, labels, targets=np.full(4, 2), population=10, generations=3)
    assert calls == [40, 40, 40, 40]  # class 2 is out of reach: nothing stops
    calls.clear()
    res = one_pixel(counting, x, labels, population=10, generations=3)
    assert sum(calls) == res.evaluations.sum()
    assert max(calls) <= 40 and len(calls) == 1 + res.generations.max()


def test_each_wrong_class():
    x = _images(3)
    labels = np.array([0, 1, 2])
    rows, targets = wrong_class_targets(labels, 3)
    assert rows.tolist() == [0, 0, 1, 1, 2, 2] and targets.tolist() == [1, 2, 0, 2, 0, 1]
    x[1, 0, 3, 3] = x[2, 1, 3, 3] = 1.0  # images of classes 1 and 2 for _MaxNet
    predict = torch_predictor(_MaxNet())
    assert np.array_equal(predict(x).argmax(1), labels)
    res = one_pixel_each_wrong_class(predict, x, labels, 3, **SMALL)
    assert res.index.tolist() == rows.tolist() and res.targets.tolist() == targets.tolist()
    assert np.array_equal(res.probs.argmax(1)[res.success], targets[res.success])
    assert res.success[:2].all()  # class 0 → 1 and 0 → 2 take one bright pixel


def test_mutation_indices_are_distinct_and_not_the_member():
    p = 6
    raw = np.random.default_rng(0).integers(0, [p - 1, p - 2, p - 3], size=(500, p, 3))
    r = _mutation_indices(raw)
    own = np.broadcast_to(np.arange(p)[None, :, None], (500, p, 1))
    allr = np.concatenate([own, r], axis=-1)
    assert r.min() >= 0 and r.max() < p
    assert bool((np.sort(allr, -1)[..., 1:] != np.sort(allr, -1)[..., :-1]).all())
    counts = np.bincount(r[:, 0, 0], minlength=p)  # member 0's r1: uniform over 1 … 5
    assert counts[0] == 0 and counts[1:].min() > 60


def test_onnx_predictor_repeats_extra_inputs():
    class Session:
        def run(self, names, feeds):
            self.feeds = feeds
            return [np.full((len(feeds["image"]), 3), 1 / 3, np.float32)]

    s = Session()
    out = onnx_predictor(s, extra={"ebv": np.array([[0.05]], np.float32)})(_images(5))
    assert out.shape == (5, 3) and s.feeds["ebv"].shape == (5, 1)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"x": np.zeros((2, 8, 8), np.float32)}, r"x must be float32 \[N, C, H, W\]"),
        ({"x": np.zeros((2, 2, 8, 8))}, r"x must be float32"),
        ({"x": np.full((2, 2, 8, 8), np.nan, np.float32)}, "invalid values"),
        ({"labels": np.zeros(3)}, r"labels must be \[N\] = \[2\]"),
        ({"targets": np.zeros(2)}, "targets equal the true label"),
        ({"labels": np.array([0, -1])}, "class indices >= 0"),
        ({"bounds": (1.0, 0.0)}, "bounds must be finite with lo < hi"),
        ({"population": 3}, "need population >= 4"),
        ({"early_stop": True}, "early_stop must be 'threshold', 'flip' or 'off'"),
        ({"labels": np.array([0, 5])}, "class index 5 out of range for K = 3"),
    ],
)
def test_bad_arguments(kw, match):
    args = {"x": _images(2), "labels": np.zeros(2)} | kw
    with pytest.raises(ValueError, match=match):
        one_pixel(torch_predictor(_MaxNet()), args.pop("x"), args.pop("labels"), **args)
