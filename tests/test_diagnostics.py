"""Diagnostic figures: the ROC bootstrap band's numbers, and each plot writes a readable PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from training.plots import diagnostics
from training.plots.diagnostics import (
    plot_confusion,
    plot_gradcam,
    plot_photoz,
    plot_roc,
    roc_band,
)


def _scores(n: int = 400, separation: float = 1.5, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, separation * y + rng.standard_normal(n)


def _check_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 0
    image = mpimg.imread(path)
    assert image.ndim == 3 and image[..., :3].std() > 0.05  # not a blank canvas


def test_roc_band_contains_the_curve():
    y, s = _scores()
    r = roc_band(y, s, n_boot=300, seed=1)
    assert r["fpr"][0] == 0 and r["fpr"][-1] == 1 and r["tpr"][-1] == 1
    assert np.all(np.diff(r["tpr"]) >= 0)
    assert np.all(r["tpr_lo"] <= r["tpr"]) and np.all(r["tpr"] <= r["tpr_hi"])
    inner = r["fpr"] < 0.9  # the band closes at (1, 1)
    assert np.all((r["tpr_hi"] - r["tpr_lo"])[inner] > 0)
    assert r["auc"] == pytest.approx(roc_auc_score(y, s))
    lo, hi = r["auc_interval"]
    assert lo < r["auc"] < hi and hi - lo < 0.15
    again = roc_band(y, s, n_boot=300, seed=1)
    np.testing.assert_array_equal(r["tpr_lo"], again["tpr_lo"])


def test_roc_band_perfect_classifier_is_degenerate():
    y = np.r_[np.zeros(30, int), np.ones(20, int)]
    r = roc_band(y, y + 0.1 * np.arange(50) / 50, n_boot=200, seed=0)
    assert r["auc"] == 1.0 and r["auc_interval"] == pytest.approx((1.0, 1.0), abs=1e-12)
    assert np.all(r["tpr"] == 1.0)
    np.testing.assert_allclose(r["tpr_lo"], 1.0, atol=1e-12)
    np.testing.assert_allclose(r["tpr_hi"], 1.0, atol=1e-12)


def test_roc_band_survives_one_class_resamples():
    """With 2 positives among 12, some resamples hold no positive: they are skipped."""
    y = np.r_[np.zeros(10, int), np.ones(2, int)]
    r = roc_band(y, np.linspace(0, 1, 12), n_boot=200, seed=0)
    assert np.all(np.isfinite(r["tpr_lo"])) and np.all(np.isfinite(r["auc_interval"]))


@pytest.mark.parametrize(
    ("y", "s", "match"),
    [
        (np.zeros(5, int), np.zeros(5), "y_true must hold both labels 0 and 1"),
        (np.array([0, 1]), np.zeros(3), "y_true and scores must be arrays"),
        (np.array([0, 1]), np.array([0.0, np.nan]), "scores contain invalid values"),
    ],
)
def test_roc_band_errors(y, s, match):
    with pytest.raises(ValueError, match=match):
        roc_band(y, s, n_boot=10)


def test_plot_roc(tmp_path):
    y, s = _scores()
    _check_png(plot_roc(y, s, tmp_path / "roc.png", n_boot=50))
    two = {"CNN": s, "SVM": 0.5 * s + np.random.default_rng(1).standard_normal(len(s))}
    _check_png(plot_roc(y, two, tmp_path / "sub" / "roc2.png", n_boot=50))


@pytest.mark.parametrize("normalise", [True, False])
def test_plot_confusion(tmp_path, normalise):
    cm = np.array([[900, 40], [60, 1000]])
    out = plot_confusion(cm, ["artifact", "LSBG"], tmp_path / "cm.png", normalise=normalise)
    _check_png(out)
    with pytest.raises(ValueError, match=r"cm must be \[3, 3\] for 3 classes"):
        plot_confusion(cm, ["a", "b", "c"], tmp_path / "bad.png")


@pytest.mark.parametrize("scatter_max", [5000, 10])
def test_plot_photoz(tmp_path, monkeypatch, scatter_max):
    """Both the scatter and (above SCATTER_MAX) the 2-D histogram."""
    monkeypatch.setattr(diagnostics, "SCATTER_MAX", scatter_max)
    rng = np.random.default_rng(0)
    z_spec = rng.uniform(0.0, 0.4, 500)
    z_phot = z_spec + 0.02 * (1 + z_spec) * rng.standard_normal(500)
    _check_png(plot_photoz(z_spec, z_phot, tmp_path / "pz.png"))
    with pytest.raises(ValueError, match="must be non-empty arrays"):
        plot_photoz(z_spec, z_phot[:-1], tmp_path / "bad.png")


def test_plot_gradcam(tmp_path):
    rng = np.random.default_rng(0)
    images = 100 * rng.standard_normal((4, 3, 16, 16))
    yy, xx = np.mgrid[:16, :16]
    cams = np.stack([np.exp(-((xx - 4 * k) ** 2 + (yy - 8) ** 2) / 8.0) for k in range(4)])
    titles = ["TN", "FP", "FN", "TP"]
    _check_png(plot_gradcam(images, cams, titles, tmp_path / "cam.png"))
    with pytest.raises(ValueError, match="need one title per image"):
        plot_gradcam(images, cams, titles[:3], tmp_path / "bad.png")
