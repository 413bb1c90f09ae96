"""Latent-space robustness measures and their figures (002 §4–§5): tiny constructed models on
3 × 16 × 16 images, so distances and classes are known by hand."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from training.attacks import one_pixel, torch_predictor
from training.attacks.onepixel import OnePixelResult
from training.models import SkyNet
from training.plots.robustness import (
    plot_church_window,
    plot_church_windows,
    plot_distance_histograms,
    plot_isomap,
)
from training.robustness import (
    apply_pixel,
    best_success_rows,
    church_window,
    distance_summary,
    flipped_under_both,
    isomap_embedding,
    js_distance,
    latent_distances,
    latents,
)

SHAPE = (3, 16, 16)


class _SumNet(SkyNet):
    """Linear features: latent = 2 × the sum of each band [N, 3]; head: a fixed linear map."""

    input_shape = SHAPE

    def __init__(self) -> None:
        super().__init__()
        self.latent_dim, self.num_outputs = 3, 3
        self.fc = nn.Linear(3, 3)

    def features(self, x):
        return 2.0 * x.sum(dim=(2, 3))

    def head(self, latent):
        return self.fc(latent)


class _MaxNet(SkyNet):
    """Latent m = the brightest pixel of each band [N, 3]; logits [2, 8 m₀ − 4 m₁, 8 m₁ − 4 m₀]:
    faint images are class 0, one bright pixel in band 0 makes class 1, in band 1 class 2. Counts
    the rows of every ``head`` call."""

    input_shape = SHAPE

    def __init__(self) -> None:
        super().__init__()
        self.latent_dim, self.num_outputs = 3, 3
        self.fc = nn.Linear(3, 3)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[0.0, 0, 0], [8, -4, 0], [-4, 8, 0]]))
            self.fc.bias.copy_(torch.tensor([2.0, 0, 0]))
        self.head_rows: list[int] = []

    def features(self, x):
        return x.amax(dim=(2, 3))

    def head(self, latent):
        self.head_rows.append(len(latent))
        return self.fc(latent)


class _TinyConv(SkyNet):
    """A seeded conv → batch norm → pool → 8-d latent → 3 logits network."""

    input_shape = SHAPE

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.latent_dim, self.num_outputs = 8, 3
        self.conv, self.bn = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.bottleneck, self.fc = nn.Linear(4 * 8 * 8, 8), nn.Linear(8, 3)

    def features(self, x):
        return self.bottleneck(nn.functional.max_pool2d(self.bn(self.conv(x)).relu(), 2).flatten(1))

    def head(self, latent):
        return self.fc(latent)


def _faint(n: int, seed: int = 0) -> np.ndarray:
    return (0.2 * np.random.default_rng(seed).random((n, *SHAPE))).astype(np.float32)


def _classes(model: SkyNet, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(np.asarray(x, np.float32))).argmax(1).numpy()


# ---------------------------------------------------------------------------------- distances


def test_latent_distance_zero_for_identical_images():
    x = _faint(5)
    model = _TinyConv().eval()
    np.testing.assert_array_equal(latent_distances(model, x, x.copy(), batch_size=2), np.zeros(5))
    assert latents(model, x, batch_size=2).shape == (5, 8)


def test_latent_distance_hand_computed():
    """One pixel changed by (3, 4, 0) moves the _SumNet latent by 2 × (3, 4, 0): d_E = 10."""
    x = np.zeros((2, *SHAPE), np.float32)
    x_adv = x.copy()
    x_adv[0, :, 5, 7] = [3.0, 4.0, 0.0]
    x_adv[1, 2, 0, 0] = 1.5
    d = latent_distances(_SumNet().eval(), x, x_adv)
    np.testing.assert_allclose(d, [10.0, 3.0], rtol=1e-6)


def test_latent_distance_checks_input():
    model = _TinyConv()
    with pytest.raises(ValueError, match="training mode"):
        latent_distances(model, _faint(2), _faint(2))
    with pytest.raises(ValueError, match="same shape"):
        latent_distances(model.eval(), _faint(2), _faint(3))


def test_distance_summary():
    d = np.random.default_rng(1).gamma(2.0, 3.0, 136)
    s = distance_summary(d)
    assert s["n"] == 136
    assert s["median"] == pytest.approx(np.median(d))
    assert s["mean"] == pytest.approx(d.mean())
    assert s["sem"] == pytest.approx(d.std(ddof=1) / np.sqrt(136))
    assert s["sem"] == pytest.approx(stats.sem(d))
    with pytest.raises(ValueError, match="at least one"):
        distance_summary([])


# ---------------------------------------------------------------------------------- JS distance


def test_js_distance_properties():
    rng = np.random.default_rng(2)
    a, b = rng.normal(10, 2, 200), rng.normal(11, 2, 150)
    assert js_distance(a, a.copy()) == pytest.approx(0.0, abs=1e-7)
    ab, ba = js_distance(a, b), js_distance(b, a)
    assert ab == pytest.approx(ba)
    assert 0.0 < ab < 1.0
    # more separated samples are further apart; samples with no bin in common are at 1 (base 2)
    assert js_distance(a, b + 4.0) > ab
    assert js_distance(a, a + 100.0) == pytest.approx(1.0)


def test_js_distance_bins():
    a, b = np.array([0.1, 0.2, 0.9]), np.array([0.15, 0.8, 0.85])
    # explicit edges [0, 0.5, 1]: p = (2/3, 1/3), q = (1/3, 2/3)
    p, q = np.array([2, 1]) / 3, np.array([1, 2]) / 3
    m = (p + q) / 2
    want = np.sqrt(0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m)))
    assert js_distance(a, b, bins=np.array([0.0, 0.5, 1.0])) == pytest.approx(want)
    with pytest.raises(ValueError, match="increasing"):
        js_distance(a, b, bins=np.array([1.0, 0.5]))


# ---------------------------------------------------------------------------------- selection


def _result(index, success, labels, probs) -> OnePixelResult:
    n = len(index)
    return OnePixelResult(
        success=np.asarray(success),
        stopped=np.asarray(success),
        generations=np.zeros(n, int),
        evaluations=np.zeros(n, int),
        pixel=np.zeros((n, 2), int),
        values=np.zeros((n, 3), np.float32),
        images=np.zeros((n, *SHAPE), np.float32),
        probs=np.asarray(probs, float),
        labels=np.asarray(labels),
        targets=None,
        index=np.asarray(index),
    )


def test_flipped_under_both_and_best_rows():
    p = [[0.6, 0.3, 0.1]] * 4
    reg = _result([0, 1, 2, 3], [True, True, False, True], [1] * 4, p)
    # each-wrong-class layout: images 0, 1, 2 with two rows each
    da = _result(
        [0, 0, 1, 1, 2, 2],
        [False, True, False, False, True, True],
        [0] * 6,
        [
            [0.5, 0.5, 0],
            [0.2, 0.1, 0.7],
            [0.9, 0, 0.1],
            [0.8, 0.2, 0],
            [0.3, 0.7, 0],
            [0.1, 0, 0.9],
        ],
    )
    np.testing.assert_array_equal(flipped_under_both(reg, da), [0])
    np.testing.assert_array_equal(flipped_under_both(da, reg), [0])
    # image 2: rows 4 and 5 succeeded; row 5 has the lower true-class probability
    np.testing.assert_array_equal(best_success_rows(da, [2, 0]), [5, 1])
    with pytest.raises(ValueError, match="image 1 was not flipped"):
        best_success_rows(da, [1])


# ---------------------------------------------------------------------------------- church window


@pytest.fixture(scope="module")
def attacked():
    """_MaxNet, two faint images (class 0), a real one-pixel attack on them, and Y1-like noisy
    versions of them."""
    model = _MaxNet().eval()
    x = _faint(2)
    res = one_pixel(torch_predictor(model), x, np.zeros(2, int), population=16, generations=10)
    assert res.success.all()
    noisy = x.copy()
    noisy[:, 1, 3, 3] = 0.9  # bright in band 1: class 2
    return model, x, res, noisy


def test_apply_pixel_reproduces_attack(attacked):
    _, x, res, _ = attacked
    for i in range(len(x)):
        np.testing.assert_array_equal(apply_pixel(x[i], res.pixel[i], res.values[i]), res.images[i])
    with pytest.raises(ValueError, match="outside"):
        apply_pixel(x[0], (16, 0), res.values[0])


def test_church_window_with_noisy_image(attacked):
    model, x, res, noisy = attacked
    g = 21
    cw = church_window(model, x[0], res.pixel[0], res.values[0], noisy[0], grid=g, span=1.0)
    c = g // 2
    assert cw.classes.shape == (g, g) and cw.axis.shape == (g,)
    assert cw.axis[c] == 0.0 and cw.axis[-1] == 1.0 and cw.axis[0] == -1.0
    assert cw.noise == "image" and set(cw.markers) == {"base", "one_pixel", "noisy"}
    base, adv, noi = _classes(model, np.stack([x[0], res.images[0], noisy[0]]))
    assert (
        (cw.base_class, cw.adv_class, cw.noisy_class)
        == (base, adv, noi)
        == (0, res.probs[0].argmax(), 2)
    )
    # the origin is the base image, (1, 0) the attacked one, (0, 1) the noisy one
    assert cw.classes[c, c] == base
    assert cw.classes[c, -1] == adv != base
    assert cw.classes[-1, c] == noi
    z = latents(model, np.stack([x[0], res.images[0], noisy[0]]))
    np.testing.assert_allclose(cw.latent(0, 0), z[0], atol=1e-6)
    np.testing.assert_allclose(cw.latent(1, 0), z[1], atol=1e-6)
    np.testing.assert_allclose(cw.latent(0, 1), z[2], atol=1e-6)
    # a grid point is classified as the head classifies its latent
    i, j = 3, 17
    want = model.head(torch.tensor(cw.latent(cw.axis[j], cw.axis[i]))[None].float()).argmax()
    assert cw.classes[i, j] == int(want)


def test_church_window_random_direction_and_batches(attacked):
    model, x, res, _ = attacked
    model.head_rows.clear()
    kw = {"grid": 21, "span": 1.0, "batch_size": 50}
    cw = church_window(model, x[1], res.pixel[1], res.values[1], seed=3, **kw)
    # one call for the three images' own classes, then the 441 grid latents 50 at a time
    assert model.head_rows == [2] + [50] * 8 + [41]
    assert cw.noise == "random" and "noisy" not in cw.markers and cw.noisy_class is None
    assert cw.u @ cw.v == pytest.approx(0.0, abs=1e-9)
    assert np.linalg.norm(cw.v) == pytest.approx(np.linalg.norm(cw.u))
    again = church_window(model, x[1], res.pixel[1], res.values[1], seed=3, **kw)
    np.testing.assert_array_equal(again.v, cw.v)
    np.testing.assert_array_equal(again.classes, cw.classes)
    given = church_window(model, x[1], res.pixel[1], res.values[1], noise_direction=cw.v, **kw)
    assert given.noise == "direction"
    np.testing.assert_array_equal(given.classes, cw.classes)


def test_church_window_checks_input(attacked):
    model, x, res, noisy = attacked
    with pytest.raises(ValueError, match="not both"):
        church_window(
            model, x[0], res.pixel[0], res.values[0], noisy[0], noise_direction=np.ones(3)
        )
    with pytest.raises(ValueError, match="noise_direction must be"):
        church_window(model, x[0], res.pixel[0], res.values[0], noise_direction=np.ones(4))
    with pytest.raises(ValueError, match="one image"):
        church_window(model, x, res.pixel[0], res.values[0])


# ---------------------------------------------------------------------------------- isomap


@pytest.mark.parametrize("k", [2, 3])
def test_isomap_shapes(k):
    rng = np.random.default_rng(4)
    za, zb, extra = rng.normal(size=(30, 16)), rng.normal(1, 1, (25, 16)), rng.normal(size=(3, 16))
    emb = isomap_embedding(za, zb, n_components=k, extra=extra)
    assert emb.a.shape == (30, k) and emb.b.shape == (25, k) and emb.extra.shape == (3, k)
    assert isomap_embedding(za, zb, n_components=k).extra.shape == (0, k)
    with pytest.raises(ValueError, match="one D"):
        isomap_embedding(za, zb[:, :8])


# ---------------------------------------------------------------------------------- figures


def _check_png(path) -> None:
    assert path.is_file() and path.stat().st_size > 0
    image = mpimg.imread(path)
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_plot_church_windows(attacked, tmp_path):
    model, x, res, noisy = attacked
    cws = [
        church_window(model, x[i], res.pixel[i], res.values[i], n, grid=41)
        for i, n in enumerate((noisy[0], None))
    ]
    _check_png(plot_church_window(cws[0], path=tmp_path / "cw.png"))
    out = plot_church_windows(cws * 2, path=tmp_path / "cws.png", ncol=2, row_names=["reg", "DA"])
    _check_png(out)


@pytest.mark.parametrize("k", [2, 3])
def test_plot_isomap(k, tmp_path):
    rng = np.random.default_rng(5)
    emb = isomap_embedding(
        rng.normal(size=(20, 8)), rng.normal(size=(20, 8)), k, extra=rng.normal(size=(3, 8))
    )
    labels = (rng.integers(0, 3, 20), rng.integers(0, 3, 20))
    triplet = dict(zip(("base", "noisy", "one_pixel"), emb.extra, strict=True))
    out = plot_isomap(
        emb,
        None,
        labels,
        tmp_path / f"iso{k}.png",
        triplet=triplet,
        triplet_labels={"base": 0, "noisy": 2, "one_pixel": 1},
    )
    _check_png(out)
    _check_png(plot_isomap(emb.a, emb.b, np.concatenate(labels), tmp_path / "plain.png", dims=k))


def test_plot_isomap_3d_degenerate(tmp_path):
    """Collinear points cannot be triangulated: the 3-D plot still draws them."""
    line = np.linspace(0, 1, 6)[:, None] * np.ones((1, 3))
    _check_png(plot_isomap(line, line + 1, np.zeros(12, int), tmp_path / "line.png", dims=3))


def test_plot_distance_histograms(tmp_path):
    rng = np.random.default_rng(6)
    a, b = rng.gamma(4, 4, 136), rng.gamma(9, 4, 136)
    out = plot_distance_histograms(
        a, b, ("Reg", "DA"), js_distance(a, b), tmp_path / "d.png", title="Y10 – 1P"
    )
    _check_png(out)
